import { once } from 'node:events';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRetryAfter, readResponseBody } from '../src/engine/net/response-body.js';
import { runAttempt } from '../src/engine/run-step.js';
import { httpStep } from '../src/engine/steps/http.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';
import { closedPort } from './helpers/net.js';

// docs/api.md#steps and docs/steps.md, the `http` step: every field, the stored { status, headers, body } result
// with its 256 KiB bound, redirects, the Idempotency-Key, timeouts, stop, retries and
// each error code — against a real HTTP server on 127.0.0.1 (the server under test
// runs with SKIPFLOW_ALLOW_PRIVATE_NETWORK=1 so it may reach it).

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const KIB = 1024;

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

/** A loopback HTTP server whose routes exercise the step; it records what it was sent. */
async function startTarget() {
  const seen: Seen[] = [];
  const counters = new Map<string, number>();
  const closedAt = new Map<string, number>();
  const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url!, 'http://target');
    const q = (name: string) => url.searchParams.get(name);
    const body = Buffer.concat(chunks).toString();
    seen.push({ method: req.method!, path: `${url.pathname}${url.search}`, headers: req.headers, body, at: Date.now() });
    const [, route, arg = ''] = url.pathname.split('/');
    switch (route) {
      case 'echo':
        return json(res, 200, { method: req.method, path: url.pathname, query: [...url.searchParams], headers: req.headers, body });
      case 'status':
        return json(res, Number(arg), { error: `status ${arg}` }, q('retry_after') ? { 'retry-after': q('retry_after')! } : {});
      case 'flaky': {
        // The first request for `arg` fails with ?status (and ?retry_after); later ones succeed.
        const n = (counters.get(arg) ?? 0) + 1;
        counters.set(arg, n);
        if (n === 1) return json(res, Number(q('status')), { error: 'try again' }, q('retry_after') ? { 'retry-after': q('retry_after')! } : {});
        return json(res, 200, { attempt: n });
      }
      case 'redirect': {
        const n = Number(arg);
        if (n === 0) return json(res, 200, { done: true, method: req.method, body });
        return res.writeHead(Number(q('status') ?? 302), { location: `/redirect/${n - 1}${url.search}` }).end();
      }
      case 'to':
        return res.writeHead(Number(q('status') ?? 302), { location: q('location')! }).end();
      case 'typed':
        return res.writeHead(200, { 'content-type': q('type')! }).end(q('body'));
      case 'bytes':
        return res.writeHead(200, { 'content-type': q('type') ?? 'text/plain' }).end((q('fill') ?? 'a').repeat(Number(arg)));
      case 'empty':
        return res.writeHead(204).end();
      case 'partial':
        // Promises 1000 bytes, sends 10, then drops the connection.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        res.write('0123456789');
        return setTimeout(() => res.socket?.destroy(), 20);
      case 'hang':
        // Never answers; records when the client's connection goes away.
        req.socket.once('close', () => closedAt.set(arg, Date.now()));
        return;
      default:
        return json(res, 404, { error: 'no such route' });
    }
  }

  const listen = async () => {
    const server = createServer((req, res) => void handle(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return server;
  };
  const main = await listen();
  const other = await listen(); // a second origin, for cross-origin redirects
  const port = (main.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    otherBase: `http://127.0.0.1:${(other.address() as AddressInfo).port}`,
    port,
    seen,
    closedAt,
    requests: (prefix: string) => seen.filter((s) => s.path.startsWith(prefix)),
    close: async () => {
      for (const server of [main, other]) {
        server.closeAllConnections();
        server.close();
      }
    },
  };
}

type Target = Awaited<ReturnType<typeof startTarget>>;

describe('http step: response body and Retry-After (units)', () => {
  async function* chunks(...parts: string[]) {
    for (const part of parts) yield Buffer.from(part);
  }
  const stream = (...parts: string[]) => Object.assign(chunks(...parts), { destroy: () => {} });

  it('parses JSON content types, keeps other text, gives null for an empty body', async () => {
    expect(await readResponseBody(stream('{"a":', '1}'), 'application/json; charset=utf-8')).toEqual({ body: { a: 1 }, truncated: false });
    expect(await readResponseBody(stream('{"a":1}'), 'application/problem+json')).toEqual({ body: { a: 1 }, truncated: false });
    expect(await readResponseBody(stream('{"a":1}'), 'text/plain')).toEqual({ body: '{"a":1}', truncated: false });
    expect(await readResponseBody(stream('not json'), 'application/json')).toEqual({ body: 'not json', truncated: false });
    expect(await readResponseBody(stream(), 'application/json')).toEqual({ body: null, truncated: false });
    expect(await readResponseBody(stream('caf\xe9'), 'text/plain; charset=latin1')).toEqual({ body: 'cafÃ©', truncated: false });
  });

  it('keeps at most the limit and flags the rest as truncated', async () => {
    let destroyed = false;
    const big = Object.assign(chunks('abc', 'def', 'ghi'), { destroy: () => (destroyed = true) });
    expect(await readResponseBody(big, 'application/json', 5)).toEqual({ body: 'abcde', truncated: true });
    expect(destroyed).toBe(true);
    expect(await readResponseBody(stream('abc', 'de'), 'text/plain', 5)).toEqual({ body: 'abcde', truncated: false });
  });

  it('reads Retry-After as seconds or as an HTTP-date', () => {
    const now = Date.parse('2026-01-15T10:30:00Z');
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 15 Jan 2026 10:30:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Thu, 15 Jan 2026 10:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

describe('http step: a retryable status carries the server’s Retry-After (unit, real server)', () => {
  let target: Target;
  beforeAll(async () => {
    target = await startTarget();
  });
  afterAll(() => target?.close());
  const context = { input: null, steps: [], execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' }, workflow: { workflow_id: 'w', name: 'W' } };
  const attempt = (def: Record<string, unknown>) =>
    runAttempt({ type: httpStep, def: { type: 'http', ...def } as unknown as StepDefinition, context, stepKey: 'e:3', attempt: 1, wakeAt: null, signal: new AbortController().signal, now: Date.now, services: { allowPrivateNetwork: true, smtpUrl: null } }).catch((e: unknown) => e);

  it('503 with an HTTP-date, 429 with seconds: retryable with retryAfterMs; 404: not retryable, no Retry-After', async () => {
    const date = new Date(Date.now() + 5000).toUTCString();
    const e503 = (await attempt({ url: `${target.base}/status/503?retry_after=${encodeURIComponent(date)}` })) as Json;
    expect(e503).toMatchObject({ code: 'http_status', retryable: true });
    expect(e503.retryAfterMs).toBeGreaterThan(3000);
    expect(e503.retryAfterMs).toBeLessThanOrEqual(5000);
    expect(await attempt({ url: `${target.base}/status/429?retry_after=7` })).toMatchObject({ code: 'http_status', retryable: true, retryAfterMs: 7000 });
    expect(await attempt({ url: `${target.base}/status/408` })).toMatchObject({ code: 'http_status', retryable: true, retryAfterMs: null });
    const e404 = (await attempt({ url: `${target.base}/status/404?retry_after=3` })) as Json;
    expect(e404).toMatchObject({ code: 'http_status', retryable: false, retryAfterMs: null });
    expect(e404.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/status\/404 answered 404 Not Found, expected any 2xx\. Check the url, headers and body, or add 404 to expect_status/);
    expect(e404.message).toContain('Response body: {"error":"status 404"}');
    expect(target.requests('/status/404')[0]!.headers['idempotency-key']).toBe('e:3');
  });
});

describeEachBackend('http step', (backend) => {
  let t: TestServer;
  let target: Target;
  beforeAll(async () => {
    [t, target] = await Promise.all([startTestServer(backend, { allowPrivateNetwork: true, leaseMs: 1500, pollIntervalMs: 50 }), startTarget()]);
  });
  afterAll(async () => {
    await target?.close();
    await t?.close();
  });

  async function create(steps: unknown[]) {
    return t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'http steps', steps } });
  }
  async function run(steps: unknown[], input: unknown = {}): Promise<string> {
    const created = await create(steps);
    expect(created.statusCode, created.body).toBe(201);
    const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${created.json().id}/run-async`, body: { input: { base: target.base, port: target.port, ...(input as object) } } });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().execution_id as string;
  }
  const get = async (id: string): Promise<Json> => (await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` })).json() as Json;
  const finished = (id: string, timeoutMs = 10_000) =>
    eventually(async () => {
      const e = await get(id);
      return e.status !== 'running' ? e : null;
    }, timeoutMs);
  const runToEnd = async (steps: unknown[], input: unknown = {}) => finished(await run(steps, input));

  it('sends method, templated url, query and headers; stores { status, headers, body }; sends Idempotency-Key <execution_id>:<index>', async () => {
    const id = await run(
      [
        { type: 'transform', expression: '{ "id": 42, "token": "s3cret" }' },
        {
          type: 'http',
          url: '{{ input.base }}/echo/{{ steps[0].id }}?keep=1',
          query: { q: '{{ input.q }}', n: 5, flag: true, list: ['a', '{{ input.q }}'], skipped: null },
          headers: { Authorization: 'Bearer {{ steps[0].token }}', 'X-Count': '{{ steps[0].id }}', 'X-Num': 7 },
        },
      ],
      { q: 'a b&c' },
    );
    const e = await finished(id);
    expect(e.status, JSON.stringify(e)).toBe('success');
    const result = e.steps[1].result;
    expect(result.status).toBe(200);
    expect(result.headers['content-type']).toBe('application/json');
    expect(result).not.toHaveProperty('truncated');
    expect(result.body).toMatchObject({ method: 'GET', path: '/echo/42', body: '' });
    expect(result.body.query).toEqual([['keep', '1'], ['q', 'a b&c'], ['n', '5'], ['flag', 'true'], ['list', 'a'], ['list', 'a b&c']]);
    expect(result.body.headers).toMatchObject({ authorization: 'Bearer s3cret', 'x-count': '42', 'x-num': '7', 'idempotency-key': `${id}:1`, 'user-agent': 'SkipFlow' });
    expect(Object.keys(e.steps[1].result)).toEqual(['status', 'headers', 'body']);
  });

  it('sends credentials written in the url as a Basic Authorization header', async () => {
    const e = await runToEnd([{ type: 'http', url: `http://ada:p%40ss@127.0.0.1:${target.port}/echo/credentials` }]);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[0].result.body.headers.authorization).toBe(`Basic ${Buffer.from('ada:p@ss').toString('base64')}`);
  });

  it('sends a JSON body as application/json and a string body as is; templates inside the body keep their JSON type', async () => {
    const e = await runToEnd(
      [
        { type: 'http', method: 'POST', url: '{{ input.base }}/echo', body: { name: '{{ input.name }}', n: '{{ input.n }}', tags: ['{{ input.name }}!', 1, null], nested: { ok: true } } },
        { type: 'http', method: 'PUT', url: '{{ input.base }}/echo', body: 'plain {{ input.name }}' },
        { type: 'http', method: 'PATCH', url: '{{ input.base }}/echo', body: '<x>{{ input.n }}</x>', headers: { 'Content-Type': 'application/xml' } },
        { type: 'http', method: 'post', url: '{{ input.base }}/echo', body: [1, 2, 3] },
        { type: 'http', method: 'POST', url: '{{ input.base }}/echo', body: '{{ input.payload }}' },
      ],
      { name: 'Ada', n: 3, payload: { from: 'input' } },
    );
    expect(e.status, JSON.stringify(e)).toBe('success');
    const echoed = e.steps.map((s: Json) => s.result.body);
    expect(echoed[0].method).toBe('POST');
    expect(echoed[0].headers['content-type']).toBe('application/json');
    expect(JSON.parse(echoed[0].body)).toEqual({ name: 'Ada', n: 3, tags: ['Ada!', 1, null], nested: { ok: true } });
    expect(echoed[1]).toMatchObject({ method: 'PUT', body: 'plain Ada' });
    expect(echoed[1].headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(echoed[2]).toMatchObject({ method: 'PATCH', body: '<x>3</x>' });
    expect(echoed[2].headers['content-type']).toBe('application/xml');
    expect(echoed[3]).toMatchObject({ method: 'POST', body: '[1,2,3]' });
    expect(JSON.parse(echoed[4].body)).toEqual({ from: 'input' });
  });

  it('supports every method (case-insensitive); HEAD and 204 give a null body', async () => {
    const methods = ['GET', 'DELETE', 'OPTIONS', 'head', 'Put'];
    const e = await runToEnd([...methods.map((method) => ({ type: 'http', method, url: `${target.base}/echo/m` })), { type: 'http', url: `${target.base}/empty` }]);
    expect(e.status, JSON.stringify(e)).toBe('success');
    expect(e.steps.slice(0, 5).map((s: Json) => s.result.body?.method ?? null)).toEqual(['GET', 'DELETE', 'OPTIONS', null, 'PUT']);
    expect(e.steps[3].result).toMatchObject({ status: 200, body: null });
    expect(e.steps[5].result).toMatchObject({ status: 204, body: null });
    expect(target.requests('/echo/m').map((s) => s.method)).toEqual(['GET', 'DELETE', 'OPTIONS', 'HEAD', 'PUT']);
  });

  it('lets the step set its own Idempotency-Key (any case), or none with null', async () => {
    const e = await runToEnd(
      [
        { type: 'http', url: '{{ input.base }}/echo/idem-own', headers: { 'IDEMPOTENCY-key': 'mine-{{ input.k }}' } },
        { type: 'http', url: '{{ input.base }}/echo/idem-none', headers: { 'Idempotency-Key': null } },
      ],
      { k: 'x' },
    );
    expect(e.status).toBe('success');
    expect(target.requests('/echo/idem-own')[0]!.headers['idempotency-key']).toBe('mine-x');
    expect(target.requests('/echo/idem-none')[0]!.headers).not.toHaveProperty('idempotency-key');
  });

  it('parses JSON responses, keeps text as text, and keeps invalid JSON as text', async () => {
    const typed = (type: string, body: string) => ({ type: 'http', url: `${target.base}/typed?type=${encodeURIComponent(type)}&body=${encodeURIComponent(body)}` });
    const e = await runToEnd([
      typed('application/json', '{"a":[1,2]}'),
      typed('application/vnd.api+json; charset=utf-8', '{"data":null}'),
      typed('text/plain', '{"a":1}'),
      typed('text/html; charset=utf-8', '<p>hi</p>'),
      typed('application/json', 'not json'),
      typed('application/json', '"just a string"'),
    ]);
    expect(e.steps.map((s: Json) => s.result.body)).toEqual([{ a: [1, 2] }, { data: null }, '{"a":1}', '<p>hi</p>', 'not json', 'just a string']);
  });

  it('keeps 256 KiB of body and flags a longer one truncated: true', async () => {
    const e = await runToEnd([
      { type: 'http', url: `${target.base}/bytes/${300 * KIB}` },
      { type: 'http', url: `${target.base}/bytes/${256 * KIB}` },
      { type: 'http', url: `${target.base}/bytes/${300 * KIB}?type=application/json&fill=1` },
      { type: 'transform', expression: '[$length(steps[0].body), steps[0].truncated, $length(steps[1].body), $exists(steps[1].truncated)]' },
    ]);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[0].result).toMatchObject({ status: 200, truncated: true });
    expect(e.steps[0].result.body).toBe('a'.repeat(256 * KIB));
    expect(e.steps[1].result).not.toHaveProperty('truncated');
    expect(e.steps[2].result).toMatchObject({ truncated: true, body: '1'.repeat(256 * KIB) }); // JSON cut short stays text
    expect(e.steps[3].result).toEqual([256 * KIB, true, 256 * KIB, false]);
  });

  it('expect_status: listed statuses succeed; others fail with http_status (a 4xx is not retried)', async () => {
    const ok = await runToEnd([
      { type: 'http', url: `${target.base}/status/404`, expect_status: [200, 404] },
      { type: 'http', url: `${target.base}/status/201`, expect_status: '{{ [201] }}' },
      { type: 'http', url: `${target.base}/status/302`, expect_status: [302] }, // listed: returned, not followed
    ]);
    expect(ok.status, JSON.stringify(ok.error)).toBe('success');
    expect(ok.steps.map((s: Json) => s.result.status)).toEqual([404, 201, 302]);
    expect(ok.steps[0].result.body).toEqual({ error: 'status 404' });

    const e = await runToEnd([{ type: 'http', url: `${target.base}/status/404?n=once`, retry: { max_attempts: 3, backoff_ms: 10 } }]);
    expect(e).toMatchObject({ status: 'failed', error_code: 'http_status', error_step_index: 0 });
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'http_status', attempts: 1 });
    expect(e.steps[0].error).toMatch(/answered 404 Not Found, expected any 2xx\. Check the url, headers and body, or add 404 to expect_status/);
    expect(target.requests('/status/404?n=once')).toHaveLength(1);

    const listed = await runToEnd([{ type: 'http', url: `${target.base}/status/200`, expect_status: [201, 202] }]);
    expect(listed).toMatchObject({ status: 'failed', error_code: 'http_status' });
    expect(listed.steps[0].error).toMatch(/expected 201, 202/);
  });

  it('follows up to 5 redirects; the 6th fails with http_status', async () => {
    const five = await runToEnd([{ type: 'http', url: `${target.base}/redirect/5?chain=five` }]);
    expect(five.status, JSON.stringify(five.error)).toBe('success');
    expect(five.steps[0].result).toMatchObject({ status: 200, body: { done: true } });
    expect(target.requests('/redirect/').filter((s) => s.path.endsWith('chain=five'))).toHaveLength(6);

    const six = await runToEnd([{ type: 'http', url: `${target.base}/redirect/6?chain=six` }]);
    expect(six).toMatchObject({ status: 'failed', error_code: 'http_status' });
    expect(six.steps[0].error).toMatch(/redirected more than 5 times/);
    const hops = target.requests('/redirect/').filter((s) => s.path.endsWith('chain=six')).map((s) => s.path.split('?')[0]);
    expect(hops).toEqual(['/redirect/6', '/redirect/5', '/redirect/4', '/redirect/3', '/redirect/2', '/redirect/1']);
  });

  it('rewrites redirects like a browser: 303 and 302-after-POST become GET, 307 keeps POST and body; credentials stay on the origin', async () => {
    const e = await runToEnd([
      { type: 'http', method: 'POST', url: `${target.base}/redirect/1?status=303`, body: { a: 1 } },
      { type: 'http', method: 'POST', url: `${target.base}/redirect/1?status=307`, body: { a: 1 } },
      { type: 'http', method: 'POST', url: `${target.base}/redirect/1?status=302`, body: 'x' },
      {
        type: 'http',
        url: `${target.base}/to?location=${encodeURIComponent(`${target.otherBase}/echo/cross`)}`,
        headers: { Authorization: 'Bearer secret', Cookie: 'a=1', 'X-Keep': 'yes' },
      },
      { type: 'http', url: `${target.base}/to?location=${encodeURIComponent('/echo/same')}`, headers: { Authorization: 'Bearer secret' } },
    ]);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[0].result.body).toEqual({ done: true, method: 'GET', body: '' });
    expect(e.steps[1].result.body).toEqual({ done: true, method: 'POST', body: '{"a":1}' });
    expect(e.steps[2].result.body).toEqual({ done: true, method: 'GET', body: '' });
    const cross = e.steps[3].result.body.headers;
    expect(cross).not.toHaveProperty('authorization');
    expect(cross).not.toHaveProperty('cookie');
    expect(cross['x-keep']).toBe('yes');
    expect(cross['idempotency-key']).toBe(`${e.execution_id}:3`);
    expect(e.steps[4].result.body.headers.authorization).toBe('Bearer secret');
  });

  it('times out an attempt that gets no answer (timeout) and closes its connection', async () => {
    const e = await runToEnd([{ type: 'http', url: `${target.base}/hang/timeout`, timeout_ms: 300 }]);
    expect(e).toMatchObject({ status: 'failed', error_code: 'timeout' });
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'timeout', attempts: 1 });
    expect(e.steps[0].error).toMatch(/within 300 ms/);
    await eventually(async () => target.closedAt.has('timeout'), 2000, 10);
  });

  it('stop while the request is in flight cuts the connection within 1 s', async () => {
    const id = await run([{ type: 'http', url: `${target.base}/hang/stop` }, { type: 'transform', expression: '"never"' }]);
    await eventually(async () => target.requests('/hang/stop').length === 1, 5000, 10);
    const t0 = Date.now();
    const res = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
    expect(res.json()).toEqual({ execution_id: id, status: 'stopped' });
    await eventually(async () => target.closedAt.has('stop'), 1000, 5);
    expect(target.closedAt.get('stop')! - t0).toBeLessThan(1000);
    const e = await get(id);
    expect(e.status).toBe('stopped');
    expect(e.steps.map((s: Json) => s.status)).toEqual(['stopped', 'pending']);
    expect(e.steps[0].error_code).toBe('stopped');
  });

  it('retries 503 then succeeds (attempts 2), with the same Idempotency-Key on both attempts', async () => {
    const e = await runToEnd([{ type: 'http', url: `${target.base}/flaky/a503?status=503`, retry: { max_attempts: 3, backoff_ms: 20 } }]);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[0]).toMatchObject({ status: 'completed', attempts: 2, error: null, error_code: null });
    expect(e.steps[0].result.body).toEqual({ attempt: 2 });
    const keys = target.requests('/flaky/a503').map((s) => s.headers['idempotency-key']);
    expect(keys).toEqual([`${e.execution_id}:0`, `${e.execution_id}:0`]);
  });

  it('honours 429 Retry-After: 1 (the next attempt waits at least 1 s, though backoff_ms is 10)', async () => {
    const e = await runToEnd([{ type: 'http', url: `${target.base}/flaky/a429?status=429&retry_after=1`, retry: { max_attempts: 2, backoff_ms: 10 } }]);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[0].attempts).toBe(2);
    const [first, second] = target.requests('/flaky/a429');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1000);
  });

  it('gives up after max_attempts on a status that stays 5xx', async () => {
    const e = await runToEnd([{ type: 'http', url: `${target.base}/status/502?n=always`, retry: { max_attempts: 2, backoff_ms: 10 } }]);
    expect(e).toMatchObject({ status: 'failed', error_code: 'http_status' });
    expect(e.steps[0].attempts).toBe(2);
    // The policy ran out: the hint says so instead of asking for a policy the step has.
    expect(e.steps[0].error).toMatch(/answered 502 Bad Gateway.*failed after 2 attempts \(its "retry" policy ran out\)/);
    expect(e.steps[0].error).not.toMatch(/give the step a "retry" policy/);
  });

  it('asks for a retry policy when a step without one meets a 5xx', async () => {
    const e = await runToEnd([{ type: 'http', url: `${target.base}/status/503?n=always` }]);
    expect(e.steps[0].error).toMatch(/answered 503 Service Unavailable.*give the step a "retry" policy/);
  });

  it('continue_on_error: a failed http step leaves null in steps[i] and the execution goes on', async () => {
    const e = await runToEnd([
      { type: 'http', url: `${target.base}/status/500`, continue_on_error: true },
      { type: 'transform', expression: '$type(steps[0])' },
    ]);
    expect(e.status).toBe('success');
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'http_status', result: null });
    expect(e.steps[1].result).toBe('null');
    expect(e.error_code).toBeNull();
  });

  it('fails with a retryable network_error on a closed port, and when the connection drops mid-body', async () => {
    const port = await closedPort();
    const e = await runToEnd([{ type: 'http', url: `http://127.0.0.1:${port}/`, retry: { max_attempts: 2, backoff_ms: 10 } }]);
    expect(e).toMatchObject({ status: 'failed', error_code: 'network_error' });
    expect(e.steps[0].attempts).toBe(2);
    expect(e.steps[0].error).toMatch(/^Could not connect to 127\.0\.0\.1:\d+: connection refused\. Check the url's host and port/);

    const cut = await runToEnd([{ type: 'http', url: `${target.base}/partial` }]);
    expect(cut).toMatchObject({ status: 'failed', error_code: 'network_error' });
    expect(cut.steps[0].error).toMatch(/^The connection to 127\.0\.0\.1:\d+ was closed before a full response arrived/);
  });

  it('rejects at write time a url that is not http(s), a bad method, header or expect_status', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ url: 'file:///etc/passwd' }, /steps\[0\]\.url: "file:\/\/\/etc\/passwd" uses file:; an http step only reaches http:\/\/ and https:\/\/ URLs/],
      [{ url: 'gopher://127.0.0.1:6379/_FLUSHALL' }, /steps\[0\]\.url: .* uses gopher:/],
      [{ url: 'data:text/plain,hello' }, /steps\[0\]\.url: .* uses data:/],
      [{ url: 'ftp://example.com/x' }, /steps\[0\]\.url: .* uses ftp:/],
      [{ url: 'javascript:alert(1)' }, /steps\[0\]\.url: .* uses javascript:/],
      [{ url: 'file://{{ input.path }}' }, /steps\[0\]\.url: uses file:/],
      [{ url: '/relative/path' }, /steps\[0\]\.url: "\/relative\/path" is not an absolute URL/],
      [{ url: 'https://x.test', method: 'TRACE' }, /steps\[0\]\.method: "TRACE" is not a method; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS/],
      [{ url: 'https://x.test', headers: { 'Bad Header': 'x' } }, /steps\[0\]\.headers\.Bad Header: is not a valid header name/],
      [{ url: 'https://x.test', headers: { 'X-A': 'a\r\nX-Injected: 1' } }, /steps\[0\]\.headers\.X-A: must not contain line breaks/],
      [{ url: 'https://x.test', headers: 'nope' }, /steps\[0\]\.headers: must be an object/],
      [{ url: 'https://x.test', expect_status: [99] }, /steps\[0\]\.expect_status/],
      [{ url: 'https://x.test', expect_status: ['ok'] }, /steps\[0\]\.expect_status\[0\]: must be an integer status code/],
      [{ url: 'https://x.test', unknown_field: 1 }, /steps\[0\]/],
      [{}, /steps\[0\]\.url/],
    ];
    for (const [fields, message] of cases) {
      const res = await create([{ type: 'http', ...fields }]);
      expect(res.statusCode, JSON.stringify(fields)).toBe(400);
      expect(res.json()).toMatchObject({ error_code: 'invalid_request' });
      expect(res.json().error, JSON.stringify(fields)).toMatch(message);
    }
    const fine = await create([{ type: 'http', url: '{{ input.url }}', method: '{{ input.method }}', headers: '{{ input.headers }}', expect_status: ['{{ input.s }}', 200] }]);
    expect(fine.statusCode, fine.body).toBe(201);
  });

  it('checks templated fields again at run time: a url rendering to file: is destination_blocked; bad values are expression_error', async () => {
    const blocked = await runToEnd([{ type: 'http', url: '{{ input.url }}' }], { url: 'file:///etc/passwd' });
    expect(blocked).toMatchObject({ status: 'failed', error_code: 'destination_blocked' });
    expect(blocked.steps[0].error).toMatch(/uses file:; an http step only reaches http:\/\/ and https:\/\/ URLs/);
    const cases: Array<[Record<string, unknown>, unknown, RegExp]> = [
      [{ url: '{{ input.v }}' }, 'not a url', /^url: "not a url" is not an absolute URL/],
      [{ url: '{{ input.base }}/echo', method: '{{ input.v }}' }, 'TRACE', /^method: "TRACE" is not a method/],
      [{ url: '{{ input.base }}/echo', headers: '{{ input.v }}' }, [1], /^headers: must be an object/],
      [{ url: '{{ input.base }}/echo', headers: { 'X-A': '{{ input.v }}' } }, { a: 1 }, /^headers\.X-A: must be a string, number or boolean/],
      [{ url: '{{ input.base }}/echo', headers: { 'X-A': '{{ input.v }}' } }, 'a\nb', /^The request could not be built: invalid x-a header/i],
      [{ url: '{{ input.base }}/echo', expect_status: '{{ input.v }}' }, [700], /^expect_status\[0\]: 700 is not a status code/],
    ];
    for (const [fields, v, message] of cases) {
      const e = await runToEnd([{ type: 'http', ...fields }], { v });
      expect(e.error_code, JSON.stringify(fields)).toBe('expression_error');
      expect(e.steps[0].error, JSON.stringify(fields)).toMatch(message);
    }
  });
});
