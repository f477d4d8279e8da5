import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { ExecutionRow, ExecutionStepRow } from '../db/schema.js';
import { ACTIVE_WORKSPACES } from '../db/due-executions.js';
import { databaseNow, param, statement } from '../db/statements.js';
import { recordMetric } from '../metrics/engine-metrics.js';

// Claiming and keeping executions. A claim takes a batch of due executions — a fair
// share per workspace, see db/due-executions.ts — bumps each one's fencing token and
// sets its lease expiry as its next `available_at`: if the worker dies, the row
// simply becomes due again when the lease runs out. On PostgreSQL the selection skips
// rows other workers are claiming (FOR UPDATE SKIP LOCKED); SQLite serialises
// writers, so there is nothing to skip.

const CLAIMED = ['id', 'workspace_id', 'workflow_id', 'version_id', 'workflow_name', 'input', 'current_step', 'lease_token', 'interruptions'] as const;

export type ClaimedExecution = Pick<ExecutionRow, (typeof CLAIMED)[number]> & { steps: ExecutionStepRow[] };

/** Takes one due execution (Runner.each: all of them in one statement on PostgreSQL).
 * Re-checks `running` and due: a row stopped in the meantime is simply not claimed. */
const take = statement<Omit<ClaimedExecution, 'steps'>>('lease:claim', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`update executions e set lease_owner = r.owner, lease_token = e.lease_token + 1,
          available_at = ${databaseNow(dialect)} + r.lease_ms,
          interruptions = case when e.lease_owner is null then e.interruptions else e.interruptions + 1 end
        from json_to_recordset(${param('rows')}::json) as r(id text, owner text, lease_ms bigint)
        where e.id = r.id and e.status = 'running' and e.available_at <= ${databaseNow(dialect)}
        returning ${sql.raw(CLAIMED.map((c) => `e.${c}`).join(', '))}`
    : sql`update executions set lease_owner = ${param('owner')}, lease_token = lease_token + 1,
          available_at = ${databaseNow(dialect)} + ${param<number>('lease_ms')},
          interruptions = case when lease_owner is null then interruptions else interruptions + 1 end
        where id = ${param('id')} and status = 'running' and available_at <= ${databaseNow(dialect)}
        returning ${sql.raw(CLAIMED.join(', '))}`,
);

const heldLeases = statement<{ n: number }>('lease:held', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`select count(*) as n from executions where id in (select value from json_array_elements_text(${param('ids')}::json)) and lease_owner is not null`
    : sql`select count(*) as n from executions where id in (select value from json_each(${param('ids')})) and lease_owner is not null`,
);

export async function claimBatch(handle: Db, args: { owner: string; limit: number; leaseMs: number }): Promise<ClaimedExecution[]> {
  const { db } = handle;
  // Pick the due ids (fairly across workspaces, rows locked on PostgreSQL) and take
  // them in one transaction. A lease still held (not handed back by a sleep or a
  // shutdown) has lapsed: its worker died or froze in the middle of the current step,
  // and the claim counts the interruption.
  let takenOver = 0;
  const claimed = await handle.transact(async (tx) => {
    const ids = await handle.dueExecutionIds(tx, args.limit);
    // Which of them still hold a lapsed lease (their worker died): read before the
    // claim overwrites lease_owner, with the rows already locked (PostgreSQL).
    takenOver = ids.length === 0 ? 0 : Number((await tx.all(heldLeases, { ids: JSON.stringify(ids) }))[0]?.n ?? 0);
    return tx.each(take, ids.map((id) => ({ id, owner: args.owner, lease_ms: args.leaseMs })));
  });
  recordMetric.takeovers(takenOver);
  if (claimed.length === 0) return [];
  // Step rows are written as steps start, so an execution claimed for the first time
  // (token 1: nobody held it before) has none to read.
  const resumed = claimed.filter((c) => c.lease_token > 1 || c.current_step > 0).map((c) => c.id);
  const byExecution = new Map<string, ExecutionStepRow[]>();
  if (resumed.length > 0) {
    const steps = await db.selectFrom('execution_steps').selectAll().where('execution_id', 'in', resumed).orderBy('execution_id').orderBy('idx').execute();
    for (const step of steps) {
      let list = byExecution.get(step.execution_id);
      if (!list) byExecution.set(step.execution_id, (list = []));
      list.push(step);
    }
  }
  return claimed.map((c) => ({ ...c, steps: byExecution.get(c.id) ?? [] }));
}

/** Milliseconds (by the database's clock) until the earliest execution that sleeps
 * unleased — a delay, a retry backoff, a released lease — comes due; null if none.
 * One probe of the partial index per workspace with running executions. */
export async function nextWakeDelay(handle: Db): Promise<number | null> {
  const now = handle.nowMs();
  const { rows } = await sql<{ delay: number | null }>`
    ${ACTIVE_WORKSPACES}
    select min((select min(e.available_at) from executions e
                where e.workspace_id = active.id and e.status = 'running' and e.available_at > ${now} and e.lease_owner is null)) - ${now} as delay
    from active where active.id is not null`.execute(handle.db);
  const delay = rows[0]?.delay;
  return delay === null || delay === undefined ? null : Number(delay);
}

const idsParam = (ids: readonly string[]) => JSON.stringify(ids);

/** Extends this worker's leases, in id order (the order every writer of execution
 * rows locks them in). Returns the ids it renewed. */
const renew = statement<{ id: string }>('lease:renew', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`update executions set available_at = ${databaseNow(dialect)} + ${param<number>('leaseMs')}::bigint
        where id in (select id from executions where id in (select value from json_array_elements_text(${param('ids')}::json))
                     and lease_owner = ${param('owner')} and status = 'running' order by id for update)
        returning id`
    : sql`update executions set available_at = ${databaseNow(dialect)} + ${param<number>('leaseMs')}
        where id in (select value from json_each(${param('ids')})) and lease_owner = ${param('owner')} and status = 'running'
        returning id`,
);

/** Of the given executions, those this worker no longer holds: stopped (by any
 * process), finished, or taken over. A read: it locks nothing. */
const lost = statement<{ id: string }>('lease:lost', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`select id from executions where id in (select value from json_array_elements_text(${param('ids')}::json))
        and (status <> 'running' or lease_owner is distinct from ${param('owner')})`
    : sql`select id from executions where id in (select value from json_each(${param('ids')}))
        and (status <> 'running' or lease_owner is not ${param('owner')})`,
);

/** The worker's tick: renews the leases it holds (when `renewMs` is given) and says
 * which of its executions it lost, so the worker aborts them. */
export async function tick(handle: Db, args: { owner: string; ids: readonly string[]; renewMs: number | null }): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < args.ids.length; i += 500) {
    const ids = idsParam(args.ids.slice(i, i + 500));
    if (args.renewMs !== null) await handle.runner.run(renew, { ids, owner: args.owner, leaseMs: args.renewMs });
    for (const row of await handle.runner.all(lost, { ids, owner: args.owner })) out.push(row.id);
  }
  return out;
}

/** Hands this worker's executions back at once (graceful shutdown), instead of
 * making them wait for their leases to expire. */
export async function releaseLeases(handle: Db, owner: string): Promise<void> {
  await handle.db
    .updateTable('executions')
    .set({ available_at: handle.nowMs(), lease_owner: null })
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .execute();
}
