import type { AuthContext } from '../api-keys/key-verifier.js';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import {
  type IdempotentRequest,
  type StoredResponse,
  findReplay,
  lockKey,
  retryOnKeyConflict,
  saveResponse,
} from '../idempotency/idempotency.js';
import { stopRunningExecutions } from './transitions.js';

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

const notRunning = (status: string) =>
  new ApiError('execution_not_running', `The execution is already ${status}; only a running execution can be stopped.`);

/** POST /executions/:id/stop: `stopped` is committed before the response; the worker
 * holding the execution is then told to abort the step in flight. */
export async function stopExecution(
  deps: Deps,
  args: { auth: AuthContext; executionId: string; idempotency: IdempotentRequest | null },
): Promise<StoredResponse> {
  const { workspaceId } = args.auth;
  const attempt = () =>
    deps.db.db.transaction().execute(async (trx): Promise<StoredResponse> => {
      if (args.idempotency) await lockKey(deps.db, trx, args.idempotency);
      const now = deps.clock.now();
      const execution = await trx
        .selectFrom('executions')
        .select(['id', 'status'])
        .where('workspace_id', '=', workspaceId)
        .where('id', '=', args.executionId)
        .executeTakeFirst();
      if (!execution) throw notFound('Execution');
      if (args.idempotency) {
        const replay = await findReplay(trx, args.idempotency, now);
        if (replay) return replay;
      }
      if (execution.status !== 'running') throw notRunning(execution.status);
      const stopped = await stopRunningExecutions(deps.db, trx, { workspaceId, ids: [execution.id], now });
      // Lost a race (the worker finished it, or another stop won): report the state
      // that won — a new statement sees what the winner committed.
      if (stopped.length === 0) {
        const current = await trx.selectFrom('executions').select('status').where('id', '=', execution.id).executeTakeFirst();
        throw notRunning(current?.status ?? 'finished');
      }
      const response = { status: 200, bodyText: JSON.stringify({ execution_id: execution.id, status: 'stopped' }), replayed: false };
      if (args.idempotency) await saveResponse(trx, args.idempotency, response, now);
      return response;
    });
  const response = await retryOnKeyConflict(deps.db, attempt);
  if (!response.replayed) deps.signals.stopRequested(args.executionId);
  return response;
}
