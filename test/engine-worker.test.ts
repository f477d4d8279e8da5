import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { claimBatch } from '../src/engine/lease.js';
import type { Server } from '../src/server.js';
import { createWorkflow, get, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { runningExecutions } from './helpers/rows.js';
import { type TestServer, eventually, openMigrated, silentLogger, startServer, startTestServer } from './helpers/server.js';

// The worker: at most SKIPFLOW_WORKER_CONCURRENCY executions at once; new work, freed
// slots and due sleepers are picked up at once (the poll is only a fallback); and a
// graceful stop hands every lease back so another process can finish the work.

/** Waits until step 0 of the execution sleeps; returns its wake-up time. */
function sleepingUntil(t: TestServer, id: string): Promise<number> {
  return eventually(async () => {
    const row = await t.server.deps.db.db.selectFrom('execution_steps').select(['wake_at', 'phase']).where('execution_id', '=', id).where('idx', '=', 0).executeTakeFirst();
    return row?.phase === 'sleep' ? row.wake_at! : null;
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('reads SKIPFLOW_WORKER_CONCURRENCY', () => {
  expect(loadConfig({ SKIPFLOW_WORKER_CONCURRENCY: '3' }).workerConcurrency).toBe(3);
});

describeEachBackend('engine: worker concurrency', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { workerConcurrency: 3, leaseMs: 1500, pollIntervalMs: 100 });
  });
  afterAll(() => t?.close());

  it('never runs more than workerConcurrency executions at once (200-execution burst)', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: 'input.i' },
      { type: 'transform', expression: 'steps[0] + 1' },
      { type: 'transform', expression: 'steps[1] * 2' },
    ]);
    let maxActive = 0;
    const sampler = setInterval(() => (maxActive = Math.max(maxActive, t.server.worker!.activeExecutions)), 1);
    const ids: string[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        ids.push(await run(t, wf, { i }));
        maxActive = Math.max(maxActive, t.server.worker!.activeExecutions);
        if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      }
      await eventually(
        async () => {
          maxActive = Math.max(maxActive, t.server.worker!.activeExecutions);
          const left = await t.server.deps.db.db.selectFrom('executions').select('id').where('status', '=', 'running').limit(1).execute();
          return left.length === 0;
        },
        20_000,
        5,
      );
    } finally {
      clearInterval(sampler);
    }
    expect(maxActive).toBeLessThanOrEqual(3);
    expect(maxActive).toBeGreaterThanOrEqual(2); // it did run several at once

    // From the rows: the intervals [first step started, execution completed) of the
    // executions never overlap more than 3 deep.
    const db = t.server.deps.db.db;
    const executions = await db.selectFrom('executions').select(['id', 'status', 'completed_at']).where('id', 'in', ids).execute();
    expect(executions.every((e) => e.status === 'success')).toBe(true);
    const firstSteps = await db.selectFrom('execution_steps').select(['execution_id', 'started_at']).where('execution_id', 'in', ids).where('idx', '=', 0).execute();
    const startOf = new Map(firstSteps.map((s) => [s.execution_id, s.started_at!]));
    const events: Array<[number, number]> = [];
    for (const e of executions) {
      events.push([startOf.get(e.id)!, +1], [e.completed_at!, -1]);
    }
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // ends before starts at the same ms
    let depth = 0;
    let maxDepth = 0;
    for (const [, delta] of events) maxDepth = Math.max(maxDepth, (depth += delta));
    expect(maxDepth).toBeLessThanOrEqual(3);

    const results = await db.selectFrom('execution_steps').select(['execution_id', 'result']).where('execution_id', 'in', ids).where('idx', '=', 2).execute();
    const byId = new Map(results.map((r) => [r.execution_id, r.result]));
    ids.forEach((id, i) => expect(byId.get(id)).toBe(String((i + 1) * 2)));
    expect(await runningExecutions(db, t.workspaceId)).toBe(0);
  });
});

describeEachBackend('engine: claiming', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { role: 'api' }); // no worker: the test claims
  });
  afterAll(() => t?.close());

  it('a claim takes at most `limit` executions, and concurrent claims never share one', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await run(t, wf));
    await pause(5); // due by the database clock too
    const handle = t.server.deps.db;
    const first = await claimBatch(handle, { owner: 'w1', limit: 3, leaseMs: 60_000 });
    expect(first).toHaveLength(3);
    const rounds = await Promise.all(
      Array.from({ length: 6 }, (_, i) => claimBatch(handle, { owner: `w${i + 2}`, limit: 5, leaseMs: 60_000 })),
    );
    for (const batch of rounds) expect(batch.length).toBeLessThanOrEqual(5);
    const claimed = [...first, ...rounds.flat()].map((c) => c.id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBe(33);
    const leased = await handle.db.selectFrom('executions').select(['id', 'lease_owner']).where('id', 'in', ids).where('lease_owner', 'is not', null).execute();
    expect(leased).toHaveLength(33);
    // A first claim reads no step rows: a step's row is written when it first changes.
    for (const c of first) expect(c.steps).toEqual([]);
  });
});

