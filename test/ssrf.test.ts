import { once } from 'node:events';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AddressPolicy, allowAllPolicy, embeddedIPv4, ipv6Bytes, privateNetworkPolicy } from '../src/engine/net/address-policy.js';
import { DestinationBlockedError, type Lookup, createGuardedAgent, resolveDestination } from '../src/engine/net/guarded-dispatcher.js';
import { Abandoned, runAttempt } from '../src/engine/run-step.js';
import { StepFailure } from '../src/engine/step-errors.js';
import { createHttpStep } from '../src/engine/steps/http.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// docs/api.md#steps, the network rule (SSRF): an http step may not reach loopback, private, link-local or
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
    '192.167.255.255', '223.255.255.255', '2606:4700:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'];
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
