import type { AuthContext } from '../api-keys/key-verifier.js';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import { type IdempotentRequest, type StoredResponse, findReplay, lockKey, retryOnKeyConflict, saveResponse } from '../idempotency/idempotency.js';
import { formatTimestamp } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';
import { assertStepTransition, assertTransition } from './status.js';
import { toStepView } from './store.js';
import { recordDeliveriesIn } from '../notifications/record-deliveries.js';
import { executionsEnded } from './terminal-hooks.js';
import { lockParents } from './transitions.js';

// POST /executions/:id/steps/:index/approve and …/reject. A waiting approval is a
// step row (`running`, phase `wait`, its expiry in wake_at) of an execution that no
// worker holds. The decision is one transaction: the step ends (completed, or failed
// with `rejected`), and the execution either moves on to the next step and is made
// due at once, or — a rejection without continue_on_error — ends `failed`. The
// execution's fencing token is bumped, so a worker that claimed it at that instant
// (its expiry) writes nothing; the row lock (PostgreSQL) or the single writer
// (SQLite) orders a decision against that worker, a stop or another decision. The
// engine is then told there is work — over NOTIFY, on whichever process it runs.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

export type Decision = { approved: true; data: unknown; comment: string | null } | { approved: false; comment: string | null };

const notWaiting = (why: string) => new ApiError('step_not_waiting', `${why}; only an approval step that is waiting for a decision can be approved or rejected.`);

export async function decideApproval(
  deps: Deps,
  args: { auth: AuthContext; executionId: string; index: number; decision: Decision; idempotency: IdempotentRequest | null },
): Promise<StoredResponse> {
  const { workspaceId } = args.auth;
  let moved = false;
  const attempt = () =>
    deps.db.db.transaction().execute(async (trx): Promise<StoredResponse> => {
      moved = false;
      if (args.idempotency) await lockKey(deps.db, trx, args.idempotency);
      const now = deps.clock.now();
      // A rejection may end the execution, which wakes its sub-workflow parent: lock
      // the parent first (lower id), as every writer that ends executions does.
      if (deps.db.sharedAcrossProcesses) await lockParents(trx, [{ id: args.executionId }]);
      const query = trx
        .selectFrom('executions')
        .select(['id', 'status', 'current_step', 'version_id', 'workspace_id', 'workflow_id'])
        .where('workspace_id', '=', workspaceId)
        .where('id', '=', args.executionId);
      const execution = await (deps.db.sharedAcrossProcesses ? query.forUpdate() : query).executeTakeFirst();
      if (!execution) throw notFound('Execution');
      if (args.idempotency) {
        const replay = await findReplay(trx, args.idempotency, now);
        if (replay) return replay;
      }
      const def = (await versionSteps(trx, execution.version_id))[args.index];
      if (!def) throw notWaiting(`The execution has no step ${args.index}`);
      if (execution.status !== 'running') throw notWaiting(`The execution is ${execution.status}`);
      const row = await trx.selectFrom('execution_steps').selectAll().where('execution_id', '=', execution.id).where('idx', '=', args.index).executeTakeFirst();
      if (def.type !== 'approval') throw notWaiting(`Step ${args.index} is a ${def.type} step`);
      if (execution.current_step !== args.index || !row || row.status !== 'running' || row.phase !== 'wait') {
        throw notWaiting(`Step ${args.index} is ${row?.status ?? 'pending'}, not waiting`);
      }
      if (row.wake_at !== null && now >= row.wake_at) throw notWaiting(`Step ${args.index} expired at ${formatTimestamp(row.wake_at)}`);

      const decidedAt = formatTimestamp(now);
      const ended = args.decision.approved
        ? { status: 'completed' as const, result: JSON.stringify({ approved: true, data: args.decision.data ?? null, comment: args.decision.comment, decided_by: args.auth.keyId, decided_at: decidedAt }), error: null, error_code: null }
        : { status: 'failed' as const, result: null, error: `Rejected${args.decision.comment ? `: ${args.decision.comment}` : ''} (by ${args.auth.keyId} at ${decidedAt}).`, error_code: 'rejected' };
      assertStepTransition(row.status, ended.status);
      const step = await trx
        .updateTable('execution_steps')
        .set({ ...ended, phase: null, wake_at: null, completed_at: now })
        .where('execution_id', '=', execution.id)
        .where('idx', '=', args.index)
        .where('phase', '=', 'wait')
        .returningAll()
        .executeTakeFirstOrThrow();
      if (ended.status === 'completed' || def.continue_on_error) {
        await trx
          .updateTable('executions')
          .set((eb) => ({ current_step: args.index + 1, interruptions: 0, available_at: 0, lease_owner: null, lease_token: eb('lease_token', '+', 1) }))
          .where('id', '=', execution.id)
          .where('status', '=', 'running')
          .execute();
        moved = true;
      } else {
        assertTransition('running', 'failed');
        const label = def.name ? `"${def.name}"` : `${args.index}`;
        await trx
          .updateTable('executions')
          .set((eb) => ({
            status: 'failed', error: `Step ${label} (approval) failed: ${ended.error}`, error_code: 'rejected', error_step_index: args.index,
            completed_at: now, available_at: null, lease_owner: null, lease_token: eb('lease_token', '+', 1),
          }))
          .where('id', '=', execution.id)
          .where('status', '=', 'running')
          .execute();
        // The outbox: its notifications commit with the final status.
        await recordDeliveriesIn(trx, [{ id: execution.id, workspace_id: execution.workspace_id, workflow_id: execution.workflow_id, status: 'failed', completed_at: now }]);
        await executionsEnded(deps.db, trx, [execution.id], now);
      }
      const response = { status: 200, bodyText: JSON.stringify(toStepView(step)), replayed: false };
      if (args.idempotency) await saveResponse(trx, args.idempotency, response, now);
      return response;
    });
  const response = await retryOnKeyConflict(deps.db, attempt);
  if (!response.replayed && moved) deps.signals.workAvailable();
  return response;
}