describeEachBackend('engine: worker wake-ups without polling', (backend) => {
  let t: TestServer;
  let restarted: Server | undefined;
  beforeAll(async () => {
    // A one-minute poll: anything that finishes promptly was woken some other way.
    t = await startTestServer(backend, { workerConcurrency: 1, leaseMs: 1500, pollIntervalMs: 60_000 });
  });
  afterAll(async () => {
    await restarted?.close();
    await t?.close();
  });

  it('starts new work at once (run-async signals the worker)', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '"a"' }, { type: 'transform', expression: 'steps[0] & "b"' }]);
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const id = await run(t, wf);
      await eventually(async () => (await get(t, id)).status === 'success', 1000, 10);
      expect(Date.now() - t0).toBeLessThan(1000);
      await pause(50);
    }
  });

  it('fills a freed slot at once (one slot, a burst of 10)', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: 'input.i' }]);
    const t0 = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await run(t, wf, { i }));
    for (const id of ids) await eventually(async () => (await get(t, id)).status === 'success', 2000, 10);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('wakes every sleeper when it is due, not at the next poll', async () => {
    const mk = (seconds: number) => createWorkflow(t, [{ type: 'delay', seconds }, { type: 'transform', expression: '"woke"' }]);
    const ids = [await run(t, await mk(0.4)), await run(t, await mk(0.8)), await run(t, await mk(1.2))];
    const db = t.server.deps.db.db;
    const wakeAt = await eventually(async () => {
      const rows = await db.selectFrom('execution_steps').select(['execution_id', 'wake_at', 'phase']).where('execution_id', 'in', ids).where('idx', '=', 0).execute();
      return rows.length === ids.length && rows.every((r) => r.phase === 'sleep') ? new Map(rows.map((r) => [r.execution_id, r.wake_at!])) : null;
    });
    for (const id of ids) {
      await eventually(async () => (await get(t, id)).status === 'success', 3000, 10);
      const row = await db.selectFrom('executions').select('completed_at').where('id', '=', id).executeTakeFirstOrThrow();
      expect(row.completed_at!).toBeGreaterThanOrEqual(wakeAt.get(id)!);
      expect(row.completed_at! - wakeAt.get(id)!).toBeLessThan(600);
    }
  });

  it('after a restart, wakes a sleeper when it is due, not at the next poll', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 1 }, { type: 'transform', expression: '"after restart"' }]);
    const id = await run(t, wf);
    const wake = await sleepingUntil(t, id);
    await t.server.close();
    restarted = await startServer(t.config, { logger: silentLogger, listen: false });
    const rdb = restarted.deps.db.db;
    const done = await eventually(
      async () => {
        const row = await rdb.selectFrom('executions').select(['status', 'completed_at']).where('id', '=', id).executeTakeFirstOrThrow();
        return row.status !== 'running' ? row : null;
      },
      4000,
      10,
    );
    expect(done.status).toBe('success');
    expect(done.completed_at!).toBeGreaterThanOrEqual(wake);
    expect(done.completed_at! - wake).toBeLessThan(600);
  });
});

describeEachBackend('engine: worker wake-ups when the server clock runs ahead of the database', (backend) => {
  let t: TestServer;
  const SKEW_MS = 300;
  beforeAll(async () => {
    // Claims compare with the database's clock; this server stamps times 300 ms ahead.
    t = await startTestServer(
      backend,
      { workerConcurrency: 2, leaseMs: 1500, pollIntervalMs: 60_000 },
      { clock: { now: () => Date.now() + SKEW_MS } },
    );
  });
  afterAll(() => t?.close());

  it('new work that is not yet due by the database clock still starts without the poll', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '"ran"' }]);
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const id = await run(t, wf);
      await eventually(async () => (await get(t, id)).status === 'success', 2500, 10);
      expect(Date.now() - t0).toBeLessThan(SKEW_MS + 1000);
    }
  });

  it('a sleeper wakes without the poll, never early by the server clock', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 0.5 }, { type: 'transform', expression: '"woke"' }]);
    const id = await run(t, wf);
    const db = t.server.deps.db.db;
    const wake = await sleepingUntil(t, id);
    await eventually(async () => (await get(t, id)).status === 'success', 3000, 10);
    const step = await db.selectFrom('execution_steps').select('completed_at').where('execution_id', '=', id).where('idx', '=', 0).executeTakeFirstOrThrow();
    expect(step.completed_at!).toBeGreaterThanOrEqual(wake);
    expect(step.completed_at! - wake).toBeLessThan(SKEW_MS + 700);
  });
});

