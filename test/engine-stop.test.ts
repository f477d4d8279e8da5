import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Abandoned, runAttempt } from '../src/engine/run-step.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import type { ExpressionContext, StepType } from '../src/engine/steps/step-type.js';
import type { Server } from '../src/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { runningExecutions, stepRows } from './helpers/rows.js';
import { type TestServer, eventually, settle, silentLogger, startServer, startTestServer } from './helpers/server.js';

// docs/api.md#execution, Stop: the execution is `stopped` at once; the step in flight is aborted and
// marked `stopped`; later steps stay `pending`; completed steps keep their results;
// nothing turns it back; and a stop racing the end of the run leaves exactly one
// consistent terminal state (and the workspace's running count balanced).

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const context: ExpressionContext = {
  input: null,
  steps: [],
  execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' },
  workflow: { workflow_id: 'w', name: 'W' },
};

function fakeType(run: StepType['run']): StepType {
  return { type: 'fake', schema: {} as StepType['schema'], defaultTimeoutMs: 30_000, expressionFields: [], run };
}

describe('engine: aborting an attempt in flight (framework guarantee)', () => {
  const attempt = (type: StepType, signal: AbortSignal) =>
    runAttempt({ type, def: { type: 'fake' } as unknown as StepDefinition, context, stepKey: 'e:0', attempt: 1, wakeAt: null, signal, now: Date.now, services: { allowPrivateNetwork: false, smtpUrl: null } });

  it('aborts the step’s own signal and throws Abandoned promptly', async () => {
    let stepSignal: AbortSignal | undefined;
    let released = false;
    const type = fakeType(
      (_ctx, signal) =>
        new Promise((_, reject) => {
          stepSignal = signal;
          signal.addEventListener('abort', () => {
            released = true; // e.g. an HTTP request cancelled
            reject(new Error('aborted by signal'));
          });
        }),
    );
    const controller = new AbortController();
    const pending = attempt(type, controller.signal).catch((e: unknown) => e);
    await eventually(async () => stepSignal);
    expect(stepSignal!.aborted).toBe(false);
    const t0 = Date.now();
    controller.abort();
    const error = await pending;
    expect(Date.now() - t0).toBeLessThan(100);
    expect(error).toBeInstanceOf(Abandoned);
    expect(stepSignal!.aborted).toBe(true);
    expect(released).toBe(true);
  });

  it('throws Abandoned promptly even when the step ignores its signal', async () => {
    let started = false;
    const type = fakeType(() => {
      started = true;
      return new Promise(() => {});
    });
    const controller = new AbortController();
    const pending = attempt(type, controller.signal).catch((e: unknown) => e);
    await eventually(async () => started);
    const t0 = Date.now();
    controller.abort();
    expect(await pending).toBeInstanceOf(Abandoned);
    expect(Date.now() - t0).toBeLessThan(100);
  });

  it('throws Abandoned (not a failure) when the step rejects because of the abort', async () => {
    const type = fakeType(async (_ctx, signal) => {
      await new Promise((r) => signal.addEventListener('abort', r));
      throw new Error('socket hang up');
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    expect(await attempt(type, controller.signal).catch((e: unknown) => e)).toBeInstanceOf(Abandoned);
  });

  it('does not start an attempt once its execution was stopped', async () => {
    let ran = false;
    const type = fakeType(async () => {
      ran = true;
      return { kind: 'completed', result: 1 };
    });
    const controller = new AbortController();
    controller.abort();
    expect(await attempt(type, controller.signal).catch((e: unknown) => e)).toBeInstanceOf(Abandoned);
    expect(ran).toBe(false);
  });
});

describeEachBackend('engine: stop', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    // One worker slot: an aborted attempt that kept its slot would block everything after it.
    t = await startTestServer(backend, { workerConcurrency: 1, leaseMs: 1500, pollIntervalMs: 100 });
  });
  afterAll(() => t?.close());

  async function createWorkflow(steps: unknown[]): Promise<string> {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'engine-stop', steps } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  }
  async function run(workflowId: string, input: unknown = {}): Promise<string> {
    const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: { input } });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().execution_id as string;
  }
  async function get(id: string): Promise<Json> {
    const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as Json;
  }
  const stop = (id: string) => t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
  const rows = (id: string) => stepRows(t.server.deps.db.db, id);
  const execRow = (id: string) => t.server.deps.db.db.selectFrom('executions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const runningCount = async () =>
    runningExecutions(t.server.deps.db.db, t.workspaceId);

  function expectStoppedShape(e: Json, stoppedIdx: number) {
    expect(e.status).toBe('stopped');
    expect(e.completed_at).not.toBeNull();
    e.steps.forEach((s: Json, i: number) => {
      if (i < stoppedIdx) expect(s.status).toBe('completed');
      else if (i === stoppedIdx) {
        expect(s).toMatchObject({ status: 'stopped', error_code: 'stopped', result: null });
        expect(typeof s.error).toBe('string');
        expect(s.completed_at).not.toBeNull();
      } else expect(s).toMatchObject({ status: 'pending', result: null, error: null, error_code: null, attempts: 0, started_at: null, completed_at: null });
    });
  }

  it('stops a sleeping execution: stopped at once, delay step `stopped`, later steps pending, results kept, never resumed', async () => {
    const wf = await createWorkflow([
      { type: 'transform', expression: '{ "kept": input.v }' },
      { type: 'delay', seconds: 1 },
      { type: 'transform', expression: '"never"' },
      { type: 'transform', expression: '"never either"' },
    ]);
    const id = await run(wf, { v: 'x' });
    await eventually(async () => {
      const r = await rows(id);
      return r[1]!.phase === 'sleep' ? r : null;
    });
    const before = await rows(id);
    const res = await stop(id);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ execution_id: id, status: 'stopped' });
    const e = await get(id);
    expectStoppedShape(e, 1);
    expect(e.steps[0].result).toEqual({ kept: 'x' });
    const list = await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${wf}` });
    expect(list.json().executions[0]).toMatchObject({ execution_id: id, status: 'stopped', completed_at: e.completed_at });
    const stoppedSteps = await rows(id);
    const stoppedRow = await execRow(id);
    expect(stoppedRow.lease_owner).toBeNull();
    expect(stoppedRow.available_at).toBeNull();
    expect(await runningCount()).toBe(0);

    // Twice the delay later: nothing moved.
    await settle(2000);
    const after = await rows(id);
    expect(after[0]).toEqual(before[0]);
    expect(after).toEqual(stoppedSteps);
    expect(after.map((r) => r.status)).toEqual(['completed', 'stopped', 'pending', 'pending']);
    expect(await execRow(id)).toEqual(stoppedRow);
    expect(await get(id)).toEqual(e);
    // A second stop is refused.
    const again = await stop(id);
    expect(again.statusCode).toBe(400);
    expect(again.json().error_code).toBe('execution_not_running');
  });

  it('stops an attempt in flight: aborted within 1 s, its slot freed, never overwritten by the attempt', async () => {
    const wf = await createWorkflow([
      { type: 'transform', expression: '"done first"' },
      // Runs (off the main thread) for up to 20 s unless aborted.
      { type: 'transform', timeout_ms: 20_000, expression: '($f := function($x){ $f($x) }; $f(1))' },
      { type: 'transform', expression: '"never"' },
    ]);
    const id = await run(wf);
    // A transform is not marked before it runs: it is in flight once the execution
    // has moved on to it and the worker holds it.
    await eventually(async () => (await execRow(id)).current_step === 1 && t.server.worker!.activeExecutions === 1);
    await settle(150); // well inside the evaluation
    expect(t.server.worker!.activeExecutions).toBe(1);
    const t0 = Date.now();
    const res = await stop(id);
    expect(res.statusCode).toBe(200);
    expectStoppedShape(await get(id), 1);
    // The worker lets go of it within 1 s (one slot: the next execution can run).
    await eventually(async () => t.server.worker!.activeExecutions === 0, 1000, 10);
    const quick = await createWorkflow([{ type: 'transform', expression: '"quick"' }]);
    const q = await run(quick);
    await eventually(async () => (await get(q)).status === 'success', 1500, 20);
    expect(Date.now() - t0).toBeLessThan(2000);
    // Later, the abandoned attempt has written nothing.
    await settle(500);
    const e = await get(id);
    expectStoppedShape(e, 1);
    expect(e.steps[0].result).toBe('done first');
    expect(e.error).toBeNull();
    expect(e.error_code).toBeNull();
    expect(await runningCount()).toBe(0);
  });

  it('a stop racing the run: one consistent terminal state each time, running count balanced', async () => {
    const wf = await createWorkflow([{ type: 'transform', expression: '{ "v": input.i }' }]);
    const outcomes: Array<{ id: string; stopStatus: number }> = [];
    for (let i = 0; i < 20; i++) {
      const id = await run(wf, { i });
      // Vary the interleaving: before the claim, during the run, after the end.
      if (i % 4 === 1) await new Promise((r) => setImmediate(r));
      if (i % 4 === 2) await new Promise((r) => setTimeout(r, 2));
      if (i % 4 === 3) await new Promise((r) => setTimeout(r, 8));
      const res = await stop(id);
      expect([200, 400]).toContain(res.statusCode);
      if (res.statusCode === 200) expect(res.json()).toEqual({ execution_id: id, status: 'stopped' });
      else expect(res.json().error_code).toBe('execution_not_running');
      outcomes.push({ id, stopStatus: res.statusCode });
      // The count never goes negative (a CHECK would also refuse it) and never leaks.
      const count = await runningCount();
      expect(count).toBeGreaterThanOrEqual(0);
      expect(count).toBeLessThanOrEqual(1);
    }
    // Settle, then check each one twice, some time apart.
    await eventually(async () => (await runningCount()) === 0, 5000);
    const firstLook = new Map<string, Json>();
    for (const { id, stopStatus } of outcomes) {
      const e = await get(id);
      firstLook.set(id, e);
      if (stopStatus === 200) {
        expect(e.status).toBe('stopped');
        expect(['pending', 'stopped']).toContain(e.steps[0].status);
        expect(e.steps[0].result).toBeNull();
        if (e.steps[0].status === 'stopped') expect(e.steps[0].error_code).toBe('stopped');
      } else {
        expect(e.status).toBe('success');
        expect(e.steps[0]).toMatchObject({ status: 'completed', result: { v: expect.any(Number) }, error: null });
      }
      expect(e.completed_at).not.toBeNull();
      expect(e.error_code).toBeNull();
      const row = await execRow(id);
      expect(row.lease_owner).toBeNull();
      expect(row.available_at).toBeNull();
    }
    await settle(600); // a moment later, nothing has changed:
    const list = await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${wf}&limit=100` });
    const listed = new Map<string, Json>(list.json().executions.map((x: Json) => [x.execution_id, x]));
    for (const { id } of outcomes) {
      const e = await get(id);
      expect(e).toEqual(firstLook.get(id));
      expect(listed.get(id)).toMatchObject({ status: e.status, completed_at: e.completed_at });
    }
    expect(await runningCount()).toBe(0);
    // The race went both ways at least once over the rounds (else the test proves little).
    expect(outcomes.some((o) => o.stopStatus === 200)).toBe(true);
  });
});

