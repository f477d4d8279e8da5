import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { fireTimesAfter } from '../src/schedules/cron.js';
import { fireDueSchedules, fireTick } from '../src/schedules/fire-schedules.js';
import { findSchedule } from '../src/schedules/store.js';
import { type Json, createWorkflow } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, silentLogger, startServer, startTestServer } from './helpers/server.js';

// docs/triggers.md#schedules: routes, validation, one execution per tick, catch-up,
// overlap, refusals, edits. Time is an injected clock; rounds are driven by hand
// (scheduler.runOnce), so every assertion is about what one round did.

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19) + '+00:00';
const T0 = Date.parse('2026-06-01T00:00:30Z');

describe('cron fire times across daylight-saving changes (croner)', () => {
  const at = (cron: string, timezone: string, from: string, n: number) => fireTimesAfter({ cron, timezone }, Date.parse(from), n).map(iso);
  it('Europe/Paris spring-forward: 02:30 does not exist, it fires once at 03:00 local', () => {
    expect(at('30 2 * * *', 'Europe/Paris', '2026-03-28T12:00:00Z', 2)).toEqual(['2026-03-29T01:00:00+00:00', '2026-03-30T00:30:00+00:00']);
  });
  it('Europe/Paris fall-back: 02:30 happens twice, it fires once', () => {
    expect(at('30 2 * * *', 'Europe/Paris', '2026-10-24T12:00:00Z', 2)).toEqual(['2026-10-25T00:30:00+00:00', '2026-10-26T01:30:00+00:00']);
  });
  it('America/New_York spring-forward: 02:30 fires at 03:00 EDT', () => {
    expect(at('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T07:00:00+00:00', '2026-03-09T06:30:00+00:00']);
  });
  it('America/New_York fall-back: 01:30 happens twice, it fires once', () => {
    expect(at('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2)).toEqual(['2026-11-01T05:30:00+00:00', '2026-11-02T06:30:00+00:00']);
  });
  it('6 fields: seconds first', () => {
    expect(at('*/15 * * * * *', 'UTC', '2026-01-01T00:00:00Z', 2)).toEqual(['2026-01-01T00:00:15+00:00', '2026-01-01T00:00:30+00:00']);
  });
});

describeEachBackend('schedules', (backend) => {
  let t: TestServer;
  let now = T0;
  const clock = { now: () => now };
  let workflowId: string;

  beforeAll(async () => {
    t = await startTestServer(backend, {}, { clock });
    workflowId = await createWorkflow(t, [{ type: 'transform', expression: 'input' }]);
  });
  afterAll(async () => t?.close());

  const create = async (body: unknown, wf = workflowId) => t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body });
  const schedule = async (body: Json) => {
    const res = await create(body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as Json;
  };
  const executionsOf = (scheduleId: string) =>
    t.server.deps.db.db.selectFrom('executions').selectAll().where('trigger_type', '=', 'schedule').execute().then((rows) => rows.filter((r) => JSON.parse(r.trigger!).schedule_id === scheduleId));
  const round = () => t.server.scheduler!.runOnce();
  const count = async () => (await t.request({ method: 'GET', url: '/api/v1/schedules?limit=100' })).json().schedules.length as number;

  it('creates a schedule with defaults and its next 5 fire times', async () => {
    const s = await schedule({ cron: '0 9 * * 1-5', timezone: 'Europe/Paris', input: { report: 'daily' }, enabled: false });
    expect(s).toMatchObject({ workflow_id: workflowId, cron: '0 9 * * 1-5', timezone: 'Europe/Paris', input: { report: 'daily' }, enabled: false, overlap: 'skip', catchup: 'latest', next_run_at: null, upcoming: [], last_run_at: null, last_execution_id: null, last_error: null });
    const on = await t.request({ method: 'PATCH', url: `/api/v1/schedules/${s.schedule_id}`, body: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
    // 2026-06-01 is a Monday; 09:00 in Paris is 07:00 UTC in summer.
    expect(on.json().upcoming).toEqual(['2026-06-01T07:00:00+00:00', '2026-06-02T07:00:00+00:00', '2026-06-03T07:00:00+00:00', '2026-06-04T07:00:00+00:00', '2026-06-05T07:00:00+00:00']);
    expect(on.json().next_run_at).toBe('2026-06-01T07:00:00+00:00');
    const got = await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` });
    expect(got.json()).toEqual(on.json());
    const listed = await t.request({ method: 'GET', url: `/api/v1/schedules?workflow_id=${workflowId}` });
    expect(listed.json().schedules.map((x: Json) => x.schedule_id)).toContain(s.schedule_id);
    const del = await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
    expect(del.json()).toEqual({ schedule_id: s.schedule_id, deleted: true });
    expect((await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` })).statusCode).toBe(404);
  });

  it('bad input on every route is a 400 naming the field (or a 404), and creates nothing', async () => {
    const before = await count();
    const cases: Array<[unknown, RegExp]> = [
      [{ cron: 'every day' }, /cron/],
      [{ cron: '* * * * * * *' }, /cron/],
      [{ cron: '61 * * * *' }, /cron/],
      [{ cron: '* * * * *', timezone: 'Mars/Olympus' }, /timezone/],
      [{ cron: '* * * * *', overlap: 'never' }, /overlap/],
      [{ cron: '* * * * *', catchup: 'all' }, /catchup/],
      [{ cron: '* * * * *', extra: 1 }, /extra/],
      [{}, /cron/],
    ];
    for (const [body, field] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error_code).toBe('invalid_request');
      expect(res.json().error).toMatch(field);
    }
    expect((await create({ cron: '* * * * *' }, 'ffffffffffffffffffffffff')).statusCode).toBe(404);
    expect((await create({ cron: '* * * * *' }, 'nope')).statusCode).toBe(404);
    expect(await count()).toBe(before);
    expect((await t.request({ method: 'GET', url: '/api/v1/schedules?limit=0' })).statusCode).toBe(400);
    expect((await t.request({ method: 'GET', url: '/api/v1/schedules?workflow_id=zz' })).statusCode).toBe(400);
    expect((await t.request({ method: 'GET', url: '/api/v1/schedules/nope' })).statusCode).toBe(404);
    const s = await schedule({ cron: '0 0 1 1 *', enabled: false });
    for (const [body, field] of [[{ cron: 'x' }, /cron/], [{ timezone: 'Nowhere' }, /timezone/], [{ enabled: 'yes' }, /enabled/]] as const) {
      const res = await t.request({ method: 'PATCH', url: `/api/v1/schedules/${s.schedule_id}`, body });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatch(field);
    }
    const unchanged = await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` });
    expect(unchanged.json()).toMatchObject({ cron: '0 0 1 1 *', timezone: 'UTC', enabled: false });
    expect((await t.request({ method: 'PATCH', url: '/api/v1/schedules/ffffffffffffffffffffffff', body: {} })).statusCode).toBe(404);
    expect((await t.request({ method: 'DELETE', url: '/api/v1/schedules/ffffffffffffffffffffffff' })).statusCode).toBe(404);
    await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
  });

  it('a workspace has at most 100 schedules; another workspace cannot see them', async () => {
    const made: string[] = [];
    while ((await count()) < 100) made.push((await schedule({ cron: '0 0 1 1 *', enabled: false })).schedule_id);
    const over = await create({ cron: '0 0 1 1 *' });
    expect(over.statusCode).toBe(400);
    expect(over.json().error).toMatch(/100/);
    // Pages of 30, newest first, walk all of them once.
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const body = (await t.request({ method: 'GET', url: `/api/v1/schedules?limit=30${after}` })).json();
      const page = body.schedules as Json[];
      seen.push(...page.map((x) => x.schedule_id as string));
      // has_more is true exactly while a next page exists (100 = 30 + 30 + 30 + 10).
      expect(body.has_more).toBe(seen.length < 100);
      if (!body.has_more) break;
      after = `&after=${page[page.length - 1]!.schedule_id}`;
    }
    expect(seen).toHaveLength(100);
    expect(new Set(seen).size).toBe(100);
    expect([...seen].sort().reverse()).toEqual(seen);
    const other = await t.createWorkspace();
    const peek = await t.request({ method: 'GET', url: `/api/v1/schedules/${made[0]}`, key: other.apiKey });
    expect(peek.statusCode).toBe(404);
    for (const id of made) await t.request({ method: 'DELETE', url: `/api/v1/schedules/${id}` });
  });

  it('fires exactly one execution per tick, with the schedule trigger and input', async () => {
    const s = await schedule({ cron: '* * * * *', input: { n: 1 } });
    expect(s.next_run_at).toBe(iso(Date.parse('2026-06-01T00:01:00Z')));
    now = Date.parse('2026-06-01T00:01:00.200Z');
    await round();
    await round();
    let runs = await executionsOf(s.schedule_id);
    expect(runs).toHaveLength(1);
    expect(JSON.parse(runs[0]!.trigger!)).toEqual({ type: 'schedule', schedule_id: s.schedule_id, scheduled_for: '2026-06-01T00:01:00+00:00' });
    expect(JSON.parse(runs[0]!.input)).toEqual({ n: 1 });
    const after = (await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` })).json();
    expect(after).toMatchObject({ next_run_at: '2026-06-01T00:02:00+00:00', last_execution_id: runs[0]!.id, last_error: null });
    const execution = (await t.request({ method: 'GET', url: `/api/v1/executions/${runs[0]!.id}` })).json();
    expect(execution.trigger).toEqual({ type: 'schedule', schedule_id: s.schedule_id, scheduled_for: '2026-06-01T00:01:00+00:00' });
    // Disabled: the next tick does not fire.
    await t.request({ method: 'PATCH', url: `/api/v1/schedules/${s.schedule_id}`, body: { enabled: false } });
    now = Date.parse('2026-06-01T00:02:00.200Z');
    await round();
    runs = await executionsOf(s.schedule_id);
    expect(runs).toHaveLength(1);
    await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
  });

  it('catch-up "latest" runs the most recent missed tick once; "skip" drops them', async () => {
    const base = now;
    const latest = await schedule({ cron: '* * * * *', catchup: 'latest', overlap: 'allow' });
    const skip = await schedule({ cron: '* * * * *', catchup: 'skip', overlap: 'allow' });
    // Down for ten minutes, back 40 s after a tick (so even the latest one was missed).
    now = Math.floor(base / 60_000) * 60_000 + 10 * 60_000 + 40_000;
    await round();
    await round();
    const ran = await executionsOf(latest.schedule_id);
    expect(ran).toHaveLength(1);
    const expectedTick = Math.floor(now / 60_000) * 60_000;
    expect(JSON.parse(ran[0]!.trigger!).scheduled_for).toBe(iso(expectedTick));
    expect(await executionsOf(skip.schedule_id)).toHaveLength(0);
    for (const s of [latest, skip]) {
      const view = (await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` })).json();
      expect(view.next_run_at).toBe(iso(expectedTick + 60_000));
    }
    // Back to normal: the next tick runs on both.
    now = expectedTick + 60_000 + 100;
    await round();
    expect(await executionsOf(latest.schedule_id)).toHaveLength(2);
    expect(await executionsOf(skip.schedule_id)).toHaveLength(1);
    for (const s of [latest, skip]) await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
  });

  it('overlap "skip" creates nothing while the previous execution runs; "allow" does', async () => {
    const slow = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    const mk = async (overlap: string) => {
      const res = await create({ cron: '* * * * *', overlap }, slow);
      expect(res.statusCode).toBe(201);
      return res.json() as Json;
    };
    const skip = await mk('skip');
    const allow = await mk('allow');
    const minute = Math.floor(now / 60_000) * 60_000;
    for (let i = 1; i <= 3; i++) {
      now = minute + i * 60_000 + 100;
      await round();
    }
    expect(await executionsOf(skip.schedule_id)).toHaveLength(1);
    expect(await executionsOf(allow.schedule_id)).toHaveLength(3);
    // Deleting the workflow deletes its schedules.
    await t.request({ method: 'DELETE', url: `/api/v1/workflows/${slow}` });
    expect((await t.request({ method: 'GET', url: `/api/v1/schedules/${skip.schedule_id}` })).statusCode).toBe(404);
    expect((await t.request({ method: 'GET', url: `/api/v1/schedules/${allow.schedule_id}` })).statusCode).toBe(404);
  });

  it('a tick refused for credits creates nothing, records last_error and advances', async () => {
    const s = await schedule({ cron: '* * * * *' });
    const db = t.server.deps.db.db;
    const { credits } = await db.selectFrom('workspaces').select('credits').where('id', '=', t.workspaceId).executeTakeFirstOrThrow();
    await db.updateTable('workspaces').set({ credits: 0 }).where('id', '=', t.workspaceId).execute();
    const minute = Math.floor(now / 60_000) * 60_000;
    now = minute + 60_000 + 100;
    await round();
    expect(await executionsOf(s.schedule_id)).toHaveLength(0);
    const view = (await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` })).json();
    expect(view.last_error).toMatch(/credits/i);
    expect(view.next_run_at).toBe(iso(minute + 120_000));
    await db.updateTable('workspaces').set({ credits }).where('id', '=', t.workspaceId).execute();
    now = minute + 120_000 + 100;
    await round();
    expect(await executionsOf(s.schedule_id)).toHaveLength(1);
    expect((await t.request({ method: 'GET', url: `/api/v1/schedules/${s.schedule_id}` })).json().last_error).toBeNull();
    await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
  });

  it('a tick never fires under an old definition: a claim made from a stale read starts nothing', async () => {
    const s = await schedule({ cron: '* * * * *', input: 'old' });
    const stale = (await findSchedule(t.server.deps.db.db, t.workspaceId, s.schedule_id))!;
    await t.request({ method: 'PATCH', url: `/api/v1/schedules/${s.schedule_id}`, body: { input: 'new' } });
    const at = stale.next_run_at! + 100;
    expect((await fireTick(t.server.deps, stale, at)).outcome).toBe('lost');
    expect(await executionsOf(s.schedule_id)).toHaveLength(0);
    now = at;
    await fireDueSchedules(t.server.deps, at);
    const runs = await executionsOf(s.schedule_id);
    expect(runs).toHaveLength(1);
    expect(JSON.parse(runs[0]!.input)).toBe('new');
    await t.request({ method: 'DELETE', url: `/api/v1/schedules/${s.schedule_id}` });
  });
});

