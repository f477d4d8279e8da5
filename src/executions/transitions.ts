import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { ExecutionStepTable, Executor } from '../db/schema.js';
import { param, statement } from '../db/statements.js';
import { versionSteps } from '../workflows/version-cache.js';
import { recordDeliveriesIn } from '../notifications/record-deliveries.js';
import { recordMetric } from '../metrics/engine-metrics.js';
import { type TerminalStatus, assertTransition } from './status.js';
import { executionsEnded } from './terminal-hooks.js';

// The one module that changes an execution's status. Every change leaves `running`
// (the only non-final status) for a final one, is checked against the transition
// table (status.ts) and is guarded in SQL by `status = 'running'`, so it happens at
// most once whoever races it. Engine writes are also fenced by the lease token: a
// worker that lost its lease writes nothing.
//
// Lock order: every writer of execution rows on PostgreSQL — checkpoints, the lease
// tick, stops — locks them in id order, so no two of them can deadlock.
//
// There is no running counter to keep: the concurrency cap counts a workspace's
// running executions when (and only where) a cap is set.

export const STOPPED_STEP_MESSAGE = 'The execution was stopped while this step was running.';

// ---- the engine's fenced writes (run with Runner.each: one statement per kind for a
// whole batch on PostgreSQL, one row at a time in-process on SQLite) ----

/** Locks the batch's execution rows in id order (PostgreSQL; SQLite has one writer). */
export const lockExecutions = statement('transition:lock', () =>
  sql`select id from executions where id = any(${param('ids')}::text[]) order by id for update`,
);

/** A step boundary: the execution moves on to `current_step`, keeping its lease (and
 * its count of interruptions starts again for a new step). */
export const progress = statement<{ id: string }>('transition:progress', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`update executions e set current_step = r.current_step, interruptions = case when e.current_step = r.current_step then e.interruptions else 0 end
        from json_to_recordset(${param('rows')}::json) as r(id text, token int, current_step int)
        where e.id = r.id and e.lease_token = r.token and e.status = 'running' returning e.id`
    : sql`update executions set current_step = ${param('current_step')},
          interruptions = case when current_step = ${param('current_step')} then interruptions else 0 end
        where id = ${param('id')} and lease_token = ${param('token')} and status = 'running' returning id`,
);

/** A durable timer (delay, retry backoff): the lease is handed back and the execution
 * is due again at `available_at`. */
export const sleep = statement<{ id: string }>('transition:sleep', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`update executions e set current_step = r.current_step, available_at = r.available_at, lease_owner = null
        from json_to_recordset(${param('rows')}::json) as r(id text, token int, current_step int, available_at bigint)
        where e.id = r.id and e.lease_token = r.token and e.status = 'running' returning e.id`
    : sql`update executions set current_step = ${param('current_step')}, available_at = ${param('available_at')}, lease_owner = null
        where id = ${param('id')} and lease_token = ${param('token')} and status = 'running' returning id`,
);

const HAS_ENDPOINT = (alias: string) =>
  sql.raw(`exists (select 1 from webhook_endpoints w where w.workspace_id = ${alias}.workspace_id and w.enabled = 1)`);

/** `running` → `success` | `failed`, by the worker that holds the lease. */
/** Returns, per finished execution, whether its workspace has an enabled webhook
 * endpoint (`notify`): the outbox (notifications/record-deliveries.ts) then costs no
 * statement at all for workspaces without one. */
export const finish = statement<{ id: string; workspace_id: string; workflow_id: string; notify: boolean | number }>('transition:finish', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`update executions e set status = r.status, current_step = r.current_step, error = r.error, error_code = r.error_code,
          error_step_index = r.error_step_index, completed_at = r.completed_at, available_at = null, lease_owner = null
        from json_to_recordset(${param('rows')}::json) as r(id text, token int, status text, current_step int, error text, error_code text, error_step_index int, completed_at bigint)
        where e.id = r.id and e.lease_token = r.token and e.status = 'running' returning e.id, e.workspace_id, e.workflow_id, ${HAS_ENDPOINT('e')} as notify`
    : sql`update executions set status = ${param('status')}, current_step = ${param('current_step')}, error = ${param('error')},
          error_code = ${param('error_code')}, error_step_index = ${param('error_step_index')}, completed_at = ${param('completed_at')},
          available_at = null, lease_owner = null
        where id = ${param('id')} and lease_token = ${param('token')} and status = 'running' returning id, workspace_id, workflow_id, ${HAS_ENDPOINT('executions')} as notify`,
);

const STEP_COLUMNS = ['execution_id', 'idx', 'name', 'type', 'status', 'result', 'error', 'error_code', 'attempts', 'interruptions', 'phase', 'wake_at', 'started_at', 'completed_at', 'detail', 'duration_ms'] as const satisfies ReadonlyArray<keyof ExecutionStepTable>;
const PG_STEP_TYPES = 'execution_id text, idx int, name text, type text, status text, result text, error text, error_code text, attempts int, interruptions int, phase text, wake_at bigint, started_at bigint, completed_at bigint, detail text, duration_ms int';
const UPDATE_STEP = STEP_COLUMNS.slice(2).map((c) => `${c} = excluded.${c}`).join(', ');

