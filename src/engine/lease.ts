import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { ExecutionRow, ExecutionStepRow } from '../db/schema.js';

// Claiming and keeping executions. A claim takes a batch of due executions in one
// statement, bumps each one's fencing token and sets its lease expiry as its next
// `available_at`: if the worker dies, the row simply becomes due again when the lease
// runs out. On PostgreSQL the inner SELECT skips rows other workers are claiming
// (FOR UPDATE SKIP LOCKED); SQLite serialises writers, so there is nothing to skip.

export type ClaimedExecution = Pick<
  ExecutionRow,
  'id' | 'workspace_id' | 'workflow_id' | 'version_id' | 'workflow_name' | 'input' | 'current_step' | 'lease_token'
> & { steps: ExecutionStepRow[] };

export async function claimBatch(handle: Db, args: { owner: string; limit: number; leaseMs: number }): Promise<ClaimedExecution[]> {
  const { db } = handle;
  const now = handle.nowMs();
  const due = db
    .selectFrom('executions')
    .select('id')
    .where('status', '=', 'running')
    .where('available_at', '<=', now)
    .orderBy('available_at')
    .limit(args.limit)
    .$if(handle.skipLocked, (q) => q.forUpdate().skipLocked());
  const claimed = await db
    .updateTable('executions')
    .set({
      lease_owner: args.owner,
      lease_token: sql`lease_token + 1`,
      available_at: sql`${now} + ${args.leaseMs}`,
    })
    .where('id', 'in', due)
    .where('status', '=', 'running')
    .returning(['id', 'workspace_id', 'workflow_id', 'version_id', 'workflow_name', 'input', 'current_step', 'lease_token'])
    .execute();
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
