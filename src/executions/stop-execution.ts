import { sql } from 'kysely';
import type { Executor } from '../db/schema.js';

// Stop is a transition, not a flag: `running` → `stopped`, guarded by the from-state,
// in one transaction with the step in flight becoming `stopped` and the workspace's
// running count going down. A worker that finishes the step afterwards is fenced
// out by the same guard (its UPDATE … WHERE status = 'running' matches nothing).

export const STOPPED_STEP_MESSAGE = 'The execution was stopped while this step was running.';

/** Stops the given running executions (by ids, or all of a workflow's); returns the
 * ids that this call stopped. Call inside a transaction. */
export async function stopRunningExecutions(
  db: Executor,
  args: { workspaceId: string; now: number } & ({ ids: readonly string[] } | { workflowId: string }),
): Promise<string[]> {
  let query = db
    .updateTable('executions')
    .set({ status: 'stopped', completed_at: args.now, available_at: null, lease_owner: null })
    .where('workspace_id', '=', args.workspaceId)
    .where('status', '=', 'running');
  if ('ids' in args) {
    if (args.ids.length === 0) return [];
    query = query.where('id', 'in', args.ids);
  } else {
    query = query.where('workflow_id', '=', args.workflowId);
  }
  const stopped = (await query.returning('id').execute()).map((r) => r.id);
  if (stopped.length === 0) return stopped;
  await db
    .updateTable('execution_steps')
    .set({ status: 'stopped', phase: null, error: STOPPED_STEP_MESSAGE, error_code: 'stopped', completed_at: args.now })
    .where('execution_id', 'in', stopped)
    .where('status', '=', 'running')
    .execute();
  await db
    .updateTable('workspaces')
    .set({ running_executions: sql`running_executions - ${stopped.length}` })
    .where('id', '=', args.workspaceId)
    .execute();
  return stopped;
}