/** Writes whole step rows (a step's row appears when it first changes). */
export const upsertSteps = statement('transition:steps', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`insert into execution_steps (${sql.raw(STEP_COLUMNS.join(', '))})
        select ${sql.raw(STEP_COLUMNS.map((c) => `r.${c}`).join(', '))} from json_to_recordset(${param('rows')}::json) as r(${sql.raw(PG_STEP_TYPES)})
        on conflict (execution_id, idx) do update set ${sql.raw(UPDATE_STEP)}`
    : sql`insert into execution_steps (${sql.raw(STEP_COLUMNS.join(', '))})
        values (${sql.join(STEP_COLUMNS.map((c) => sql`${param(c)}`))})
        on conflict (execution_id, idx) do update set ${sql.raw(UPDATE_STEP)}`,
);

/** The terminal status a finished run reports; checked against the table. */
export function finishedAs(status: Exclude<TerminalStatus, 'stopped'>): TerminalStatus {
  assertTransition('running', status);
  return status;
}

// ---- stop: by the API, by a workflow's deletion ----

/** Stops the given running executions (by ids, or all of a workflow's); returns the
 * ids that this call stopped, in one transaction with their steps in flight becoming
 * `stopped`. Call inside a transaction. */
export async function stopRunningExecutions(
  handle: Db,
  db: Executor,
  args: { workspaceId: string; now: number } & ({ ids: readonly string[] } | { workflowId: string }),
): Promise<string[]> {
  assertTransition('running', 'stopped');
  if ('ids' in args && args.ids.length === 0) return [];
  const targets = db
    .selectFrom('executions')
    .select('id')
    .where('workspace_id', '=', args.workspaceId)
    .where('status', '=', 'running')
    .$if('ids' in args, (q) => q.where('id', 'in', (args as { ids: readonly string[] }).ids))
    .$if('workflowId' in args, (q) => q.where('workflow_id', '=', (args as { workflowId: string }).workflowId))
    .orderBy('id');
  // Locked in id order where several processes write (FOR UPDATE is not SQLite's, and
  // SQLite has one writer at a time). Sub-workflow parents first (terminal-hooks.ts).
  if (handle.sharedAcrossProcesses) await lockParents(db, await targets.execute());
  const locked = (await (handle.sharedAcrossProcesses ? targets.forUpdate() : targets).execute()).map((r) => r.id);
  if (locked.length === 0) return [];
  const stopped = await db
    .updateTable('executions')
    .set({ status: 'stopped', completed_at: args.now, available_at: null, lease_owner: null })
    .where('id', 'in', locked)
    .where('status', '=', 'running')
    .returning(['id', 'version_id', 'current_step', 'lease_token', 'workspace_id', 'workflow_id'])
    .execute();
  if (stopped.length === 0) return [];
  // The outbox: notifications of these stops commit with them.
  await recordDeliveriesIn(db, stopped.map((r) => ({ id: r.id, workspace_id: r.workspace_id, workflow_id: r.workflow_id, status: 'stopped' as const, completed_at: args.now })));
  const ids = stopped.map((r) => r.id);
  recordMetric.finished('stopped', ids.length);
  const stoppedStep = { status: 'stopped', phase: null, error: STOPPED_STEP_MESSAGE, error_code: 'stopped', completed_at: args.now } as const;
  await db.updateTable('execution_steps').set(stoppedStep).where('execution_id', 'in', ids).where('status', 'in', ['running', 'pending']).where('idx', '<=', sql<number>`(select current_step from executions where executions.id = execution_steps.execution_id)`).execute();
  // A pure step (a transform) in flight has no row yet: an execution that a worker has
  // taken (token > 0) is in its current step, which becomes `stopped` too.
  for (const row of stopped) {
    if (row.lease_token === 0) continue;
    const def = (await versionSteps(db, row.version_id))[row.current_step];
    if (!def) continue;
    await db
      .insertInto('execution_steps')
      .values({ execution_id: row.id, idx: row.current_step, name: def.name ?? null, type: def.type, attempts: 0, interruptions: 0, ...stoppedStep })
      .onConflict((oc) => oc.columns(['execution_id', 'idx']).doNothing())
      .execute();
  }
  await executionsEnded(handle, db, ids, args.now);
  return ids;
}

/** Locks the sub-workflow parents of `rows` (before the rows themselves: lower ids). */
export async function lockParents(db: Executor, rows: ReadonlyArray<{ id: string }>): Promise<void> {
  if (rows.length === 0) return;
  const triggers = await db.selectFrom('executions').select('trigger').where('id', 'in', rows.map((r) => r.id)).where('trigger_type', '=', 'workflow').execute();
  const parents = triggers.map((t) => (JSON.parse(t.trigger ?? '{}') as { execution_id?: string }).execution_id).filter((id): id is string => typeof id === 'string');
  if (parents.length > 0) await db.selectFrom('executions').select('id').where('id', 'in', parents).orderBy('id').forUpdate().execute();
}
