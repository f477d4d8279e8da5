import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { ExecutionRow, ExecutionStepRow } from '../db/schema.js';

// Claiming and keeping executions. A claim takes a batch of due executions — a fair
// share per workspace, see db/due-executions.ts — bumps each one's fencing token and
// sets its lease expiry as its next `available_at`: if the worker dies, the row
// simply becomes due again when the lease runs out. On PostgreSQL the selection skips
// rows other workers are claiming (FOR UPDATE SKIP LOCKED); SQLite serialises
// writers, so there is nothing to skip.

export type ClaimedExecution = Pick<
  ExecutionRow,
  'id' | 'workspace_id' | 'workflow_id' | 'version_id' | 'workflow_name' | 'input' | 'current_step' | 'lease_token'
> & { steps: ExecutionStepRow[] };

export async function claimBatch(handle: Db, args: { owner: string; limit: number; leaseMs: number }): Promise<ClaimedExecution[]> {
  const { db } = handle;
  const now = handle.nowMs();
  // Pick the due ids (fairly across workspaces, rows locked on PostgreSQL) and take
  // them in one transaction. The UPDATE re-checks `running` and due: a row stopped in
  // the meantime is simply not claimed.
  const claimed = await db.transaction().execute(async (trx) => {
    const ids = await handle.dueExecutionIds(trx, { limit: args.limit, now });
    if (ids.length === 0) return [];
    return trx
      .updateTable('executions')
      .set({
        lease_owner: args.owner,
        lease_token: sql`lease_token + 1`,
        available_at: sql`${now} + ${args.leaseMs}`,
      })
      .where('id', 'in', ids)
      .where('status', '=', 'running')
      .where('available_at', '<=', now)
      .returning(['id', 'workspace_id', 'workflow_id', 'version_id', 'workflow_name', 'input', 'current_step', 'lease_token'])
      .execute();
  });
  if (claimed.length === 0) return [];
  const steps = await db
    .selectFrom('execution_steps')
    .selectAll()
    .where('execution_id', 'in', claimed.map((c) => c.id))
    .orderBy('execution_id')
    .orderBy('idx')
    .execute();
  const byExecution = new Map<string, ExecutionStepRow[]>();
  for (const step of steps) {
    let list = byExecution.get(step.execution_id);
    if (!list) byExecution.set(step.execution_id, (list = []));
    list.push(step);
  }
  return claimed.map((c) => ({ ...c, steps: byExecution.get(c.id) ?? [] }));
}

/** Milliseconds (by the database's clock) until the earliest execution that sleeps
 * unleased — a delay, a retry backoff, a released lease — comes due; null if none. */
export async function nextWakeDelay(handle: Db): Promise<number | null> {
  const now = handle.nowMs();
  const row = await handle.db
    .selectFrom('executions')
    .select(sql<number | null>`min(available_at) - ${now}`.as('delay'))
    .where('status', '=', 'running')
    .where('available_at', '>', now)
    .where('lease_owner', 'is', null)
    .executeTakeFirst();
  const delay = row?.delay;
  return delay === null || delay === undefined ? null : Number(delay);
}

/** Extends the leases this worker still holds; returns the ids it still holds (an id
 * missing from the answer was stopped, finished or taken over: abort it). */
export async function renewLeases(handle: Db, args: { owner: string; ids: readonly string[]; leaseMs: number }): Promise<Set<string>> {
  const held = new Set<string>();
  for (let i = 0; i < args.ids.length; i += 500) {
    const rows = await handle.db
      .updateTable('executions')
      .set({ available_at: sql`${handle.nowMs()} + ${args.leaseMs}` })
      .where('id', 'in', args.ids.slice(i, i + 500))
      .where('lease_owner', '=', args.owner)
      .where('status', '=', 'running')
      .returning('id')
      .execute();
    for (const row of rows) held.add(row.id);
  }
  return held;
}

/** Of the given executions, those that are no longer `running` (stopped by any
 * process, e.g. through another process's API). */
export async function notRunning(handle: Db, ids: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await handle.db
      .selectFrom('executions')
      .select('id')
      .where('id', 'in', ids.slice(i, i + 500))
      .where('status', '<>', 'running')
      .execute();
    for (const row of rows) out.push(row.id);
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
