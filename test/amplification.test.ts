import type { KyselyPlugin } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientKey } from '../src/api-keys/auth-failure-limiter.js';
import { KeyVerifier } from '../src/api-keys/key-verifier.js';
import { generateSecret, hashSecret } from '../src/api-keys/secret.js';
import { LruCache } from '../src/lib/lru-cache.js';
import type { Clock } from '../src/lib/time.js';
import { createWorkflow, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// Amplification: what one client can make the server do beyond its own requests is
// bounded. The key cache is an LRU that a flood of random keys cannot empty (unknown
// keys are cached apart, briefly); failed authentications are limited per client
// address (429 rate_limited); SSE streams and long polls per workspace are limited.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function manualClock(start = Date.UTC(2026, 0, 1)): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => (now += ms) };
}

/** Counts the queries a Kysely instance sends (a real database, observed, not mocked). */
function queryCounter() {
  const counter = { queries: 0, plugin: null as unknown as KyselyPlugin };
  counter.plugin = {
    transformQuery: (args) => {
      counter.queries++;
      return args.node;
    },
    transformResult: async (args) => args.result,
  };
  return counter;
}

describe('LruCache', () => {
  it('forgets the least recently used entry first', () => {
    const cache = new LruCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1); // a is now the most recent
    cache.set('c', 3);
    expect([...cache.keys()]).toEqual(['a', 'c']);
    expect(cache.peek('b')).toBeUndefined();
    cache.set('a', 4); // replacing does not grow it
    expect(cache.size).toBe(2);
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});

describe('clientKey', () => {
  it('counts IPv4 by address and IPv6 by its /64', () => {
    expect(clientKey('203.0.113.5')).toBe('203.0.113.5');
    expect(clientKey('::ffff:203.0.113.5')).toBe('203.0.113.5');
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
  });
});

describeEachBackend('key cache', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t?.close());

  function verifier(clock: Clock, options: ConstructorParameters<typeof KeyVerifier>[2]) {
    const counter = queryCounter();
    const db = { ...t.server.deps.db, db: t.server.deps.db.db.withPlugin(counter.plugin) };
    return { keys: new KeyVerifier(db, clock, options), counter };
  }

  it('a flood of unknown keys does not evict the keys in use', async () => {
    const clock = manualClock();
    const { keys, counter } = verifier(clock, { capacity: 50, unknownCapacity: 50 });
    try {
      expect(await keys.verify(t.apiKey)).toMatchObject({ workspaceId: t.workspaceId });
      expect(counter.queries).toBe(1);
      for (let i = 0; i < 200; i++) expect(await keys.verify(generateSecret())).toBeNull(); // 4× the capacity
      expect(counter.queries).toBe(201);
      expect(await keys.verify(t.apiKey)).toMatchObject({ workspaceId: t.workspaceId });
      expect(counter.queries).toBe(201); // still cached: no query
    } finally {
      await keys.close();
    }
  });

  it('remembers an unknown key for a second, a known one for 4 s (the revocation bound)', async () => {
    const clock = manualClock();
    const { keys, counter } = verifier(clock, {});
    try {
      const unknown = generateSecret();
      expect(await keys.verify(unknown)).toBeNull();
      expect(await keys.verify(unknown)).toBeNull();
      expect(counter.queries).toBe(1);
      clock.advance(1000);
      expect(await keys.verify(unknown)).toBeNull();
      expect(counter.queries).toBe(2);

      const other = await t.createWorkspace('revoked soon');
      expect(await keys.verify(other.apiKey)).not.toBeNull();
      await t.server.deps.db.db.updateTable('api_keys').set({ revoked_at: clock.now() }).where('secret_hash', '=', hashSecret(other.apiKey)).execute();
      clock.advance(3999);
      expect(await keys.verify(other.apiKey)).not.toBeNull(); // cached
      clock.advance(1);
      expect(await keys.verify(other.apiKey)).toBeNull();
    } finally {
      await keys.close();
    }
  });
});

