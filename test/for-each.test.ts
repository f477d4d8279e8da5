import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type Server, createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createWorkspaceWithKey } from '../src/workspaces/create-workspace.js';
import { type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { CLI } from './helpers/child.js';
import { type Json, createWorkflow, finished, get, run } from './helpers/api.js';
import { type TestServer, eventually, openMigrated, startTestServer } from './helpers/server.js';

// for_each: items in order, item/item_index in the context, concurrency, the first
// failure aborting the items in flight, progress, each item checkpointed (a kill -9
// never re-runs a completed item), sub-workflows per item, and write-time checks.

/** A loopback target that counts requests per item (`/item/N`), answering after `delayMs`. */
async function target(delayMs: (n: number) => number, status: (n: number) => number = () => 200) {
  const hits = new Map<number, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  const aborted: number[] = [];
  const server: Server = createHttpServer((req, res) => {
    const n = Number(/\/item\/(\d+)/.exec(req.url ?? '')?.[1] ?? -1);
    hits.set(n, (hits.get(n) ?? 0) + 1);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let answered = false;
    req.socket.once('close', () => {
      inFlight -= answered ? 0 : 1;
      if (!answered) aborted.push(n);
    });
    setTimeout(() => {
      if (res.destroyed) return;
      answered = true;
      inFlight--;
      res.writeHead(status(n), { 'content-type': 'application/json' }).end(JSON.stringify({ n }));
    }, delayMs(n));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, server, max: () => maxInFlight, aborted };
}

describeEachBackend('for_each', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true });
  });
  afterAll(async () => t.close());

  it('runs the step once per item, with item and item_index, results in item order', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '[3, 1, 2]' },
      { type: 'transform', for_each: 'steps[0]', for_each_concurrency: 3, expression: '{ "i": item_index, "x": item * 10, "n": input.n }' },
    ]);
    const e = await finished(t, await run(t, wf, { n: 'in' }));
    expect(e.status, JSON.stringify(e)).toBe('success');
    expect(e.steps[1].result).toEqual([{ i: 0, x: 30, n: 'in' }, { i: 1, x: 10, n: 'in' }, { i: 2, x: 20, n: 'in' }]);
    expect(e.steps[1].progress).toBeNull();
    const empty = await finished(t, await run(t, await createWorkflow(t, [{ type: 'transform', for_each: '[]', expression: 'item' }])));
    expect(empty.steps[0].result).toEqual([]);
  });

  it('http items run for_each_concurrency at a time, in item order, with progress while they run', async () => {
    const http = await target((n) => 150 + (5 - n) * 30);
    try {
      const wf = await createWorkflow(t, [{ type: 'http', for_each: '[0,1,2,3,4,5]', for_each_concurrency: 2, url: `${http.url}/item/{{ item }}` }]);
      const id = await run(t, wf);
      const mid = await eventually(async () => {
        const e = await get(t, id);
        return e.steps[0].progress && e.steps[0].progress.completed >= 1 && e.status === 'running' ? e : null;
      });
      expect(mid.steps[0].progress.total).toBe(6);
      const e = await finished(t, id);
      expect(e.status).toBe('success');
      expect(e.steps[0].result.map((r: Json) => r.body.n)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(http.max()).toBe(2);
      expect([...http.hits.values()].every((h) => h === 1)).toBe(true);
    } finally {
      http.server.close();
    }
  });

  it('the first failing item fails the step and aborts the items in flight', async () => {
    const http = await target((n) => (n === 1 ? 50 : 3000), (n) => (n === 1 ? 500 : 200));
    try {
      const wf = await createWorkflow(t, [{ type: 'http', for_each: '[0,1,2,3]', for_each_concurrency: 3, url: `${http.url}/item/{{ item }}` }]);
      const e = await finished(t, await run(t, wf));
      expect(e).toMatchObject({ status: 'failed', error_code: 'http_status' });
      expect(e.steps[0].error).toMatch(/^item 1: /);
      await eventually(async () => http.aborted.length >= 2);
      expect(http.hits.has(3)).toBe(false); // never started
    } finally {
      http.server.close();
    }
  });

  it('bounds the items and refuses what is not an array', async () => {
    const many = await finished(t, await run(t, await createWorkflow(t, [{ type: 'transform', for_each: '[1..1001]', expression: 'item' }])));
    expect(many.error_code).toBe('expression_error');
    expect(many.steps[0].error).toMatch(/^for_each: gave 1001 items/);
    const scalar = await finished(t, await run(t, await createWorkflow(t, [{ type: 'transform', for_each: '"x"', expression: 'item' }])));
    expect(scalar.steps[0].error).toMatch(/^for_each: must give an array/);
  });

  it('runs a sub-workflow per item and waits for all of them', async () => {
    const child = await createWorkflow(t, [{ type: 'delay', seconds: 0.2 }, { type: 'transform', expression: 'input * input' }], 'square');
    const wf = await createWorkflow(t, [{ type: 'workflow', for_each: '[1,2,3]', for_each_concurrency: 3, workflow_id: child, input: '{{ item }}' }]);
    const e = await finished(t, await run(t, wf), 15_000);
    expect(e.status, JSON.stringify(e)).toBe('success');
    expect(e.steps[0].result.map((r: Json) => r.result)).toEqual([1, 4, 9]);
    expect(new Set(e.steps[0].result.map((r: Json) => r.execution_id)).size).toBe(3);
  });

  it('refuses bad for_each definitions when the workflow is written, naming the field', async () => {
    const bad = async (steps: unknown[], pattern: RegExp) => {
      const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'bad', steps } });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error).toMatch(pattern);
    };
    const ok = { type: 'transform', expression: '1' };
    await bad([ok, { type: 'transform', expression: 'item', for_each: '[1, 2' }], /^steps\[1\]\.for_each: /);
    await bad([ok, { type: 'transform', expression: 'item', for_each: '[1]', for_each_concurrency: 21 }], /^steps\[1\]\.for_each_concurrency/);
    await bad([{ type: 'transform', expression: 'item', for_each: '[1]', for_each_concurrency: 0 }], /^steps\[0\]\.for_each_concurrency/);
    await bad([{ type: 'delay', seconds: 1, for_each: '[1]' }], /^steps\[0\]/);
    await bad([{ type: 'approval', for_each: '[1]' }], /^steps\[0\]/);
    await bad([{ type: 'http', url: 'http://example.com/', for_each: 'secrets.X' }], /^steps\[0\]\.for_each: secrets are not available/);
  });
});

