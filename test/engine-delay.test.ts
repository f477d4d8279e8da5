import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deadline } from '../src/engine/deadline.js';
import { delayStep } from '../src/engine/steps/delay.js';
import type { StepContext } from '../src/engine/steps/step-type.js';
import { formatTimestamp } from '../src/lib/time.js';
import type { Server } from '../src/server.js';
import { type Json, createWorkflow, run, get, finished } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { runningExecutions, stepRowsOf } from './helpers/rows.js';
import { type TestServer, eventually, settle, silentLogger, startServer, startTestServer } from './helpers/server.js';

// docs/api.md#steps: a `delay` is a durable timer. While it sleeps the step is `running`, no
// worker slot is held, it never fires early, and it survives a restart.

function stepRows(t: TestServer, ids: string | string[]) {
  return stepRowsOf(t.server.deps.db.db, Array.isArray(ids) ? ids : [ids]);
}

function executionRow(t: TestServer, id: string) {
  return t.server.deps.db.db.selectFrom('executions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Waits until step `idx` of every execution is asleep; returns each wake_at. */
async function asleep(t: TestServer, ids: string[], idx: number, timeoutMs = 10_000): Promise<Map<string, number>> {
  return eventually(async () => {
    const rows = (await stepRows(t, ids)).filter((r) => r.idx === idx);
    if (rows.length !== ids.length || !rows.every((r) => r.status === 'running' && r.phase === 'sleep' && r.wake_at !== null)) return null;
    return new Map(rows.map((r) => [r.execution_id, r.wake_at!]));
  }, timeoutMs);
}

describe('engine: the delay step type', () => {
  const ctx = (fields: Record<string, unknown>, wakeAt: number | null, now: number): StepContext => ({
    fields,
    expressionContext: { input: null, steps: [], execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' }, workflow: { workflow_id: 'w', name: 'W' } },
    stepKey: 'e:0',
    deadline: new Deadline(1000),
    workspaceId: 'w',
    attempt: 1,
    wakeAt,
    timeoutMs: 1000,
    now: () => now,
    services: { allowPrivateNetwork: false, smtpUrl: null },
  });
  const signal = new AbortController().signal;

  it('asks to sleep until now + seconds the first time, and stays asleep until then', async () => {
    const now = 1_700_000_000_000;
    expect(await delayStep.run(ctx({ type: 'delay', seconds: 2.5 }, null, now), signal)).toEqual({ kind: 'sleep', until: now + 2500 });
    // Woken early (e.g. a claim by a clock that runs ahead): sleeps again until the stored time.
    expect(await delayStep.run(ctx({ type: 'delay', seconds: 2.5 }, now + 2500, now + 2499), signal)).toEqual({ kind: 'sleep', until: now + 2500 });
    // The stored time wins over the fields (a restart neither shortens nor lengthens it).
    expect(await delayStep.run(ctx({ type: 'delay', seconds: 999 }, now + 2500, now + 2500), signal)).toEqual({
      kind: 'completed',
      result: { waited_until: formatTimestamp(now + 2500) },
    });
  });

  it('takes `until` with any offset; a past instant completes at once', async () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(await delayStep.run(ctx({ type: 'delay', until: '2030-01-01T02:00:05+02:00' }, null, now), signal)).toEqual({ kind: 'sleep', until: now + 5000 });
    expect(await delayStep.run(ctx({ type: 'delay', until: '2020-01-01T00:00:00Z' }, null, now), signal)).toEqual({
      kind: 'completed',
      result: { waited_until: '2020-01-01T00:00:00+00:00' },
    });
  });
});

describeEachBackend('engine: delay', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { workerConcurrency: 2, leaseMs: 1500, pollIntervalMs: 100 });
  });
  afterAll(() => t?.close());

  it('sleeps without holding a worker slot: 20 sleepers on 2 slots, and other work still runs', async () => {
    const sleeper = await createWorkflow(t, [
      { type: 'transform', expression: 'input.i' },
      { type: 'delay', seconds: 2 },
      { type: 'transform', expression: 'steps[0] * 2' },
    ]);
    const quick = await createWorkflow(t, [
      { type: 'transform', expression: '"quick"' },
      { type: 'transform', expression: 'steps[0] & "!"' },
    ]);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await run(t, sleeper, { i }));
    const wakeAt = await asleep(t, ids, 1);

    // While they sleep: every execution and its delay step say `running`, no slot is held.
    await eventually(async () => t.server.worker!.activeExecutions === 0, 1000, 5);
    const sample = await get(t, ids[7]!);
    expect(sample.status).toBe('running');
    expect(sample.completed_at).toBeNull();
    expect(sample.steps.map((s: Json) => s.status)).toEqual(['completed', 'running', 'pending']);
    expect(sample.steps[1].result).toBeNull();
    const sleepingRows = await t.server.deps.db.db.selectFrom('executions').select(['id', 'lease_owner', 'available_at']).where('id', 'in', ids).execute();
    for (const row of sleepingRows) {
      expect(row.lease_owner).toBeNull();
      expect(row.available_at).toBe(wakeAt.get(row.id)); // not claimable before it is due
    }

    // A 21st execution completes while all 20 are still asleep.
    const q = await run(t, quick);
    const quickDone = await finished(t, q, 5000);
    expect(quickDone.status).toBe('success');
    expect(quickDone.steps[1].result).toBe('quick!');
    const quickRow = await executionRow(t, q);
    expect(quickRow.completed_at!).toBeLessThan(Math.min(...wakeAt.values()));
    const stillAsleep = await asleep(t, ids, 1, 100);
    expect(stillAsleep.size).toBe(20);

    // Then they all wake, once each, never early.
    for (const id of ids) {
      const e = await finished(t, id);
      expect(e.status).toBe('success');
      expect(e.steps[1].result).toEqual({ waited_until: formatTimestamp(wakeAt.get(id)!) });
    }
    const rows = await stepRows(t, ids);
    for (const row of rows.filter((r) => r.idx === 1)) {
      expect(row.status).toBe('completed');
      expect(row.attempts).toBe(1);
      expect(row.completed_at!).toBeGreaterThanOrEqual(wakeAt.get(row.execution_id)!);
      expect(wakeAt.get(row.execution_id)! - row.started_at!).toBeGreaterThanOrEqual(2000);
      expect(wakeAt.get(row.execution_id)! - row.started_at!).toBeLessThan(3000);
    }
    for (const row of rows.filter((r) => r.idx === 2)) {
      expect(row.started_at!).toBeGreaterThanOrEqual(wakeAt.get(row.execution_id)!);
    }
    expect(await runningExecutions(t.server.deps.db.db, t.workspaceId)).toBe(0);
  });

  it('`seconds` form: waits at least that long; result is {waited_until}', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 1.2 }, { type: 'transform', expression: 'steps[0].waited_until' }]);
    const id = await run(t, wf);
    const wake = (await asleep(t, [id], 0)).get(id)!;
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps[0]).toMatchObject({ status: 'completed', attempts: 1, result: { waited_until: formatTimestamp(wake) } });
    expect(e.steps[1].result).toBe(formatTimestamp(wake));
    const [delayRow] = await stepRows(t, id);
    expect(wake - delayRow!.started_at!).toBeGreaterThanOrEqual(1200);
    expect(delayRow!.completed_at!).toBeGreaterThanOrEqual(wake);
    expect((await executionRow(t, id)).completed_at!).toBeGreaterThanOrEqual(wake);
  });

  it('`until` form (any offset): wakes at that instant, not before; a past instant passes at once', async () => {
    // A whole second about 1.5 s ahead, written in +02:00.
    const due = Math.ceil((Date.now() + 1500) / 1000) * 1000;
    const local = new Date(due + 2 * 3600_000).toISOString().slice(0, 19) + '+02:00';
    const wf = await createWorkflow(t, [{ type: 'delay', until: '{{ input.at }}' }, { type: 'delay', until: '2001-02-03T04:05:06Z' }]);
    const id = await run(t, wf, { at: local });
    const wake = (await asleep(t, [id], 0)).get(id)!;
    expect(wake).toBe(due);
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps[0].result).toEqual({ waited_until: formatTimestamp(due) });
    expect(e.steps[1].result).toEqual({ waited_until: '2001-02-03T04:05:06+00:00' });
    const rows = await stepRows(t, id);
    expect(rows[0]!.completed_at!).toBeGreaterThanOrEqual(due);
    expect(rows[1]!.completed_at! - rows[1]!.started_at!).toBeLessThan(500);
  });

  it('fails a delay whose template does not give a number of seconds or a timestamp', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: '{{ input.s }}' }]);
    const e = await finished(t, await run(t, wf, { s: { not: 'a number' } }));
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('expression_error');
    const wf2 = await createWorkflow(t, [{ type: 'delay', until: '{{ input.at }}' }]);
    const e2 = await finished(t, await run(t, wf2, { at: 'tomorrow' }));
    expect(e2.status).toBe('failed');
    expect(e2.error_code).toBe('expression_error');
  });
});