describeEachBackend('schedules: the cap, restarts and real time', (backend) => {
  it('a tick refused by the concurrency cap creates nothing and records last_error', async () => {
    let now = T0;
    const t = await startTestServer(backend, {}, { clock: { now: () => now } });
    try {
      const slow = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
      await t.server.deps.db.db.updateTable('workspaces').set({ max_concurrent_executions: 1 }).where('id', '=', t.workspaceId).execute();
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${slow}/schedules`, body: { cron: '* * * * *', overlap: 'allow' } });
      const id = res.json().schedule_id as string;
      now = Date.parse('2026-06-01T00:01:00.100Z');
      // (The server's own rounds may get there first: assert the state, not who did it.)
      await t.server.scheduler!.runOnce();
      now = Date.parse('2026-06-01T00:02:00.100Z');
      await t.server.scheduler!.runOnce();
      const view = (await t.request({ method: 'GET', url: `/api/v1/schedules/${id}` })).json();
      expect(view.last_error).toMatch(/Concurrent execution limit/);
      expect(view.next_run_at).toBe('2026-06-01T00:03:00+00:00');
      const count = await t.server.deps.db.db.selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(Number(count.n)).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('after a restart that spanned missed ticks, catch-up "latest" runs the latest one once', async () => {
    let now = T0;
    const clock = { now: () => now };
    const t = await startTestServer(backend, {}, { clock });
    try {
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body: { cron: '* * * * *' } });
      const id = res.json().schedule_id as string;
      await t.server.close();
      // Down for an hour; the new process finds 60 missed ticks on its first round.
      now = Date.parse('2026-06-01T01:00:20Z');
      const again = await startServer(t.config, { clock, logger: silentLogger, listen: false });
      try {
        await again.scheduler!.runOnce();
        await again.scheduler!.runOnce();
        const rows = await again.deps.db.db.selectFrom('executions').select('trigger').where('trigger_type', '=', 'schedule').execute();
        expect(rows.map((r) => JSON.parse(r.trigger!))).toEqual([{ type: 'schedule', schedule_id: id, scheduled_for: '2026-06-01T01:00:00+00:00' }]);
      } finally {
        await again.close();
      }
    } finally {
      await t.close();
    }
  });

  it('fires on its own by the database clock, one execution per second tick', async () => {
    const t = await startTestServer(backend);
    try {
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/schedules`, body: { cron: '* * * * * *', overlap: 'allow' } });
      expect(res.statusCode).toBe(201);
      const rows = await eventually(async () => {
        const found = await t.server.deps.db.db.selectFrom('executions').select(['trigger', 'created_at']).where('trigger_type', '=', 'schedule').execute();
        return found.length >= 3 ? found : null;
      });
      const ticks = rows.map((r) => JSON.parse(r.trigger!).scheduled_for as string);
      expect(new Set(ticks).size).toBe(ticks.length);
      await t.request({ method: 'PATCH', url: `/api/v1/schedules/${res.json().schedule_id}`, body: { enabled: false } });
    } finally {
      await t.close();
    }
  });
});

describeEachBackend('schedules: one log line per tick', (backend) => {
  it('logs each tick fired or skipped with the schedule id and the reason', async () => {
    const lines: Json[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Json) });
    let now = T0;
    const t = await startTestServer(backend, {}, { clock: { now: () => now }, logger });
    try {
      const slow = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${slow}/schedules`, body: { cron: '* * * * *' } });
      const id = res.json().schedule_id as string;
      now = Date.parse('2026-06-01T00:01:00.100Z');
      await t.server.scheduler!.runOnce();
      now = Date.parse('2026-06-01T00:02:00.100Z');
      await t.server.scheduler!.runOnce();
      const ticks = lines.filter((l) => l.scheduleId === id);
      expect(ticks.map((l) => [l.msg, l.scheduledFor])).toEqual([
        ['schedule tick fired', '2026-06-01T00:01:00+00:00'],
        ['schedule tick skipped', '2026-06-01T00:02:00+00:00'],
      ]);
      expect(ticks[1]!.reason).toMatch(/overlap/);
    } finally {
      await t.close();
    }
  });
});
