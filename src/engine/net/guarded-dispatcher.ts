import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { type AddressPolicy, addressPolicy } from './address-policy.js';

// The SSRF guard sits where the socket is opened, not in front of the request: undici
// calls this connector for every new connection, including each redirect hop to a new
// origin. It resolves the host name once, checks every address it got, and hands the
// checked address itself to the socket, so a DNS answer that changes between the check
// and the connect (DNS rebinding) cannot slip through. Checking the URL's host before
// calling undici would leave exactly that window open, and `connect.lookup` alone
// would not do: net.connect skips the lookup for IP literals.

export class DestinationBlockedError extends Error {
  constructor(
    readonly host: string,
    readonly address: string,
    readonly reason: string,
  ) {
    const where = host === address ? `${host} (${reason})` : `${host} (${address}, ${reason})`;
    super(
      `http step may not reach ${where}: loopback, private, link-local, multicast and other non-public addresses are blocked; ` +
        'set SKIPFLOW_ALLOW_PRIVATE_NETWORK=1 to allow',
    );
    this.name = 'DestinationBlockedError';
  }
}

export type Lookup = (hostname: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export const systemLookup: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Resolves `hostname` and checks every address; returns them all, in the resolver's order. */
export async function resolveDestination(hostname: string, policy: AddressPolicy, lookup: Lookup = systemLookup): Promise<string[]> {
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(host) ? [host] : (await lookup(host)).map((entry) => entry.address);
  if (addresses.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  // Every answer must pass, not just the one used: a name that mixes public and
  // internal addresses is refused whichever order the resolver returns them in.
  for (const address of addresses) {
    const reason = policy.blockedReason(address);
    if (reason !== null) throw new DestinationBlockedError(host, address, reason);
  }
  return addresses;
}

export interface GuardOptions {
  readonly policy: AddressPolicy;
  readonly lookup?: Lookup;
  /** What opens the socket once the address is checked (tests inject a recorder). */
  readonly connector?: buildConnector.connector;
}

export function guardedConnector({ policy, lookup = systemLookup, connector = buildConnector({}) }: GuardOptions): buildConnector.connector {
  return (options, callback) => {
    // Each checked address in turn (e.g. ::1 then 127.0.0.1 for localhost) until one
    // connects. `host` (the URL's host) is kept, so TLS still sends it as SNI and
    // verifies the certificate against the name, not against the address.
    const attempt = (addresses: string[], index: number) =>
      connector({ ...options, hostname: addresses[index]! }, (error, socket) => {
        if (error && index + 1 < addresses.length) attempt(addresses, index + 1);
        else if (error) callback(error, null);
        else callback(null, socket!);
      });
    resolveDestination(options.hostname, policy, lookup).then(
      (addresses) => attempt(addresses, 0),
      (error: Error) => callback(error, null),
    );
  };
}

export function createGuardedAgent(options: GuardOptions): Agent {
  // No undici header/body timeouts: the step's own timeout_ms bounds the whole attempt
  // (through its AbortSignal), and it may be longer than undici's 300 s defaults.
  return new Agent({ connect: guardedConnector(options), headersTimeout: 0, bodyTimeout: 0 });
}

const shared = new Map<AddressPolicy, Agent>();

/** One connection pool per policy for the whole process; a pool never serves another policy. */
export function sharedGuardedAgent(policy: AddressPolicy): Agent {
  let agent = shared.get(policy);
  if (!agent) {
    agent = createGuardedAgent({ policy });
    shared.set(policy, agent);
  }
  return agent;
}

/**
 * The one guarded connection pool for every outbound request SkipFlow makes (http
 * steps now, notification deliveries later), for the operator's
 * SKIPFLOW_ALLOW_PRIVATE_NETWORK choice. Send through it with undici's `request`
 * (`{ dispatcher }`); a refused address rejects with DestinationBlockedError before
 * any socket is opened.
 */
export function outboundDispatcher(allowPrivateNetwork: boolean): Agent {
  return sharedGuardedAgent(addressPolicy(allowPrivateNetwork));
}
