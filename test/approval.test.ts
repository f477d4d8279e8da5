import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { BACKENDS, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { type Json, createWorkflow, finished, get, run } from './helpers/api.js';
import { type TestServer, eventually, silentLogger, startServer, startTestServer } from './helpers/server.js';

// The approval step: a durable wait for a decision, decided through the API (on any
// process), with a timeout, idempotent decisions, and a stop that ends the wait.

const waiting = (t: TestServer, id: string) =>
  eventually(async () => {
    const e = await get(t, id);
    return e.waiting_for ? e : null;
  });

const decide = (t: TestServer, id: string, index: number, verb: 'approve' | 'reject', body?: unknown, headers?: Record<string, string>) =>
  t.request({ method: 'POST', url: `/api/v1/executions/${id}/steps/${index}/${verb}`, body, headers });

describeEachBackend('approval step', (backend) => {
  let t: TestServer;
  let keyId: string;
  beforeAll(async () => {
    t = await startTestServer(backend);
    keyId = (await t.server.deps.db.db.selectFrom('api_keys').select('id').executeTakeFirstOrThrow()).id;
  });
  afterAll(async () => t.close());

  it('waits without a worker, shows waiting_for, and an approval moves the execution on', async () => {
    const wf = await createWorkflow(t, [
      { type: 'approval', name: 'ship it', message: 'Ship version {{ input.v }}?', timeout_seconds: 3600 },
      { type: 'transform', expression: '{ "data": steps[0].data, "by": steps[0].decided_by }' },
    ]);
    const id = await run(t, wf, { v: 7 });
    const e = await waiting(t, id);
    expect(e.status).toBe('running');
    expect(e.waiting_for).toMatchObject({ step_index: 0, type: 'approval', message: 'Ship version 7?' });
    const expires = Date.parse(e.waiting_for.expires_at);
    expect(expires).toBeGreaterThan(Date.now() + 3500_000);
    expect(e.steps[0].status).toBe('running');
    // No worker holds it while it waits.
    expect(t.server.worker!.activeExecutions).toBe(0);
    // The short GET (no steps) shows it too.
    const short = (await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).json();
    expect(short.waiting_for.step_index).toBe(0);

    const headers = { 'idempotency-key': `approve-${id}` };
    const res = await decide(t, id, 0, 'approve', { data: { lgtm: true }, comment: 'go' }, headers);
    expect(res.statusCode, res.body).toBe(200);
    const step = res.json();
    expect(step).toMatchObject({ index: 0, type: 'approval', status: 'completed', error: null });
    expect(step.result).toMatchObject({ approved: true, data: { lgtm: true }, comment: 'go', decided_by: keyId });
    expect(typeof step.result.decided_at).toBe('string');
    const replay = await decide(t, id, 0, 'approve', { data: { lgtm: true }, comment: 'go' }, headers);
    expect(replay.statusCode).toBe(200);
    expect(replay.body).toBe(res.body);
    expect(replay.headers['idempotent-replayed']).toBe('true');

    const done = await finished(t, id);
    expect(done.status).toBe('success');
    expect(done.waiting_for).toBeNull();
    expect(done.steps[1].result).toEqual({ data: { lgtm: true }, by: keyId });
    const again = await decide(t, id, 0, 'approve', {});
    expect(again.statusCode).toBe(400);
    expect(again.json().error_code).toBe('step_not_waiting');
  });

  it('a rejection fails the step with rejected and the execution with it', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval' }, { type: 'transform', expression: '1' }]);
    const id = await run(t, wf);
    await waiting(t, id);
    const res = await decide(t, id, 0, 'reject', { comment: 'not today' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ status: 'failed', error_code: 'rejected' });
    expect(res.json().error).toContain('not today');
    const e = await finished(t, id);
    expect(e).toMatchObject({ status: 'failed', error_code: 'rejected', error_step_index: 0, waiting_for: null });
    expect(e.steps[1].status).toBe('pending');
  });

  it('a rejection with continue_on_error goes on to the next step', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval', continue_on_error: true }, { type: 'transform', expression: '"after"' }]);
    const id = await run(t, wf);
    await waiting(t, id);
    expect((await decide(t, id, 0, 'reject')).statusCode).toBe(200);
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps[0].error_code).toBe('rejected');
    expect(e.steps[1].result).toBe('after');
  });

  it('with no decision in time it fails with timeout', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval', timeout_seconds: 1 }]);
    const id = await run(t, wf);
    await waiting(t, id);
    const e = await finished(t, id, 15_000);
    expect(e).toMatchObject({ status: 'failed', error_code: 'timeout' });
    expect(e.steps[0].error_code).toBe('timeout');
    expect((await decide(t, id, 0, 'approve')).json().error_code).toBe('step_not_waiting');
  });

  it('answers step_not_waiting for anything but a waiting approval', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }, { type: 'approval' }]);
    const id = await run(t, wf);
    await waiting(t, id);
    for (const [index, verb] of [[0, 'approve'], [0, 'reject'], [2, 'approve'], [99, 'approve']] as const) {
      const res = await decide(t, id, index, verb);
      expect(res.statusCode, `${index} ${verb}`).toBe(400);
      expect(res.json().error_code).toBe('step_not_waiting');
    }
    const other = await t.createWorkspace('other approvals');
    const foreign = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/steps/1/approve`, key: other.apiKey, body: {} });
    expect(foreign.statusCode).toBe(404);
    expect((await decide(t, id, 1, 'approve', { unknown: 1 })).statusCode).toBe(400);
    // Nothing was decided by the refused requests.
    expect((await get(t, id)).waiting_for.step_index).toBe(1);
    expect((await decide(t, id, 1, 'approve')).statusCode).toBe(200);
  });

  it('a stop while it waits stops it; a decision after that is refused', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval' }]);
    const id = await run(t, wf);
    await waiting(t, id);
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, body: {} })).statusCode).toBe(200);
    const e = await get(t, id);
    expect(e).toMatchObject({ status: 'stopped', waiting_for: null });
    expect(e.steps[0]).toMatchObject({ status: 'stopped', error_code: 'stopped' });
    expect((await decide(t, id, 0, 'approve')).json().error_code).toBe('step_not_waiting');
  });

  it('a decision and a stop racing: exactly one wins', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval' }, { type: 'delay', seconds: 3600 }]);
    for (let round = 0; round < 5; round++) {
      const id = await run(t, wf);
      await waiting(t, id);
      const [approve, stop] = await Promise.all([decide(t, id, 0, 'approve'), t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, body: {} })]);
      expect(stop.statusCode).toBe(200); // the execution is running either way
      const e = await get(t, id);
      expect(e.status).toBe('stopped');
      if (approve.statusCode === 200) expect(e.steps[0].status).toBe('completed');
      else {
        expect(approve.json().error_code).toBe('step_not_waiting');
        expect(e.steps[0].status).toBe('stopped');
      }
    }
  });
});

describeEachBackend('approval across restarts', (backend) => {
  it('a waiting approval survives a restart and is decided on the new server', async () => {
    const database = await createTestDatabase(backend);
    const config = loadConfig({}, { databaseUrl: database.url, rateLimitPerMinute: 0, authFailuresPerMinute: 0, logLevel: 'silent', leaseMs: 2000, pollIntervalMs: 100, engineThread: false });
    try {
      const first = await startServer(config, { logger: silentLogger, listen: false });
      const key = first.bootstrapKey!.api_key;
      const call = (server: typeof first, method: string, url: string, body?: unknown) =>
        server.app!.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
      const wf = (await call(first, 'POST', '/api/v1/workflows', { name: 'r', steps: [{ type: 'approval', message: 'm' }, { type: 'transform', expression: '"done"' }] })).json().id;
      const id = (await call(first, 'POST', `/api/v1/workflows/${wf}/run-async`, {})).json().execution_id;
      await eventually(async () => (await call(first, 'GET', `/api/v1/executions/${id}`)).json().waiting_for);
      await first.close();
      const second = await startServer(config, { logger: silentLogger, listen: false });
      try {
        expect((await call(second, 'GET', `/api/v1/executions/${id}`)).json().waiting_for).toMatchObject({ step_index: 0, message: 'm' });
        expect((await call(second, 'POST', `/api/v1/executions/${id}/steps/0/approve`, {})).statusCode).toBe(200);
        const e: Json = await eventually(async () => {
          const r = (await call(second, 'GET', `/api/v1/executions/${id}?include_step_results=true`)).json();
          return r.status !== 'running' ? r : null;
        });
        expect(e.status).toBe('success');
        expect(e.steps[1].result).toBe('done');
      } finally {
        await second.close();
      }
    } finally {
      await database.drop();
    }
  });
});

describe.runIf(BACKENDS.includes('postgres'))('approval decided on another process [postgres]', () => {
  it('an api-only process takes the decision; the engine on the other one goes on', async () => {
    const database = await createTestDatabase('postgres');
    const base = { databaseUrl: database.url, rateLimitPerMinute: 0, authFailuresPerMinute: 0, logLevel: 'silent', leaseMs: 2000, pollIntervalMs: 60_000, engineThread: false };
    const engine = await startServer(loadConfig({}, { ...base, role: 'worker' }), { logger: silentLogger, listen: false });
    const api = await startServer(loadConfig({}, { ...base, role: 'api' }), { logger: silentLogger, listen: false });
    try {
      const key = (engine.bootstrapKey ?? api.bootstrapKey)!.api_key;
      const call = (method: string, url: string, body?: unknown) =>
        api.app!.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
      const wf = (await call('POST', '/api/v1/workflows', { name: 'x', steps: [{ type: 'approval' }, { type: 'transform', expression: '"went on"' }] })).json().id;
      const id = (await call('POST', `/api/v1/workflows/${wf}/run-async`, {})).json().execution_id;
      await eventually(async () => (await call('GET', `/api/v1/executions/${id}`)).json().waiting_for);
      expect((await call('POST', `/api/v1/executions/${id}/steps/0/approve`, { comment: 'from the api process' })).statusCode).toBe(200);
      // The worker polls only once a minute here: the decision's NOTIFY is what wakes it.
      const e: Json = await eventually(async () => {
        const r = (await call('GET', `/api/v1/executions/${id}?include_step_results=true`)).json();
        return r.status !== 'running' ? r : null;
      }, 10_000);
      expect(e.status).toBe('success');
      expect(e.steps[0].result.comment).toBe('from the api process');
      expect(e.steps[1].result).toBe('went on');
    } finally {
      await api.close();
      await engine.close();
      await database.drop();
    }
  });
});