describeEachBackend('engine: delay across a restart', (backend) => {
  let t: TestServer | undefined;
  let second: Server | undefined;
  afterEach(async () => {
    await second?.close();
    second = undefined;
    await t?.close(); // closes the first server (if still open) and drops the database
    t = undefined;
  });

  async function sleepingExecution() {
    t = await startTestServer(backend, { leaseMs: 1500, pollIntervalMs: 100 });
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '{ "n": 42 }' },
      { type: 'delay', seconds: 2 },
      { type: 'transform', expression: 'steps[0].n + 1' },
    ]);
    const id = await run(t, wf);
    const wake = (await asleep(t, [id], 1)).get(id)!;
    const before = await stepRows(t, id);
    return { id, wake, before };
  }

  /** Reads through a second server on the same database (the first one is closed). */
  async function rowsVia(server: Server, id: string) {
    const db = server.deps.db.db;
    return {
      execution: await db.selectFrom('executions').selectAll().where('id', '=', id).executeTakeFirstOrThrow(),
      steps: await db.selectFrom('execution_steps').selectAll().where('execution_id', '=', id).orderBy('idx').execute(),
    };
  }

  async function finishedVia(server: Server, id: string) {
    return eventually(async () => {
      const r = await rowsVia(server, id);
      return r.execution.status !== 'running' ? r : null;
    }, 8000, 20);
  }

  it('a delay that came due while no server ran fires right after the next start, once', async () => {
    const { id, wake, before } = await sleepingExecution();
    await t!.server.close();
    const idle = wake + 300 - Date.now();
    if (idle > 0) await settle(idle);

    const restartedAt = Date.now();
    second = await startServer(t!.config, { logger: silentLogger, listen: false });
    const after = await finishedVia(second, id);
    expect(after.execution.status).toBe('success');
    expect(after.execution.completed_at! - restartedAt).toBeLessThan(1500);
    expect(after.execution.lease_owner).toBeNull();
    // The completed step is not recomputed: same result, same completed_at.
    expect(after.steps[0]!.result).toBe(before[0]!.result);
    expect(after.steps[0]!.completed_at).toBe(before[0]!.completed_at);
    expect(after.steps.map((s) => [s.status, s.attempts, s.interruptions])).toEqual([
      ['completed', 1, 0],
      ['completed', 1, 0],
      ['completed', 1, 0],
    ]);
    expect(after.steps[1]!.started_at).toBe(before[1]!.started_at);
    expect(after.steps[1]!.completed_at!).toBeGreaterThanOrEqual(wake);
    expect(after.steps[1]!.result).toBe(JSON.stringify({ waited_until: formatTimestamp(wake) }));
    expect(after.steps[2]!.result).toBe('43');
    // Still done, nothing moved, a moment later (no second run).
    await settle(400);
    const again = await rowsVia(second, id);
    expect(again.steps).toEqual(after.steps);
    expect(again.execution.completed_at).toBe(after.execution.completed_at);
    expect(await runningExecutions(second.deps.db.db)).toBe(0);
  });

  it('a server started before the delay is due keeps the stored wake-up time (never early)', async () => {
    const { id, wake } = await sleepingExecution();
    await t!.server.close();
    second = await startServer(t!.config, { logger: silentLogger, listen: false });
    expect(Date.now()).toBeLessThan(wake);
    const after = await finishedVia(second, id);
    expect(after.execution.status).toBe('success');
    expect(after.steps[1]!.completed_at!).toBeGreaterThanOrEqual(wake);
    expect(after.steps[1]!.completed_at! - wake).toBeLessThan(1000);
    expect(after.steps[1]!.result).toBe(JSON.stringify({ waited_until: formatTimestamp(wake) }));
    expect(after.steps.map((s) => s.attempts)).toEqual([1, 1, 1]);
  });
});