describeEachBackend('engine: graceful stop', (backend) => {
  let t: TestServer | undefined;
  let next: Server | undefined;
  afterEach(async () => {
    await next?.close();
    next = undefined;
    await t?.close();
    t = undefined;
  });

  // ~0.3–1 s of work per attempt, off the main thread.
  const SLOW = '($f := function($n){ $n = 0 ? "slow done" : $f($n - 1) }; $f(150000))';

  it('close() lets in-flight executions reach a safe point, holds no lease, and a new server finishes them', async () => {
    t = await startTestServer(backend, { workerConcurrency: 4, leaseMs: 1500, pollIntervalMs: 100 });
    const wf = await createWorkflow(t, [
      { type: 'transform', timeout_ms: 20_000, expression: SLOW },
      { type: 'delay', seconds: 0.5 },
      { type: 'transform', expression: 'steps[0] & "!"' },
    ]);
    const quick = await createWorkflow(t, [{ type: 'transform', expression: '1' }, { type: 'transform', expression: '2' }]);
    const ids = [await run(t, wf), await run(t, wf), await run(t, wf), await run(t, quick), await run(t, quick)];
    const db = t.server.deps.db.db;
    // The slow transforms are in flight (a transform is not marked before it runs).
    await eventually(async () => t!.server.worker!.activeExecutions === 3 && (await db.selectFrom('executions').select('id').where('id', 'in', ids.slice(3)).where('status', '=', 'success').execute()).length === 2);
    const t0 = Date.now();
    await t.server.close();
    expect(Date.now() - t0).toBeLessThan(8000); // did not sit out the whole grace period

    const inspect = await openMigrated(t.config.databaseUrl);
    try {
      const rows = await inspect.db.selectFrom('executions').select(['id', 'status', 'lease_owner']).where('id', 'in', ids).execute();
      for (const row of rows) expect(row.lease_owner, `${row.id} (${row.status})`).toBeNull();
    } finally {
      await inspect.close();
    }

    next = await startServer(t.config, { logger: silentLogger, listen: false });
    const ndb = next.deps.db.db;
    await eventually(
      async () => (await ndb.selectFrom('executions').select('id').where('id', 'in', ids).where('status', '=', 'running').execute()).length === 0,
      8000,
      20,
    );
    const finished = await ndb.selectFrom('executions').select(['status', 'lease_owner']).where('id', 'in', ids).execute();
    expect(finished.map((r) => r.status)).toEqual(['success', 'success', 'success', 'success', 'success']);
    const steps = await ndb.selectFrom('execution_steps').selectAll().where('execution_id', 'in', ids.slice(0, 3)).execute();
    for (const s of steps) expect(s).toMatchObject({ status: 'completed', attempts: 1 });
    for (const s of steps.filter((r) => r.idx === 2)) expect(s.result).toBe(JSON.stringify('slow done!'));
    expect(await runningExecutions(ndb, t.workspaceId)).toBe(0);
  });

  it('past its grace period, stop() aborts what is left and hands the leases back at once', async () => {
    t = await startTestServer(backend, { workerConcurrency: 4, leaseMs: 60_000, pollIntervalMs: 100 });
    const wf = await createWorkflow(t, [
      { type: 'transform', timeout_ms: 20_000, expression: SLOW },
      { type: 'transform', expression: 'steps[0] & "!"' },
    ]);
    const ids = [await run(t, wf), await run(t, wf)];
    const db = t.server.deps.db.db;
    // Transforms are not marked before they run: both are in flight once the worker holds them.
    await eventually(async () => t!.server.worker!.activeExecutions === 2);
    await pause(100);
    const t0 = Date.now();
    await t.server.worker!.stop(50);
    expect(Date.now() - t0).toBeLessThan(1000);
    const rows = await db.selectFrom('executions').select(['status', 'lease_owner', 'available_at']).where('id', 'in', ids).execute();
    const now = Date.now();
    for (const row of rows) {
      expect(row.status).toBe('running');
      expect(row.lease_owner).toBeNull();
      // Due again now, not after the 60 s lease.
      expect(row.available_at!).toBeLessThanOrEqual(now);
    }
    await t.server.close();
    next = await startServer(t.config, { logger: silentLogger, listen: false });
    const ndb = next.deps.db.db;
    await eventually(
      async () => (await ndb.selectFrom('executions').select('id').where('id', 'in', ids).where('status', '=', 'running').execute()).length === 0,
      8000,
      20,
    );
    const steps = await ndb.selectFrom('execution_steps').selectAll().where('execution_id', 'in', ids).where('idx', '=', 0).execute();
    // Run again from the start of the step: a pure step's interruption is not counted.
    for (const s of steps) expect(s).toMatchObject({ status: 'completed', attempts: 1, interruptions: 0, result: JSON.stringify('slow done') });
  });
});
