import { once } from 'node:events';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AddressPolicy, addressPolicy, allowAllPolicy, embeddedIPv4, ipv6Bytes, privateNetworkPolicy } from '../src/engine/net/address-policy.js';
import { IPV4_NOT_PUBLIC, IPV4_SPECIAL_PURPOSE, IPV6_NOT_PUBLIC, IPV6_SPECIAL_PURPOSE } from '../src/engine/net/special-purpose-registry.js';
import { DestinationBlockedError, type Lookup, createGuardedAgent, outboundDispatcher, resolveDestination } from '../src/engine/net/guarded-dispatcher.js';
import { Abandoned, runAttempt } from '../src/engine/run-step.js';
import { StepFailure } from '../src/engine/step-errors.js';
import { createHttpStep } from '../src/engine/steps/http.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// The SSRF rule: an http step may not reach loopback, private, link-local or
// multicast addresses, checked after DNS resolution, on the address actually
// connected to, and again on every redirect.
//
// Network rule of these tests: nothing but loopback is ever connected to. Blocked
// non-loopback addresses are only ever handed to the guard with a connector that
// records and refuses, so even a broken guard could not send them a packet.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const isLoopback = (address: string) => /^127\./.test(address) || address === '::1';

/** Wraps undici's connector: records every address it is asked for, connects only to loopback. */
function recordingConnector() {
  const real = buildConnector({});
  const asked: string[] = [];
  const connector: buildConnector.connector = (options, callback) => {
    asked.push(options.hostname);
    if (!isLoopback(options.hostname)) return callback(new Error(`test safety net: refused to connect to ${options.hostname}`), null);
    real(options, callback);
  };
  return { asked, connector };
}