describeEachBackend('failed authentications per client address', (backend) => {
  let t: TestServer;
  const clock = manualClock();
  beforeAll(async () => {
    t = await startTestServer(backend, { authFailuresPerMinute: 3 }, { clock });
  });
  afterAll(() => t?.close());

  const call = (remoteAddress: string, key: string | null) =>
    t.server.app!.inject({ method: 'GET', url: '/api/v1/workflows', remoteAddress, headers: key === null ? {} : { authorization: `Bearer ${key}` } });

  it('answers 429 rate_limited with Retry-After once an address has failed too often, before looking up its key', async () => {
    const attacker = '198.51.100.20';
    for (let i = 0; i < 3; i++) expect((await call(attacker, generateSecret())).statusCode).toBe(401);
    const limited = await call(attacker, generateSecret());
    expect(limited.statusCode).toBe(429);
    expect(Object.keys(limited.json()).sort()).toEqual(['error', 'error_code']);
    expect(limited.json()).toMatchObject({ error_code: 'rate_limited' });
    expect(limited.json().error).toMatch(/Too many failed authentications from this address/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    // Over the limit even a valid key waits; any other address is unaffected.
    expect((await call(attacker, t.apiKey)).statusCode).toBe(429);
    expect((await call('198.51.100.21', t.apiKey)).statusCode).toBe(200);
    expect((await call('198.51.100.21', generateSecret())).statusCode).toBe(401);
    // A missing or malformed header counts as a failure too.
    clock.advance(60_000);
    expect((await call(attacker, null)).statusCode).toBe(401);
    expect((await call(attacker, 'not-a-key')).statusCode).toBe(401);
    expect((await call(attacker, generateSecret())).statusCode).toBe(401);
    expect((await call(attacker, t.apiKey)).statusCode).toBe(429);
    clock.advance(60_000);
    expect((await call(attacker, t.apiKey)).statusCode).toBe(200); // a new window
  });

  it('counts an IPv6 client by its /64, so rotating addresses does not help', async () => {
    for (let i = 0; i < 3; i++) expect((await call(`2001:db8:7:7::${i + 1}`, generateSecret())).statusCode).toBe(401);
    expect((await call('2001:db8:7:7:ffff::9', generateSecret())).statusCode).toBe(429);
    expect((await call('2001:db8:7:8::1', generateSecret())).statusCode).toBe(401);
  });

  it('successes do not count', async () => {
    clock.advance(60_000);
    for (let i = 0; i < 10; i++) expect((await call('203.0.113.50', t.apiKey)).statusCode).toBe(200);
    expect((await call('203.0.113.50', generateSecret())).statusCode).toBe(401);
  });
});

describeEachBackend('open streams and long polls per workspace', (backend) => {
  let t: TestServer;
  let base: string;
  const aborts: AbortController[] = [];
  beforeAll(async () => {
    t = await startTestServer(backend, { maxOpenStreamsPerWorkspace: 2 });
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.server.app!.server.address() as { port: number }).port}`;
  });
  afterEach(() => {
    for (const controller of aborts.splice(0)) controller.abort();
  });
  afterAll(() => t?.close());

  async function openStream(id: string, key = t.apiKey): Promise<Response> {
    const controller = new AbortController();
    aborts.push(controller);
    const res = await fetch(`${base}/api/v1/executions/${id}/events`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
    if (res.status === 200) await res.body!.getReader().read(); // the first frame: the stream is open
    return res;
  }


  it('refuses a stream beyond the limit with 429 rate_limited; other workspaces are unaffected; a closed stream frees its slot', async () => {
    const id = await run(t, await createWorkflow(t, [{ type: 'delay', seconds: 30 }]));
    expect((await openStream(id)).status).toBe(200);
    expect((await openStream(id)).status).toBe(200);
    const refused = await openStream(id);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    const body = (await refused.json()) as Json;
    expect(body).toMatchObject({ error_code: 'rate_limited' });
    expect(body.error).toMatch(/already has 2 event streams and long polls open \(the limit is 2\)/);
    // A long poll is refused too while the streams are open; a plain GET is not limited.
    const poll = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?wait=5` });
    expect(poll.statusCode).toBe(429);
    expect((await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).statusCode).toBe(200);

    const other = await t.createWorkspace('other');
    const otherRun = await t.request({ method: 'POST', url: `/api/v1/workflows/${await createWorkflowFor(other.apiKey)}/run-async`, key: other.apiKey, body: {} });
    expect((await openStream(otherRun.json().execution_id, other.apiKey)).status).toBe(200);

    aborts.shift()!.abort(); // the client goes away: the server notices and gives the slot back
    await eventually(async () => (await openStream(id)).status === 200, 5000, 100);
    await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
  });

  it('counts long polls while they wait, and gives their slots back when they answer', async () => {
    // A workspace of its own: the previous test's streams give their slots back a moment after they close.
    const { apiKey: key } = await t.createWorkspace('long polls');
    const started = await t.request({ method: 'POST', url: `/api/v1/workflows/${await createWorkflowFor(key)}/run-async`, key, body: {} });
    const id = started.json().execution_id as string;
    const poll = (wait: number) => t.request({ method: 'GET', url: `/api/v1/executions/${id}?wait=${wait}`, key });
    const waiting = [poll(2), poll(2)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await poll(2)).statusCode).toBe(429);
    expect((await Promise.all(waiting)).map((r) => r.statusCode)).toEqual([200, 200]);
    expect((await poll(1)).statusCode).toBe(200);
    await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, key });
  });

  async function createWorkflowFor(key: string): Promise<string> {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', key, body: { name: 'w', steps: [{ type: 'delay', seconds: 30 }] } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  }
});
