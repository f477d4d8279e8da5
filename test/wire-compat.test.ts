import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// docs/api.md#wire-compatibility-with-the-official-client: an unmodified official Python client (`lodol`) must work.
// These tests send over a real socket exactly what that client sends: every POST has
// `Content-Type: application/json`, an auto-generated uuid4 `Idempotency-Key`, and on
// run-async and stop an EMPTY body; every GET of an execution carries
// include_step_results=false or =true; the workflow id is read from `id`; `error` is
// read as a string; a retried POST reuses its Idempotency-Key.

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/;
const ID = /^[0-9a-f]{24}$/;

interface WireResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json(): Record<string, unknown>;
}

describeEachBackend('wire compatibility with the official Python client', (backend) => {
  let t: TestServer;
  let port: number;
  let agent: http.Agent;

  /** One HTTP/1.1 request as python-requests would send it (keep-alive, Content-Length). */
  const send = (
    method: string,
    path: string,
    opts: { body?: string; headers?: Record<string, string>; chunkedEmpty?: boolean } = {},
  ): Promise<WireResponse> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {
        'User-Agent': 'lodol-python/1.0 python-requests/2.32.3',
        'Accept-Encoding': 'identity',
        Accept: 'application/json',
        Connection: 'keep-alive',
        Authorization: `Bearer ${t.apiKey}`,
        ...opts.headers,
      };
      if (!opts.chunkedEmpty) headers['Content-Length'] = String(Buffer.byteLength(opts.body ?? ''));
      const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      if (opts.chunkedEmpty) {
        req.setHeader('Transfer-Encoding', 'chunked');
        req.flushHeaders();
      }
      req.end(opts.body);
    });

  /** What the client sends on run-async and stop: JSON content type, empty body, a fresh uuid4 key. */
  const clientPost = (path: string, key: string = randomUUID(), extra: { chunkedEmpty?: boolean } = {}) =>
    send('POST', path, { headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key }, ...extra });

  const credits = async () => (await send('GET', '/api/v1/workspace')).json().credits as number;
  const executionCount = async () => {
    const rows = await t.server.deps.db.db
      .selectFrom('executions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(rows.n);
  };

  let workflowId: string;
  let slowWorkflowId: string;

  beforeAll(async () => {
    t = await startTestServer(backend);
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    port = (t.server.app!.server.address() as AddressInfo).port;
    agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

    // The client creates workflows with a JSON body (and, being a POST, an Idempotency-Key)
    // and reads the new workflow's id from `id`.
    const create = async (name: string, steps: unknown[]) => {
      const res = await send('POST', '/api/v1/workflows', {
        body: JSON.stringify({ name, steps }),
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID() },
      });
      expect(res.status).toBe(201);
      const id = res.json().id;
      expect(id).toMatch(ID);
      return id as string;
    };
    workflowId = await create('Wire', [{ type: 'transform', name: 'greet', expression: '"hello " & $string(input)' }]);
    slowWorkflowId = await create('Wire slow', [{ type: 'delay', name: 'wait', seconds: 60 }]);
  });

  afterAll(async () => {
    agent?.destroy();
    await t?.close();
  });

  it('reads the workflow id from `id` on get and list', async () => {
    const got = await send('GET', `/api/v1/workflows/${workflowId}`);
    expect(got.status).toBe(200);
    expect(got.json().id).toBe(workflowId);
    const list = await send('GET', '/api/v1/workflows');
    expect(list.status).toBe(200);
    expect((list.json().workflows as Array<{ id: string }>).map((w) => w.id)).toContain(workflowId);
  });

  it('run-async with Content-Type: application/json and an empty body is a 202, input null', async () => {
    const before = await credits();
    const res = await clientPost(`/api/v1/workflows/${workflowId}/run-async`);
    expect(res.status).toBe(202);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['created_at', 'execution_id', 'status', 'workflow_id']);
    expect(body).toMatchObject({ workflow_id: workflowId, status: 'running' });
    expect(body.execution_id).toMatch(ID);
    expect(body.created_at).toMatch(TIMESTAMP);
    expect(res.headers['x-idempotent-replayed']).toBeUndefined();
    expect(await credits()).toBe(before - 1);

    const id = body.execution_id as string;
    const done = await eventually(async () => {
      const r = await send('GET', `/api/v1/executions/${id}?include_step_results=true`);
      return r.json().status === 'success' ? r.json() : null;
    });
    expect(done.input).toBeNull();
    expect((done.steps as Array<{ result: unknown }>)[0]!.result).toBe('hello null');
  });

  it('an empty body sent chunked, or with no length at all, is also {}', async () => {
    const chunked = await clientPost(`/api/v1/workflows/${workflowId}/run-async`, randomUUID(), { chunkedEmpty: true });
    expect(chunked.status).toBe(202);

    // Raw bytes: a POST with a JSON Content-Type and neither Content-Length nor Transfer-Encoding.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write(
          `POST /api/v1/workflows/${workflowId}/run-async HTTP/1.1\r\n` +
            `Host: 127.0.0.1:${port}\r\n` +
            `Authorization: Bearer ${t.apiKey}\r\n` +
            'Content-Type: application/json\r\n' +
            `Idempotency-Key: ${randomUUID()}\r\n` +
            'Connection: close\r\n\r\n',
        );
      });
      let data = '';
      socket.on('data', (c) => (data += c.toString('utf8')));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 202 Accepted');
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ workflow_id: workflowId, status: 'running' });
  });

  it('GET an execution with include_step_results=false and =true', async () => {
    const run = await clientPost(`/api/v1/workflows/${workflowId}/run-async`);
    const id = run.json().execution_id as string;
    const light = await send('GET', `/api/v1/executions/${id}?include_step_results=false`);
    expect(light.status).toBe(200);
    expect(light.json()).not.toHaveProperty('steps');
    expect(light.json()).toMatchObject({ execution_id: id, workflow_id: workflowId });
    expect(light.json().error === null || typeof light.json().error === 'string').toBe(true);

    const full = await eventually(async () => {
      const r = await send('GET', `/api/v1/executions/${id}?include_step_results=true`);
      expect(r.status).toBe(200);
      return r.json().status === 'success' ? r.json() : null;
    });
    expect(full.error).toBeNull();
    expect(Array.isArray(full.steps)).toBe(true);
    expect((full.steps as unknown[]).length).toBe(1);

    const list = await send('GET', `/api/v1/executions?workflow_id=${workflowId}&limit=10`);
    expect(list.status).toBe(200);
    expect((list.json().executions as Array<{ execution_id: string }>).map((e) => e.execution_id)).toContain(id);
  });

  it('retrying run-async with the same Idempotency-Key after a 202 replays it and creates nothing', async () => {
    const key = randomUUID();
    const first = await clientPost(`/api/v1/workflows/${workflowId}/run-async`, key);
    expect(first.status).toBe(202);
    const creditsAfterFirst = await credits();
    const countAfterFirst = await executionCount();

    for (let i = 0; i < 3; i++) {
      const retry = await clientPost(`/api/v1/workflows/${workflowId}/run-async`, key);
      expect(retry.status).toBe(202);
      expect(retry.text).toBe(first.text);
      expect(retry.headers['x-idempotent-replayed']).toBe('true');
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.headers['content-type']).toMatch(/^application\/json/);
    }
    expect(await credits()).toBe(creditsAfterFirst);
    expect(await executionCount()).toBe(countAfterFirst);
  });

  it('stop with an empty JSON body is exactly {execution_id, status: "stopped"}; its retry replays', async () => {
    const run = await clientPost(`/api/v1/workflows/${slowWorkflowId}/run-async`);
    expect(run.status).toBe(202);
    const id = run.json().execution_id as string;
    const key = randomUUID();
    const stop = await clientPost(`/api/v1/executions/${id}/stop`, key);
    expect(stop.status).toBe(200);
    expect(stop.json()).toStrictEqual({ execution_id: id, status: 'stopped' });

    const retry = await clientPost(`/api/v1/executions/${id}/stop`, key);
    expect(retry.status).toBe(200);
    expect(retry.text).toBe(stop.text);
    expect(retry.headers['x-idempotent-replayed']).toBe('true');
    expect(retry.headers['idempotent-replayed']).toBe('true');

    const read = await send('GET', `/api/v1/executions/${id}?include_step_results=false`);
    expect(read.json()).toMatchObject({ status: 'stopped' });
    expect(read.json().completed_at).toMatch(TIMESTAMP);

    // A new stop (new key) on the stopped execution: 400 whose `error` is a string.
    const again = await clientPost(`/api/v1/executions/${id}/stop`);
    expect(again.status).toBe(400);
    expect(typeof again.json().error).toBe('string');
    expect(again.json().error_code).toBe('execution_not_running');
  });

  it('error bodies carry `error` as a string', async () => {
    const cases: Array<[Promise<WireResponse>, number]> = [
      [clientPost('/api/v1/workflows/0123456789abcdef01234567/run-async'), 404],
      [send('GET', '/api/v1/executions/0123456789abcdef01234567?include_step_results=false'), 404],
      [send('GET', '/api/v1/executions?limit=0'), 400],
      [send('GET', '/api/v1/workspace', { headers: { Authorization: 'Bearer sk_live_nope' } }), 401],
    ];
    for (const [pending, status] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.json();
      expect(typeof body.error).toBe('string');
      expect((body.error as string).length).toBeGreaterThan(0);
      expect(typeof body.error_code).toBe('string');
    }
  });

  it('a failed execution reports `error` as a string', async () => {
    const res = await send('POST', '/api/v1/workflows', {
      body: JSON.stringify({ name: 'Wire failing', steps: [{ type: 'transform', expression: '$error("boom")' }] }),
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID() },
    });
    const failing = res.json().id as string;
    const run = await clientPost(`/api/v1/workflows/${failing}/run-async`);
    const id = run.json().execution_id as string;
    const done = await eventually(async () => {
      const r = await send('GET', `/api/v1/executions/${id}?include_step_results=false`);
      return r.json().status === 'failed' ? r.json() : null;
    });
    expect(typeof done.error).toBe('string');
    expect(done.error_code).toBe('expression_error');
  });
});
