import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/api-keys/store.js';
import type { Clock } from '../src/lib/time.js';
import type { Server } from '../src/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { runningExecutions } from './helpers/rows.js';
import { type TestServer, silentLogger, startServer, startTestServer } from './helpers/server.js';

// docs/api.md#limits, request rate: a fixed 60-second window per
// workspace, shared by its keys and by every api process on one database; rejected
// requests do not count; 0 disables it (and its headers).

const LIMIT = 5;

/** Real time shifted to one second into a fresh minute: the fixed window cannot roll
 * over during the test (every server on one database must share the same clock). */
function freshMinuteClock(): Clock {
  const offset = (((1000 - (Date.now() % 60_000)) % 60_000) + 60_000) % 60_000;
  return { now: () => Date.now() + offset };
}

function expectError(res: LightMyRequestResponse, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
  expect(body.error_code).toBe(code);
  expect(typeof body.error).toBe('string');
}

function rateHeaders(res: LightMyRequestResponse) {
  return {
    limit: res.headers['x-ratelimit-limit'],
    remaining: res.headers['x-ratelimit-remaining'],
    reset: res.headers['x-ratelimit-reset'],
  };
}

describeEachBackend('rate limit', (backend) => {
  let t: TestServer;
  let clock: Clock;

  beforeAll(async () => {
    clock = freshMinuteClock();
    t = await startTestServer(backend, { rateLimitPerMinute: LIMIT }, { clock });
  });
  afterAll(() => t?.close());

  const get = (key: string, url = '/api/v1/workflows') => t.request({ method: 'GET', url, key });

  it('every authenticated response carries X-RateLimit-Limit, -Remaining and -Reset', async () => {
    const { apiKey } = await t.createWorkspace('headers');
    for (let i = 1; i <= LIMIT; i++) {
      const res = await get(apiKey);
      expect(res.statusCode).toBe(200);
      const h = rateHeaders(res);
      expect(h.limit).toBe(String(LIMIT));
      expect(h.remaining).toBe(String(LIMIT - i));
      expect(h.reset).toMatch(/^\d+$/);
      const reset = Number(h.reset);
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(60);
    }
  });

  it('beyond the limit: 429 rate_limited with Retry-After, and the headers', async () => {
    const { apiKey } = await t.createWorkspace('over');
    for (let i = 0; i < LIMIT; i++) expect((await get(apiKey)).statusCode).toBe(200);
    for (const url of ['/api/v1/workflows', '/api/v1/workspace', '/api/v1/executions']) {
      const res = await get(apiKey, url);
      expectError(res, 429, 'rate_limited');
      const retryAfter = Number(res.headers['retry-after']);
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(rateHeaders(res)).toEqual({ limit: String(LIMIT), remaining: '0', reset: expect.stringMatching(/^\d+$/) });
      expect(res.headers['x-request-id']).toBeTruthy();
    }
  });

  it('429 beats 400 and 404', async () => {
    const { apiKey } = await t.createWorkspace('order');
    for (let i = 0; i < LIMIT; i++) expect((await get(apiKey)).statusCode).toBe(200);
    expectError(await t.request({ method: 'POST', url: '/api/v1/workflows', key: apiKey, body: '{oops' }), 429, 'rate_limited');
    expectError(await t.request({ method: 'POST', url: '/api/v1/workflows', key: apiKey, body: { name: '' } }), 429, 'rate_limited');
    expectError(await get(apiKey, '/api/v1/workflows/000000000000000000000000'), 429, 'rate_limited');
    expectError(await get(apiKey, '/api/v1/workflows?limit=0'), 429, 'rate_limited');
  });

  it('is per workspace, shared by all its keys; another workspace is unaffected', async () => {
    const a = await t.createWorkspace('A');
    const b = await t.createWorkspace('B');
    const second = await createApiKey(t.server.deps.db.db, { workspaceId: a.workspaceId, scopes: ['workflows:read'], now: Date.now() });
    for (let i = 0; i < 3; i++) expect((await get(a.apiKey)).statusCode).toBe(200);
    const res4 = await get(second.secret);
    expect(res4.statusCode).toBe(200);
    expect(res4.headers['x-ratelimit-remaining']).toBe('1');
    expect((await get(second.secret)).statusCode).toBe(200);
    expectError(await get(second.secret), 429, 'rate_limited');
    expectError(await get(a.apiKey), 429, 'rate_limited');
    // Workspace B has its whole window.
    const other = await get(b.apiKey);
    expect(other.statusCode).toBe(200);
    expect(other.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1));
  });

  it('rejected requests (401, 403, 429) do not count', async () => {
    const ws = await t.createWorkspace('rejected');
    const readOnly = await createApiKey(t.server.deps.db.db, { workspaceId: ws.workspaceId, scopes: ['workflows:read'], now: Date.now() });
    for (let i = 0; i < 3; i++) {
      expect((await get(readOnly.secret, '/api/v1/workspace')).statusCode).toBe(403);
    }
    const first = await get(ws.apiKey);
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1));
    for (let i = 1; i < LIMIT; i++) expect((await get(ws.apiKey)).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) expect((await get(ws.apiKey)).statusCode).toBe(429);
    // The rejected ones did not push anything into the database's window either.
    if (backend === 'postgres') {
      const rows = await t.server.deps.db.db.selectFrom('rate_windows').selectAll().where('workspace_id', '=', ws.workspaceId).execute();
      expect(rows.map((r) => r.count)).toEqual([LIMIT]);
    }
  });

  it('a rate-limited run-async creates no execution and takes no credit', async () => {
    const ws = await t.createWorkspace('runner', 10);
    const db = t.server.deps.db.db;
    const wf = await t.request({
      method: 'POST',
      url: '/api/v1/workflows',
      key: ws.apiKey,
      body: { name: 'one', steps: [{ type: 'transform', expression: '1' }] },
    });
    expect(wf.statusCode).toBe(201);
    for (let i = 1; i < LIMIT; i++) expect((await get(ws.apiKey)).statusCode).toBe(200);
    const before = await db.selectFrom('workspaces').select('credits').where('id', '=', ws.workspaceId).executeTakeFirstOrThrow();
    expect(before.credits).toBe(10);
    const run = await t.request({
      method: 'POST',
      url: `/api/v1/workflows/${wf.json().id}/run-async`,
      key: ws.apiKey,
      body: { input: 1 },
      headers: { 'idempotency-key': 'rate-limited-run' },
    });
    expectError(run, 429, 'rate_limited');
    expect(Number(run.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const after = await db.selectFrom('workspaces').select(['credits']).where('id', '=', ws.workspaceId).executeTakeFirstOrThrow();
    expect(after.credits).toBe(10);
    expect(await runningExecutions(db, ws.workspaceId)).toBe(0);
    const executions = await db.selectFrom('executions').select('id').where('workspace_id', '=', ws.workspaceId).execute();
    expect(executions).toEqual([]);
    const keys = await db.selectFrom('idempotency_keys').select('key').where('workspace_id', '=', ws.workspaceId).execute();
    expect(keys).toEqual([]);
  });

  it('public routes are not counted and carry no rate-limit headers', async () => {
    const res = await t.request({ method: 'GET', url: '/api/v1/openapi.json', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-ratelimit-limit']).toBeUndefined();
  });

  if (backend === 'postgres') {
    describe('two api processes on one PostgreSQL database', () => {
      let second: Server;
      beforeAll(async () => {
        second = await startServer({ ...t.config, role: 'api' }, { logger: silentLogger, listen: false, clock });
      });
      afterAll(() => second?.close());

      it('share one window', async () => {
        const ws = await t.createWorkspace('shared');
        const viaSecond = (url = '/api/v1/workflows') =>
          second.app!.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ws.apiKey}` } });
        const answers: number[] = [];
        const remaining: string[] = [];
        for (let i = 0; i < LIMIT; i++) {
          const res = i % 2 === 0 ? await get(ws.apiKey) : await viaSecond();
          answers.push(res.statusCode);
          remaining.push(String(res.headers['x-ratelimit-remaining']));
        }
        expect(answers).toEqual(Array(LIMIT).fill(200));
        expect(remaining).toEqual(Array.from({ length: LIMIT }, (_, i) => String(LIMIT - 1 - i)));
        expectError(await viaSecond(), 429, 'rate_limited');
        expectError(await get(ws.apiKey), 429, 'rate_limited');
      });

      it('concurrent requests over both processes admit exactly the limit', async () => {
        const ws = await t.createWorkspace('race');
        const viaSecond = () => second.app!.inject({ method: 'GET', url: '/api/v1/workflows', headers: { authorization: `Bearer ${ws.apiKey}` } });
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? get(ws.apiKey) : viaSecond())));
        const codes = results.map((r) => r.statusCode);
        expect(codes.filter((c) => c === 200)).toHaveLength(LIMIT);
        expect(codes.filter((c) => c === 429)).toHaveLength(20 - LIMIT);
      });
    });
  }
});

describeEachBackend('rate limit disabled (0)', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { rateLimitPerMinute: 0 });
  });
  afterAll(() => t?.close());

  it('sends no X-RateLimit headers and never answers 429', async () => {
    for (let i = 0; i < 30; i++) {
      const res = await t.request({ method: 'GET', url: '/api/v1/workflows' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
      expect(res.headers['x-ratelimit-remaining']).toBeUndefined();
      expect(res.headers['x-ratelimit-reset']).toBeUndefined();
    }
  });
});
