import { sql } from 'kysely';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { param, statement } from '../db/statements.js';
import { startExecution } from '../executions/start-execution.js';
import { DAY_MS, formatTimestamp } from '../lib/time.js';
import { latestFireBetween, nextFireAfter } from './cron.js';
import type { ScheduleRow } from './store.js';

// One round of the scheduler: every enabled schedule whose stored fire time has come
// fires (at most) one tick. Exactly once per tick across processes:
// - the tick is claimed by a guarded update — `next_run_at` and `version` still what
//   this process read — inside the transaction that debits the credit and creates the
//   execution (StartRequest.guard), so the claim and the execution commit together or
//   not at all; a process that lost the race, or read the schedule before an edit,
//   updates nothing and starts nothing;
// - `schedule_ticks` has a unique key per (schedule, tick), written in the same
//   transaction, as the backstop.
// A tick that is skipped (overlap, catch-up "skip") or refused (credits, the
// concurrency cap) advances the schedule by the same guarded update and creates nothing.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals' | 'logger'>;

/** A tick this late counts as missed (downtime): catch-up "skip" drops it. */
export const MISSED_AFTER_MS = 30_000;
const BATCH = 100;

const due = statement<ScheduleRow>('schedules:due', (db) =>
  db.selectFrom('schedules').selectAll().where('enabled', '=', 1).where('next_run_at', '<=', param<number>('now')).orderBy('next_run_at').limit(BATCH),
);

const earliest = statement<{ next: number | null }>('schedules:earliest', () => sql`select min(next_run_at) as next from schedules where enabled = 1`);

const guardedAdvance = (withError: boolean) =>
  statement(`schedules:advance${withError ? ':error' : ''}`, (db) =>
    db
      .updateTable('schedules')
      .set({
        next_run_at: param<number>('next'),
        ...(withError ? { last_error: param('error') } : { last_run_at: param<number>('now'), last_error: null }),
      })
      .where('id', '=', param('id'))
      .where('next_run_at', '=', param<number>('expected'))
      .where('version', '=', param<number>('version'))
      .where('enabled', '=', 1),
  );
/** The claim of a tick that starts an execution. */
const claim = guardedAdvance(false);
/** Skipped or refused: advance and record why (null: a skip, not an error). */
const refuse = guardedAdvance(true);

const recordTick = statement('schedules:tick', () => sql`insert into schedule_ticks (schedule_id, scheduled_for, execution_id) values (${param('id')}, ${param<number>('tick')}, ${param('execution')})`);
const recordLast = statement('schedules:last', () => sql`update schedules set last_execution_id = ${param('execution')} where id = ${param('id')}`);
const previousRunning = statement<{ n: number }>('schedules:overlap', () => sql`select count(*) as n from executions where id = ${param('id')} and status = 'running'`);


export type TickOutcome = { scheduleId: string; tick: number; outcome: 'fired' | 'lost' | 'skipped' | 'refused'; reason?: string; executionId?: string };

/** The earliest stored fire time of any enabled schedule (epoch ms), or null. */
export async function earliestFireTime(deps: Pick<Deps, 'db'>): Promise<number | null> {
  const value = (await deps.db.runner.all(earliest))[0]?.next;
  return value === null || value === undefined ? null : Number(value);
}

/** Fires what is due at `now` (the database's clock in production, an injected one in tests). */
export async function fireDueSchedules(deps: Deps, now: number): Promise<TickOutcome[]> {
  const out: TickOutcome[] = [];
  for (const row of await deps.db.runner.all(due, { now })) out.push(await fireTick(deps, row, now));
  return out;
}

export async function fireTick(deps: Deps, row: ScheduleRow, now: number): Promise<TickOutcome> {
  const spec = { cron: row.cron, timezone: row.timezone };
  const expected = row.next_run_at!;
  // After downtime only the most recent missed tick is a candidate: never a burst.
  const tick = latestFireBetween(spec, expected, now) ?? expected;
  const next = nextFireAfter(spec, Math.max(now, tick));
  const guard = { id: row.id, expected, version: row.version, next };
  const result = (outcome: TickOutcome['outcome'], reason?: string, executionId?: string): TickOutcome => {
    const line = { scheduleId: row.id, scheduledFor: formatTimestamp(tick), outcome, reason, executionId };
    if (outcome === 'fired' || outcome === 'skipped' || outcome === 'refused') deps.logger.info(line, `schedule tick ${outcome}`);
    return { scheduleId: row.id, tick, outcome, ...(reason ? { reason } : {}), ...(executionId ? { executionId } : {}) };
  };
  const skip = async (reason: string, error: string | null) =>
    (await deps.db.runner.run(refuse, { ...guard, error })) === 1 ? result(error === null ? 'skipped' : 'refused', reason) : result('lost');

  if (row.catchup === 'skip' && now - tick > MISSED_AFTER_MS) return skip('missed (catchup skip)', null);
  if (row.overlap === 'skip' && row.last_execution_id !== null) {
    const running = Number((await deps.db.runner.all(previousRunning, { id: row.last_execution_id }))[0]?.n ?? 0);
    if (running > 0) return skip('overlap: the previous execution is still running', null);
  }
  // Another process claimed this tick (or an edit moved it): not an error, nothing to record.
  const lost = new ApiError('not_found', 'This tick was claimed elsewhere.');
  try {
    const response = await startExecution(deps, {
      workspaceId: row.workspace_id,
      workflowId: row.workflow_id,
      input: JSON.parse(row.input) as unknown,
      trigger: { type: 'schedule', schedule_id: row.id, scheduled_for: formatTimestamp(tick)! },
      idempotency: null,
      guard: { claim: async (tx, at) => (await tx.run(claim, { ...guard, now: at })) === 1, refusal: () => lost },
      afterInsert: async (tx, executionId) => {
        await tx.run(recordTick, { id: row.id, tick, execution: executionId });
        await tx.run(recordLast, { id: row.id, execution: executionId });
      },
    });
    const executionId = (JSON.parse(response.bodyText) as { execution_id: string }).execution_id;
    return result('fired', undefined, executionId);
  } catch (error) {
    if (error === lost) return result('lost');
    if (error instanceof ApiError) return skip(error.code, error.message);
    // The (schedule, tick) key exists: this tick already ran (an edit computed on a
    // clock behind the database's can point back at it). Move past it.
    if (deps.db.isUniqueViolation(error)) return skip('tick already fired', null);
    throw error;
  }
}

/** The (schedule, tick) keys only need to outlive the ticks that could still be
 * claimed: fire times only move forward (an edit picks the first one after now), so a
 * day's worth is ample. Without pruning a per-second schedule would add 86,400 rows a day. */
export async function pruneTicks(deps: Pick<Deps, 'db'>, now: number): Promise<void> {
  await deps.db.db.deleteFrom('schedule_ticks').where('scheduled_for', '<', now - DAY_MS).execute();
}