async function loopbackServer(host = '127.0.0.1', handler?: Parameters<typeof createServer>[1]) {
  const seen: string[] = [];
  let connections = 0;
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host}`);
    if (handler) return handler(req, res);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
  server.on('connection', () => connections++);
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    seen,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('address policy', () => {
  const blocked: Array<[string, RegExp]> = [
    ['127.0.0.1', /loopback/],
    ['127.255.255.254', /loopback/],
    ['10.0.0.1', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['169.254.169.254', /link-local/],
    ['169.254.0.1', /link-local/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.255', /carrier-grade NAT/],
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['240.0.0.1', /reserved/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fc00::1', /unique local/],
    ['fd12:3456:789a::1', /unique local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['febf:ffff::1', /link-local/],
    ['ff02::1', /multicast/],
    ['::ffff:127.0.0.1', /loopback address \(127\.0\.0\.1\) in IPv6 form/],
    ['::ffff:7f00:1', /loopback address \(127\.0\.0\.1\) in IPv6 form/],
    ['0:0:0:0:0:ffff:7f00:1', /loopback/],
    ['::ffff:10.0.0.1', /private address \(10\.0\.0\.1\)/],
    ['::ffff:a9fe:a9fe', /link-local address \(169\.254\.169\.254\)/],
    ['::ffff:100.64.0.1', /carrier-grade/],
    ['::127.0.0.1', /loopback/], // IPv4-compatible
    ['::7f00:1', /loopback/],
    ['::a00:1', /private address \(10\.0\.0\.1\)/],
    ['64:ff9b::127.0.0.1', /loopback/], // NAT64
    ['64:ff9b::a9fe:a9fe', /link-local address \(169\.254\.169\.254\)/],
    ['64:ff9b::c0a8:101', /private address \(192\.168\.1\.1\)/],
    ['64:ff9b:1::1', /local-use NAT64/],
    ['2002:7f00:1::', /loopback/], // 6to4
    ['localhost', /not an IP address/], // only addresses are judged; a name fails closed
    ['', /not an IP address/],
  ];
  it.each(blocked)('blocks %s', (address, reason) => {
    expect(privateNetworkPolicy.blockedReason(address)).toMatch(reason);
  });

  const allowed = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.0', '169.253.255.255',
    '192.167.255.255', '223.255.255.255', '2606:4700:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::808:808'];
  it.each(allowed)('allows %s', (address) => {
    expect(privateNetworkPolicy.blockedReason(address)).toBeNull();
  });

  it('reads every IPv6 spelling to the same 16 bytes', () => {
    const hex = (text: string) => Buffer.from(ipv6Bytes(text)!).toString('hex');
    expect(hex('::ffff:127.0.0.1')).toBe('00000000000000000000ffff7f000001');
    expect(hex('::ffff:7f00:1')).toBe('00000000000000000000ffff7f000001');
    expect(hex('0:0:0:0:0:ffff:127.0.0.1')).toBe('00000000000000000000ffff7f000001');
    expect(hex('fe80::1%lo')).toBe('fe800000000000000000000000000001');
    expect(hex('1:2:3:4:5:6:7:8')).toBe('00010002000300040005000600070008');
    expect(hex('1::')).toBe('00010000000000000000000000000000');
    expect(ipv6Bytes('127.0.0.1')).toBeNull();
    expect(ipv6Bytes('1:::2')).toBeNull();
    expect(embeddedIPv4(ipv6Bytes('2606:4700::1')!)).toBeNull();
  });

  it('allows everything when the operator allows private networks', () => {
    expect(allowAllPolicy.blockedReason('127.0.0.1')).toBeNull();
    expect(allowAllPolicy.blockedReason('169.254.169.254')).toBeNull();
  });
});

// Every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries, written
// out here independently of src/engine/net/special-purpose-registry.ts: an address
// inside it (refused unless the registry marks the block globally reachable) and,
// where the block has a public neighbour, the addresses just outside it (allowed).
type Row = [block: string, inside: string[], refused: RegExp | null, outside: string[]];
const REGISTRY_ROWS: Row[] = [
  ['0.0.0.0/8', ['0.0.0.1', '0.255.255.255'], /unspecified/, ['1.0.0.0']],
  ['0.0.0.0/32', ['0.0.0.0'], /unspecified/, []],
  ['10.0.0.0/8', ['10.0.0.0', '10.255.255.255'], /private/, ['9.255.255.255', '11.0.0.0']],
  ['100.64.0.0/10', ['100.64.0.0', '100.127.255.255'], /carrier-grade NAT/, ['100.63.255.255', '100.128.0.0']],
  ['127.0.0.0/8', ['127.0.0.1', '127.255.255.255'], /loopback/, ['126.255.255.255', '128.0.0.0']],
  ['169.254.0.0/16', ['169.254.0.0', '169.254.169.254', '169.254.255.255'], /link-local/, ['169.253.255.255', '169.255.0.0']],
  ['172.16.0.0/12', ['172.16.0.0', '172.31.255.255'], /private/, ['172.15.255.255', '172.32.0.0']],
  ['192.0.0.0/24', ['192.0.0.11', '192.0.0.100', '192.0.0.255'], /IETF protocol assignments/, ['191.255.255.255', '192.0.1.0']],
  ['192.0.0.0/29', ['192.0.0.0', '192.0.0.7'], /DS-Lite/, []],
  ['192.0.0.8/32', ['192.0.0.8'], /dummy/, []],
  ['192.0.0.9/32', ['192.0.0.9'], null, []],
  ['192.0.0.10/32', ['192.0.0.10'], null, []],
  ['192.0.0.170/32', ['192.0.0.170'], /NAT64\/DNS64 discovery/, []],
  ['192.0.0.171/32', ['192.0.0.171'], /NAT64\/DNS64 discovery/, []],
  ['192.0.2.0/24', ['192.0.2.0', '192.0.2.1', '192.0.2.255'], /documentation address \(TEST-NET-1\)/, ['192.0.1.255', '192.0.3.0']],
  ['192.31.196.0/24', ['192.31.196.1'], null, []],
  ['192.52.193.0/24', ['192.52.193.1'], null, []],
  ['192.88.99.0/24', ['192.88.99.1', '192.88.99.2'], /6to4 relay/, ['192.88.98.255', '192.88.100.0']],
  ['192.168.0.0/16', ['192.168.0.0', '192.168.255.255'], /private/, ['192.167.255.255', '192.169.0.0']],
  ['192.175.48.0/24', ['192.175.48.1'], null, []],
  ['198.18.0.0/15', ['198.18.0.0', '198.19.255.255'], /benchmarking/, ['198.17.255.255', '198.20.0.0']],
  ['198.51.100.0/24', ['198.51.100.1', '198.51.100.255'], /documentation address \(TEST-NET-2\)/, ['198.51.99.255', '198.51.101.0']],
  ['203.0.113.0/24', ['203.0.113.1', '203.0.113.255'], /documentation address \(TEST-NET-3\)/, ['203.0.112.255', '203.0.114.0']],
  ['240.0.0.0/4', ['240.0.0.0', '255.255.255.254'], /reserved/, []],
  ['255.255.255.255/32', ['255.255.255.255'], /broadcast/, []],
  ['224.0.0.0/4 (multicast)', ['224.0.0.0', '239.255.255.255'], /multicast/, ['223.255.255.255']],
  ['::1/128', ['::1'], /loopback/, []],
  ['::/128', ['::'], /unspecified/, []],
  ['::ffff:0:0/96', ['::ffff:127.0.0.1', '::ffff:192.0.2.1', '::ffff:198.18.0.1'], /in IPv6 form/, ['::ffff:8.8.8.8']],
  ['64:ff9b::/96', ['64:ff9b::10.0.0.1', '64:ff9b::203.0.113.7'], /in IPv6 form/, ['64:ff9b::8.8.8.8', '64:ff9b::192.0.0.9']],
  ['64:ff9b:1::/48', ['64:ff9b:1::1', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff'], /local-use NAT64/, []],
  ['100::/64', ['100::1', '100::ffff:ffff:ffff:ffff'], /discard-only/, []],
  ['100:0:0:1::/64', ['100:0:0:1::1'], /dummy IPv6 prefix/, []],
  ['2001::/23', ['2001:4::1', '2001:100::1', '2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff'], /IETF protocol assignments/, ['2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:200::1']],
  ['2001::/32', ['2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2'], /Teredo/, []],
  ['2001:1::1/128', ['2001:1::1'], null, []],
  ['2001:1::2/128', ['2001:1::2'], null, []],
  ['2001:1::3/128', ['2001:1::3'], null, []],
  ['2001:1::/32 beside the anycast addresses', ['2001:1::4', '2001:1::'], /IETF protocol assignments/, []],
  ['2001:2::/48', ['2001:2::1', '2001:2:0:ffff:ffff:ffff:ffff:ffff'], /benchmarking/, []],
  ['2001:3::/32', ['2001:3::1', '2001:3:ffff:ffff:ffff:ffff:ffff:ffff'], null, []],
  ['2001:4:112::/48', ['2001:4:112::1'], null, []],
  ['2001:10::/28', ['2001:10::1', '2001:1f:ffff:ffff:ffff:ffff:ffff:ffff'], /ORCHID/, []],
  ['2001:20::/28', ['2001:20::1', '2001:2f:ffff:ffff:ffff:ffff:ffff:ffff'], null, []],
  ['2001:30::/28', ['2001:30::1', '2001:3f:ffff:ffff:ffff:ffff:ffff:ffff'], null, []],
  ['2001:db8::/32', ['2001:db8::1', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'], /documentation/, ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db9::']],
  ['2002::/16', ['2002:101:101::1', '2002:808:808::1'], /6to4/, ['2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2003::']],
  ['2620:4f:8000::/48', ['2620:4f:8000::1'], null, []],
  ['3fff::/20', ['3fff::1', '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff'], /documentation/, ['3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '3fff:1000::']],
  ['5f00::/16', ['5f00::1', '5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], /segment routing/, []],
  ['fc00::/7', ['fc00::', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], /unique local/, []],
  ['fe80::/10', ['fe80::', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], /link-local/, []],
  ['fec0::/10 (site-local)', ['fec0::1', 'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], /site-local/, []],
  ['ff00::/8 (multicast)', ['ff02::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], /multicast/, []],
  ['outside 2000::/3', ['::2', '::8.8.8.8', '1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '4000::1', 'e000::1'], /outside IPv6 global unicast/, ['2000::', '3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
];

describe('address policy: every entry of the special-purpose registries', () => {
  it.each(REGISTRY_ROWS)('%s', (_block, inside, refused, outside) => {
    for (const address of inside) {
      const reason = privateNetworkPolicy.blockedReason(address);
      if (refused === null) expect(reason, address).toBeNull();
      else expect(reason, address).toMatch(refused);
    }
    for (const address of outside) expect(privateNetworkPolicy.blockedReason(address), address).toBeNull();
  });

  it('covers every entry of src/engine/net/special-purpose-registry.ts', () => {
    const tested = new Set(REGISTRY_ROWS.map(([block]) => block.split(' ')[0]));
    const listed = [...IPV4_SPECIAL_PURPOSE, ...IPV6_SPECIAL_PURPOSE, ...IPV4_NOT_PUBLIC, ...IPV6_NOT_PUBLIC].map((entry) => entry.prefix);
    expect(listed.filter((prefix) => !tested.has(prefix))).toEqual([]);
  });

  it('addressPolicy(allowPrivateNetwork) is the one switch', () => {
    expect(addressPolicy(false)).toBe(privateNetworkPolicy);
    expect(addressPolicy(true)).toBe(allowAllPolicy);
  });
});

describe('guard: every URL spelling of a blocked address is refused before connecting', () => {
  const { asked, connector } = recordingConnector();
  const agent = createGuardedAgent({ policy: privateNetworkPolicy, connector });
  afterAll(() => agent.close());

  const spellings: Array<[string, RegExp]> = [
    ['http://2130706433/', /127\.0\.0\.1/], // decimal
    ['http://0177.0.0.1/', /127\.0\.0\.1/], // octal
    ['http://0x7f000001/', /127\.0\.0\.1/], // hex
    ['http://0x7f.0.0.1/', /127\.0\.0\.1/],
    ['http://127.1/', /127\.0\.0\.1/], // short form
    ['http://localhost/', /localhost \((127\.0\.0\.1|::1)/],
    ['http://[::1]/', /::1/],
    ['http://[::ffff:127.0.0.1]/', /::ffff:7f00:1/],
    ['http://[::ffff:7f00:1]/', /::ffff:7f00:1/],
    ['http://[0:0:0:0:0:ffff:127.0.0.1]/', /::ffff:7f00:1/],
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 \(a link-local address\)/],
    ['http://10.0.0.1/', /10\.0\.0\.1 \(a private address\)/],
    ['http://192.168.1.1/', /192\.168\.1\.1/],
    ['http://172.16.0.1/', /172\.16\.0\.1/],
    ['http://100.64.0.1/', /carrier-grade NAT/],
    ['http://0.0.0.0/', /unspecified/],
    ['http://[::]/', /unspecified/],
    ['http://[fd00::1]/', /unique local/],
    ['http://[fe80::1]/', /link-local/],
    ['http://[64:ff9b::a9fe:a9fe]/', /169\.254\.169\.254/],
    ['https://127.0.0.1/', /loopback/],
    // The documentation ranges: this very kind of address can be a machine's own interface.
    ['http://192.0.2.10:8080/', /192\.0\.2\.10 \(a documentation address/],
    ['http://198.51.100.7/', /documentation/],
    ['http://203.0.113.9/', /documentation/],
    ['http://[2001:db8::1]/', /documentation/],
    ['http://198.18.0.1/', /benchmarking/],
    ['http://[2001:2::1]/', /benchmarking/],
  ];
  it.each(spellings)('%s', async (url, where) => {
    const error = await request(url, { dispatcher: agent }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DestinationBlockedError);
    expect((error as Error).message).toMatch(where);
    expect((error as Error).message).toMatch(/set SKIPFLOW_ALLOW_PRIVATE_NETWORK=1 to allow/);
    expect(asked).toEqual([]); // the socket layer was never asked to connect
  });
});

describe('guard: names are resolved once, every answer checked, the checked address connected to', () => {
  it('refuses a name that resolves to a blocked address, and one whose answers mix public and private', async () => {
    const { asked, connector } = recordingConnector();
    const answers: Record<string, string[]> = {
      'internal.example': ['127.0.0.1'],
      'metadata.example': ['169.254.169.254'],
      'mixed.example': ['93.184.216.34', '10.0.0.1'],
      'mapped.example': ['::ffff:192.168.0.1'],
    };
    const refused: Record<string, string> = {
      'internal.example': '127.0.0.1',
      'metadata.example': '169.254.169.254',
      'mixed.example': '10.0.0.1',
      'mapped.example': '::ffff:192.168.0.1',
    };
    const lookup: Lookup = async (host) => (answers[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    const agent = createGuardedAgent({ policy: privateNetworkPolicy, lookup, connector });
    try {
      for (const [host, address] of Object.entries(refused)) {
        const error = await request(`http://${host}:8080/`, { dispatcher: agent }).catch((e: unknown) => e);
        expect(error, host).toBeInstanceOf(DestinationBlockedError);
        expect((error as Error).message).toContain(`may not reach ${host} (${address}, `);
      }
      expect(asked).toEqual([]);
    } finally {
      await agent.close();
    }
  });

  it('connects to exactly the address it checked, keeping the name for Host (no second lookup)', async () => {
    const server = await loopbackServer();
    const { asked, connector } = recordingConnector();
    let lookups = 0;
    // A rebinding resolver: the first answer is loopback (allowed here), any later one
    // would be a blocked address. Only the first is ever asked for, and used.
    const lookup: Lookup = async () => [{ address: lookups++ === 0 ? '127.0.0.1' : '127.0.0.2', family: 4 }];
    const onlyFirst: AddressPolicy = { blockedReason: (a) => (a === '127.0.0.1' ? null : 'not 127.0.0.1') };
    const agent = createGuardedAgent({ policy: onlyFirst, lookup, connector });
    try {
      const res = await request(`http://api.example:${server.port}/users/1`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ ok: true });
      expect(lookups).toBe(1);
      expect(asked).toEqual(['127.0.0.1']);
      expect(server.seen).toEqual([`GET /users/1 host=api.example:${server.port}`]);
      expect(await resolveDestination('[::1]', allowAllPolicy)).toEqual(['::1']);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('falls back to the next checked address when one refuses the connection', async () => {
    const server = await loopbackServer();
    const { asked, connector } = recordingConnector();
    const lookup: Lookup = async () => [{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.1', family: 4 }];
    const agent = createGuardedAgent({ policy: allowAllPolicy, lookup, connector });
    try {
      const res = await request(`http://two.example:${server.port}/`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(asked).toEqual(['127.0.0.2', '127.0.0.1']); // nothing listens on 127.0.0.2 at that port
    } finally {
      await agent.close();
      await server.close();
    }
  });
});

describe('outboundDispatcher: the one guarded pool for every outbound request', () => {
  it('refuses loopback unless private networks are allowed, and is shared per choice', async () => {
    const server = await loopbackServer();
    try {
      expect(outboundDispatcher(false)).toBe(outboundDispatcher(false));
      expect(outboundDispatcher(true)).not.toBe(outboundDispatcher(false));
      const error = await request(`http://127.0.0.1:${server.port}/`, { dispatcher: outboundDispatcher(false) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DestinationBlockedError);
      expect(server.connections()).toBe(0);
      const res = await request(`http://127.0.0.1:${server.port}/`, { dispatcher: outboundDispatcher(true) });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    } finally {
      await server.close();
    }
  });
});

describe('http step: a redirect from an allowed host to a blocked one', () => {
  // Both loopback: 127.0.0.1 is allowed by the injected policy, 127.0.0.2 (and
  // everything else) is blocked, so the redirect hop must be refused by the guard.
  const onlyLoopbackOne: AddressPolicy = { blockedReason: (a) => (a === '127.0.0.1' ? null : privateNetworkPolicy.blockedReason(a) ?? 'not the allowed test address') };
  let allowed: Awaited<ReturnType<typeof loopbackServer>>;
  let blocked: Awaited<ReturnType<typeof loopbackServer>>;
  const recorder = recordingConnector();
  const agent = createGuardedAgent({ policy: onlyLoopbackOne, connector: recorder.connector });
  const step = createHttpStep({ dispatcher: () => agent });
  const context = { input: null, steps: [], execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' }, workflow: { workflow_id: 'w', name: 'W' } };
  const attempt = (def: Record<string, unknown>) =>
    runAttempt({ type: step, def: { type: 'http', ...def } as unknown as StepDefinition, context, stepKey: 'e:0', attempt: 1, wakeAt: null, signal: new AbortController().signal, now: Date.now, services: { allowPrivateNetwork: false, smtpUrl: null } });

  beforeAll(async () => {
    blocked = await loopbackServer('127.0.0.2');
    allowed = await loopbackServer('127.0.0.1', (req, res) => {
      const to = new URL(req.url!, 'http://x').searchParams.get('to')!;
      res.writeHead(302, { location: to }).end();
    });
  });
  afterAll(async () => {
    await agent.close();
    await allowed?.close();
    await blocked?.close();
  });

  it('refuses the hop to 127.0.0.2: destination_blocked, the blocked server never connected to', async () => {
    const to = `http://127.0.0.2:${blocked.port}/secret`;
    const error = await attempt({ url: `http://127.0.0.1:${allowed.port}/go?to=${encodeURIComponent(to)}` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StepFailure);
    expect(error).toMatchObject({ code: 'destination_blocked', retryable: false });
    expect((error as Error).message).toMatch(/may not reach 127\.0\.0\.2 \(a loopback address\)/);
    expect(allowed.seen).toHaveLength(1);
    expect(blocked.connections()).toBe(0);
    expect(recorder.asked).toEqual(['127.0.0.1']);
  });

  it('refuses a hop to the cloud metadata address, and to other spellings of blocked loopback addresses, before connecting', async () => {
    for (const to of ['http://169.254.169.254/latest/meta-data/', 'http://[::1]:1/', 'http://[::ffff:7f00:2]/', 'http://2130706434/']) {
      const error = await attempt({ url: `http://127.0.0.1:${allowed.port}/go?to=${encodeURIComponent(to)}` }).catch((e: unknown) => e);
      expect(error, to).toMatchObject({ code: 'destination_blocked' });
    }
    expect(recorder.asked.every((a) => a === '127.0.0.1')).toBe(true);
  });

  it('refuses a redirect to a non-http scheme', async () => {
    const error = await attempt({ url: `http://127.0.0.1:${allowed.port}/go?to=${encodeURIComponent('file:///etc/passwd')}` }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'destination_blocked' });
    expect((error as Error).message).toMatch(/only follows redirects to http:\/\/ and https:\/\//);
  });

  it('does not count as stopped or timed out (a plain failure of the attempt)', async () => {
    expect(await attempt({ url: 'http://10.0.0.1/' }).catch((e: unknown) => e)).not.toBeInstanceOf(Abandoned);
    expect(recorder.asked).not.toContain('10.0.0.1');
  });
});

describeEachBackend('SSRF guard in a running server', (backend) => {
  let t: TestServer;
  let target: Awaited<ReturnType<typeof loopbackServer>>;
  beforeAll(async () => {
    t = await startTestServer(backend); // SKIPFLOW_ALLOW_PRIVATE_NETWORK unset
    target = await loopbackServer();
  });
  afterAll(async () => {
    await target?.close();
    await t?.close();
  });

  async function runSteps(steps: unknown[]): Promise<Json> {
    const created = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'ssrf', steps } });
    expect(created.statusCode, created.body).toBe(201);
    const started = await t.request({ method: 'POST', url: `/api/v1/workflows/${created.json().id}/run-async`, body: { input: { port: target.port } } });
    expect(started.statusCode, started.body).toBe(202);
    const id = started.json().execution_id as string;
    return eventually(async () => {
      const e = (await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` })).json() as Json;
      return e.status !== 'running' ? e : null;
    });
  }

  it('fails an http step to a loopback address with destination_blocked, not retried, without reaching the server', async () => {
    const hosts = ['127.0.0.1', 'localhost', '2130706433', '0177.0.0.1', '0x7f000001', '127.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]'];
    for (const host of hosts) {
      const e = await runSteps([{ type: 'http', url: `http://${host}:{{ input.port }}/`, retry: { max_attempts: 3, backoff_ms: 10 } }]);
      expect(e, host).toMatchObject({ status: 'failed', error_code: 'destination_blocked', error_step_index: 0 });
      expect(e.error).toMatch(/SKIPFLOW_ALLOW_PRIVATE_NETWORK=1/);
      expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'destination_blocked', attempts: 1, result: null });
    }
    expect(target.connections()).toBe(0);
    expect(target.seen).toEqual([]);
  });
});