describeEachBackend('engine: stop reaches the worker of another process', (backend) => {
  let api: TestServer | undefined;
  let worker: Server | undefined;
  afterEach(async () => {
    await worker?.close();
    worker = undefined;
    await api?.close();
    api = undefined;
  });

  it('aborts the attempt in flight within 1 s although the stop was made by another process', async () => {
    // Two servers on one database, each with its own in-process signals: an API-only
    // one that takes the stop, and a worker-only one with the default 15 s lease (so
    // its lease heartbeat alone would notice the stop only after ~5 s).
    api = await startTestServer(backend, { role: 'api' });
    worker = await startServer({ ...api.config, role: 'worker', leaseMs: 15_000, pollIntervalMs: 100 }, { logger: silentLogger, listen: false });
    const wf = await api.request({
      method: 'POST',
      url: '/api/v1/workflows',
      body: { name: 'remote stop', steps: [{ type: 'transform', timeout_ms: 30_000, expression: '($f := function($x){ $f($x) }; $f(1))' }] },
    });
    const res = await api.request({ method: 'POST', url: `/api/v1/workflows/${wf.json().id}/run-async`, body: {} });
    const id = res.json().execution_id as string;
    const db = api.server.deps.db.db;
    await eventually(async () => {
      const row = await db.selectFrom('executions').select('lease_owner').where('id', '=', id).executeTakeFirstOrThrow();
      return row.lease_owner !== null && worker!.worker!.activeExecutions === 1;
    });
    await settle(100); // well inside the evaluation
    const t0 = Date.now();
    const stop = await api.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
    expect(stop.statusCode).toBe(200);
    await eventually(async () => worker!.worker!.activeExecutions === 0, 3000, 10);
    expect(Date.now() - t0).toBeLessThan(1000);
    const steps = await db.selectFrom('execution_steps').selectAll().where('execution_id', '=', id).execute();
    expect(steps[0]).toMatchObject({ status: 'stopped', error_code: 'stopped' });
  });
});
