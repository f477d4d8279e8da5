import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { createWorkflow, finished, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// docs/operations.md: /healthz, /readyz and /metrics, outside /api/v1 and without a key.

/** The value of one sample line of the Prometheus text (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3]);
  }
  return 0;
}

describeEachBackend('health, readiness and metrics', (backend) => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const metrics = async (headers: Record<string, string> = {}) => {
    const res = await t!.request({ method: 'GET', url: '/metrics', key: null, headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    return res.body;
  };

  it('answers healthz and readyz without a key; readyz is 503 with a reason when the schema is behind', async () => {
    t = await startTestServer(backend);
    const health = await t.request({ method: 'GET', url: '/healthz', key: null });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const ready = await t.request({ method: 'GET', url: '/readyz', key: 'not a key' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });

    // A migration this build knows is missing from the database.
    await sql`delete from kysely_migration where name = '0005-execution-trigger'`.execute(t.server.deps.db.db);
    const behind = await t.request({ method: 'GET', url: '/readyz', key: null });
    expect(behind.statusCode).toBe(503);
    expect(behind.json()).toEqual({ status: 'unavailable', reason: expect.stringContaining('0005-execution-trigger') });
    // And a database that does not answer at all.
    await sql`drop table kysely_migration`.execute(t.server.deps.db.db);
    const broken = await t.request({ method: 'GET', url: '/readyz', key: null });
    expect(broken.statusCode).toBe(503);
    expect(broken.json().reason).toMatch(/does not answer/);
    expect((await t.request({ method: 'GET', url: '/healthz', key: null })).statusCode).toBe(200);
  });

  it('counts starts, finishes, steps and stops from the engine, with route patterns and no ids as labels', async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true });
    const before = await metrics();
    const wf = await createWorkflow(t, [{ type: 'transform', expression: 'input.n' }]);
    const failing = await createWorkflow(t, [{ type: 'transform', expression: '$error("no")' }]);
    const ok = await run(t, wf, { n: 1 });
    const bad = await run(t, failing);
    expect((await finished(t, ok)).status).toBe('success');
    expect((await finished(t, bad)).status).toBe('failed');
    const sleeper = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    const asleep = await run(t, sleeper);
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${asleep}/stop` })).statusCode).toBe(200);

    const after = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('skipflow_executions_started_total', { trigger: 'api' })).toBe(3);
    expect(delta('skipflow_executions_finished_total', { status: 'success' })).toBe(1);
    expect(delta('skipflow_executions_finished_total', { status: 'failed' })).toBe(1);
    expect(delta('skipflow_executions_finished_total', { status: 'stopped' })).toBe(1);
    expect(delta('skipflow_step_duration_seconds_count', { type: 'transform', status: 'completed' })).toBe(1);
    expect(delta('skipflow_step_duration_seconds_count', { type: 'transform', status: 'failed' })).toBe(1);
    for (const name of ['skipflow_executions_running', 'skipflow_executions_due', 'skipflow_lease_takeovers_total', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds']) {
      expect(after, name).toContain(`\n${name} `);
    }
    expect(after).toContain('# TYPE skipflow_webhook_deliveries_total counter');
    expect(sample(after, 'skipflow_http_request_duration_seconds_count', { route: '/api/v1/executions/:id/stop', method: 'POST', status_code: '200' })).toBeGreaterThanOrEqual(1);
    for (const id of [wf, ok, bad, asleep]) expect(after).not.toContain(id);
  });

  it('shows the running and due executions as gauges, and takeovers of lapsed leases', async () => {
    // A minute-long poll: the worker claims only when a run-async wakes it.
    t = await startTestServer(backend, { pollIntervalMs: 60_000 });
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    const id = await run(t, wf);
    await eventually(async () => sample(await metrics(), 'skipflow_executions_running') >= 1);
    // A lease that lapsed with its owner still named: the next claim takes it over.
    const before = sample(await metrics(), 'skipflow_lease_takeovers_total');
    await t.server.deps.db.db.updateTable('executions').set({ lease_owner: 'dead-worker', available_at: 0 }).where('id', '=', id).execute();
    expect(sample(await metrics(), 'skipflow_executions_due')).toBeGreaterThanOrEqual(1);
    await run(t, wf); // wakes the worker, whose claim takes the lapsed lease over
    await eventually(async () => sample(await metrics(), 'skipflow_lease_takeovers_total') > before);
  });

  it('guards /metrics with SKIPFLOW_METRICS_TOKEN when it is set', async () => {
    t = await startTestServer(backend, { metricsToken: 'tok-123' });
    expect((await t.request({ method: 'GET', url: '/metrics', key: null })).statusCode).toBe(401);
    const wrong = await t.request({ method: 'GET', url: '/metrics', key: 'tok-124' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error_code).toBe('unauthorized');
    expect(await metrics({ authorization: 'Bearer tok-123' })).toContain('skipflow_executions_started_total');
  });

  it('reaches /metrics from the engine thread (the default mode)', async () => {
    t = await startTestServer(backend, { engineThread: true });
    expect(t.server.engineThread).not.toBeNull();
    const before = await metrics();
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    expect((await finished(t, await run(t, wf))).status).toBe('success');
    await eventually(async () => {
      const now = await metrics();
      return sample(now, 'skipflow_executions_finished_total', { status: 'success' }) > sample(before, 'skipflow_executions_finished_total', { status: 'success' }) &&
        sample(now, 'skipflow_step_duration_seconds_count', { type: 'transform', status: 'completed' }) > sample(before, 'skipflow_step_duration_seconds_count', { type: 'transform', status: 'completed' });
    });
  });

  it('logs the execution life cycle at info with execution, workflow and workspace ids', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    t = await startTestServer(backend, { logLevel: 'info' }, { logger: pino({ level: 'info' }, sink) });
    const ok = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const bad = await createWorkflow(t, [{ type: 'transform', expression: '1' }, { type: 'transform', expression: '$error("nope")' }]);
    const okId = await run(t, ok);
    const badId = await run(t, bad);
    await finished(t, okId);
    await finished(t, badId);
    await eventually(async () => lines.filter((l) => l.msg === 'execution finished').length >= 2);
    const ids = (id: string, workflowId: string) => ({ executionId: id, workflowId, workspaceId: t!.workspaceId });
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'execution started', trigger: 'api', ...ids(okId, ok) }));
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'execution finished', status: 'success', ...ids(okId, ok) }));
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'step failed', stepIndex: 1, errorCode: 'expression_error', ...ids(badId, bad) }));
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, msg: 'execution finished', status: 'failed', errorCode: 'expression_error', ...ids(badId, bad) }));
  });
});
