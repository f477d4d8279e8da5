import type { AppDeps } from '../deps.js';
import { stopRunningExecutions } from './transitions.js';

// POST /executions/stop: every matching running execution of the workspace becomes
// `stopped`, each through the one stop transition (its step in flight stopped, its
// notifications recorded), in transactions of at most STOP_BATCH executions so a large
// stop never holds the write lock for long. Each stopped execution's worker is told at
// once (the same signal as a single stop) and aborts its step in flight; a worker in
// another process sees it on its next tick.

const STOP_BATCH = 500;

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

export async function stopManyExecutions(deps: Deps, args: { workspaceId: string; workflowId?: string; createdBefore?: number }): Promise<number> {
  // Only what existed when the call began: run-async going on meanwhile cannot keep it busy.
  const startedAt = deps.clock.now();
  const createdBefore = Math.min(args.createdBefore ?? Infinity, startedAt + 1);
  let stopped = 0;
  let after: string | null = null;
  for (;;) {
    const ids = await deps.db.db.transaction().execute(async (trx) => {
      let query = trx
        .selectFrom('executions')
        .select('id')
        .where('workspace_id', '=', args.workspaceId)
        .where('status', '=', 'running')
        .where('created_at', '<', createdBefore)
        .orderBy('id', 'desc')
        .limit(STOP_BATCH);
      if (args.workflowId !== undefined) query = query.where('workflow_id', '=', args.workflowId);
      if (after !== null) query = query.where('id', '<', after);
      const candidates = (await query.execute()).map((r) => r.id);
      const done = candidates.length === 0 ? [] : await stopRunningExecutions(deps.db, trx, { workspaceId: args.workspaceId, ids: candidates, now: deps.clock.now() });
      return { candidates, done };
    });
    for (const id of ids.done) deps.signals.stopRequested(id);
    stopped += ids.done.length;
    if (ids.candidates.length < STOP_BATCH) break;
    after = ids.candidates[ids.candidates.length - 1]!;
  }
  return stopped;
}