describeEachBackend('for_each: kill -9 mid-step', (backend) => {
  let database: TestDatabase | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
    await database?.drop();
    database = undefined;
  });

  const freePort = async () => {
    const s = createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    s.close();
    await once(s, 'close');
    return port;
  };

  async function serve(url: string, key: string) {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port)], {
      env: { PATH: process.env.PATH ?? '', SKIPFLOW_DATABASE_URL: url, SKIPFLOW_LEASE_MS: '1500', SKIPFLOW_POLL_INTERVAL_MS: '100', SKIPFLOW_RATE_LIMIT: '0', SKIPFLOW_ALLOW_PRIVATE_NETWORK: '1', LOG_LEVEL: 'silent', HOST: '127.0.0.1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      return (await res.json()) as Json;
    };
    await eventually(async () => (await call('GET', '/api/v1/workspace').catch(() => null))?.workspace_id, 20_000, 50);
    return { child, call };
  }

  it('completed items are not run again after the worker is killed', async () => {
    database = await createTestDatabase(backend);
    const inspect = await openMigrated(database.url);
    const ws = await inspect.db.transaction().execute((trx) => createWorkspaceWithKey(trx, { name: 'for_each crash', credits: 100, now: Date.now() }));
    await inspect.close();
    // Items 0–2 answer at once; items 3–5 are slow, so the kill lands while they run.
    const http = await target((n) => (n < 3 ? 0 : 60_000));
    try {
      const first = await serve(database.url, ws.api_key);
      const wf = await first.call('POST', '/api/v1/workflows', { name: 'crash', steps: [{ type: 'http', for_each: '[0,1,2,3,4,5]', url: `${http.url}/item/{{ item }}`, timeout_ms: 120_000 }] });
      const id = (await first.call('POST', `/api/v1/workflows/${wf.id}/run-async`, {})).execution_id as string;
      await eventually(async () => http.hits.has(3));
      const progress = (await first.call('GET', `/api/v1/executions/${id}?include_step_results=true`)).steps[0].progress;
      expect(progress).toEqual({ total: 6, completed: 3 });
      first.child.kill('SIGKILL');
      await once(first.child, 'exit');
      // The slow items answer at once from now on.
      const hitsBefore = new Map(http.hits);
      http.server.close();
      http.server.closeAllConnections();
      const again = createHttpServer((req, res) => {
        const n = Number(/\/item\/(\d+)/.exec(req.url ?? '')?.[1] ?? -1);
        http.hits.set(n, (http.hits.get(n) ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ n }));
      });
      again.listen(Number(new URL(http.url).port), '127.0.0.1');
      await once(again, 'listening');
      try {
        const second = await serve(database.url, ws.api_key);
        const e = await eventually(async () => {
          const r = await second.call('GET', `/api/v1/executions/${id}?include_step_results=true`);
          return r.status !== 'running' ? r : null;
        }, 30_000);
        expect(e.status, JSON.stringify(e)).toBe('success');
        expect(e.steps[0].result.map((r: Json) => r.body.n)).toEqual([0, 1, 2, 3, 4, 5]);
        // Completed before the kill: sent exactly once. The one in flight: sent again.
        for (const n of [0, 1, 2]) expect(http.hits.get(n), `item ${n}`).toBe(1);
        expect(hitsBefore.get(3)).toBe(1);
        expect(http.hits.get(3)).toBe(2);
        for (const n of [4, 5]) expect(http.hits.get(n)).toBe(1);
      } finally {
        again.close();
        again.closeAllConnections();
      }
    } finally {
      http.server.close();
    }
  });
});
