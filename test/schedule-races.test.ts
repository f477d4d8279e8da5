import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalSignals } from '../src/db/signals.js';
import type { Db } from '../src/db/open.js';
import { fireDueSchedules } from '../src/schedules/fire-schedules.js';
import { createWorkflow } from './helpers/api.js';
import { BACKENDS, describeEachBackend } from './helpers/backends.js';
import { type Child, spawnSkipflow } from './helpers/child.js';
import { type TestServer, eventually, openMigrated, silentLogger, startTestServer } from './helpers/server.js';

// Exactly one execution per tick across processes: two independent database handles
// (two engines, each with its own connection pool and group-committed start path) and
// the server's own scheduler race for every tick of a schedule; over many ticks no
// `scheduled_for` appears twice and none is missing.

describeEachBackend('schedule tick claims raced by two engines', (backend) => {
  let t: TestServer;
  let second: Db;
  let now = Date.parse('2026-06-01T00:00:00.500Z');
  const clock = { now: () => now };

  beforeAll(async () => {
    t = await startTestServer(backend, {}, { clock });
    second = await openMigrated(t.database.url);
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  it('no duplicate and no missing scheduled_for over 40 ticks', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body: { cron: '* * * * * *', overlap: 'allow' } });
    expect(res.statusCode, res.body).toBe(201);
    const a = t.server.deps;
    const b = { db: second, clock, logger: silentLogger, signals: new LocalSignals() };
    const start = now;
    const TICKS = 40;
    for (let i = 1; i <= TICKS; i++) {
      now = start + i * 1000;
      const rounds = await Promise.all([fireDueSchedules(a, now), fireDueSchedules(b, now), fireDueSchedules(b, now), t.server.scheduler!.runOnce()]);
      // The server's own rounds race too, so this tick may have been fired by one of them.
      expect(rounds.flat().filter((o) => o.outcome === 'fired').length).toBeLessThanOrEqual(1);
    }
    const rows = await t.server.deps.db.db.selectFrom('executions').select('trigger').where('trigger_type', '=', 'schedule').execute();
    const ticks = rows.map((r) => JSON.parse(r.trigger!).scheduled_for as string);
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks).toHaveLength(TICKS);
    const stored = await t.server.deps.db.db.selectFrom('schedule_ticks').selectAll().execute();
    expect(stored).toHaveLength(TICKS);
  });
});

describeEachBackend('schedule ticks: the unique key per (schedule, tick)', (backend) => {
  let t: TestServer;
  let now = Date.parse('2026-06-01T00:00:00.500Z');
  beforeAll(async () => {
    t = await startTestServer(backend, {}, { clock: { now: () => now } });
  });
  afterAll(async () => t?.close());

  it('a tick moved back onto one that already ran starts nothing and moves past it', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body: { cron: '* * * * *', overlap: 'allow' } });
    const id = res.json().schedule_id as string;
    now = Date.parse('2026-06-01T00:01:00.100Z');
    await fireDueSchedules(t.server.deps, now);
    const db = t.server.deps.db.db;
    // As if an edit on a process whose clock runs behind had put the fired tick back.
    await db.updateTable('schedules').set({ next_run_at: Date.parse('2026-06-01T00:01:00Z') }).where('id', '=', id).execute();
    const outcomes = await fireDueSchedules(t.server.deps, now);
    expect(outcomes.map((o) => o.outcome)).not.toContain('fired');
    expect(await db.selectFrom('executions').select('id').where('trigger_type', '=', 'schedule').execute()).toHaveLength(1);
    const row = await db.selectFrom('schedules').select('next_run_at').where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.next_run_at).toBe(Date.parse('2026-06-01T00:02:00Z'));
  });
});

// The same race between real processes: two `skipflow serve --role worker` children
// and this test's server share one PostgreSQL database and the database's clock.
const onPostgres = BACKENDS.includes('postgres') ? describe : describe.skip;
onPostgres('schedule ticks raced by two real worker processes [postgres]', () => {
  it('every second tick runs once, whichever process claims it', async () => {
    const t = await startTestServer('postgres');
    const children: Child[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        children.push(spawnSkipflow(['serve', '--role', 'worker'], { SKIPFLOW_DATABASE_URL: t.database.url, SKIPFLOW_POLL_INTERVAL_MS: '100', SKIPFLOW_ENGINE_THREAD: '0' }));
      }
      for (const child of children) {
        await eventually(async () => {
          if (child.process.exitCode !== null) throw new Error(`skipflow exited early:\n${child.output()}`);
          return child.output().includes('"msg":"SkipFlow started"');
        }, 20_000);
      }
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body: { cron: '* * * * * *', overlap: 'allow' } });
      expect(res.statusCode).toBe(201);
      const db = t.server.deps.db.db;
      await eventually(async () => (await db.selectFrom('executions').select('id').where('trigger_type', '=', 'schedule').execute()).length >= 6, 20_000);
      await t.request({ method: 'PATCH', url: `/api/v1/schedules/${res.json().schedule_id}`, body: { enabled: false } });
      for (const child of children) {
        child.process.kill('SIGTERM');
        await child.exited();
      }
      const ticks = (await db.selectFrom('executions').select('trigger').where('trigger_type', '=', 'schedule').execute()).map((r) => JSON.parse(r.trigger!).scheduled_for as string);
      expect(new Set(ticks).size).toBe(ticks.length);
      const firedBy = children.map((c) => (c.output().match(/schedule tick fired/g) ?? []).length);
      expect(firedBy.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(ticks.length);
    } finally {
      for (const child of children) if (child.process.exitCode === null) child.process.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited()));
      await t.close();
    }
  }, 60_000);
});
