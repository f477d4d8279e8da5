import { sql } from 'kysely';
import type { AuthContext } from '../api-keys/key-verifier.js';
import type { Executor } from '../db/schema.js';
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
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';

// Starting an execution is one transaction (SPEC §2): find the workflow in the
// caller's workspace, replay or reject a used idempotency key, take one credit and
// one concurrency slot with a single guarded UPDATE, create the execution (pinned to
// the workflow's current immutable version — its snapshot) and its step rows, and
// record the idempotency key. Either all of it commits or none of it does.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

/** Debits one credit and takes one running slot, or says why it cannot. */
async function reserve(db: Executor, workspaceId: string): Promise<void> {
  const debited = await db
    .updateTable('workspaces')
    .set({ credits: sql`credits - 1`, running_executions: sql`running_executions + 1` })
    .where('id', '=', workspaceId)
    .where('credits', '>=', 1)
    .where((eb) =>
      eb.or([eb('max_concurrent_executions', 'is', null), eb('running_executions', '<', eb.ref('max_concurrent_executions'))]),
    )
    .executeTakeFirst();
  if (debited.numUpdatedRows > 0n) return;
  const ws = await db
    .selectFrom('workspaces')
    .select(['credits', 'max_concurrent_executions', 'running_executions'])
    .where('id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  // SPEC §2 order: the concurrency limit is reported before missing credits.
  if (ws.max_concurrent_executions !== null && ws.running_executions >= ws.max_concurrent_executions) {
    throw new ApiError(
      'concurrent_execution_limit',
      `Concurrent execution limit reached. This workspace allows ${ws.max_concurrent_executions} concurrent executions.`,
      { 'Retry-After': '5' },
    );
  }
  throw new ApiError('insufficient_credits', 'Insufficient credits. Add credits to the workspace and retry.');
}

export async function startExecution(
  deps: Deps,
  args: { auth: AuthContext; workflowId: string; input: unknown; idempotency: IdempotentRequest | null },
): Promise<StoredResponse> {
  const { workspaceId } = args.auth;
  const attempt = () =>
    deps.db.db.transaction().execute(async (trx): Promise<StoredResponse> => {
      if (args.idempotency) await lockKey(deps.db, trx, args.idempotency);
      const now = deps.clock.now();
      const workflow = await trx
        .selectFrom('workflows')
        .select(['id', 'name', 'version_id'])
        .where('workspace_id', '=', workspaceId)
        .where('id', '=', args.workflowId)
        .executeTakeFirst();
      if (!workflow) throw notFound('Workflow');
      if (args.idempotency) {
        const replay = await findReplay(trx, args.idempotency, now);
        if (replay) return replay;
      }
      await reserve(trx, workspaceId);

      const id = newId(now);
      const steps = await versionSteps(trx, workflow.version_id);
      await trx
        .insertInto('executions')
        .values({
          id,
          workspace_id: workspaceId,
          workflow_id: workflow.id,
          version_id: workflow.version_id,
          workflow_name: workflow.name,
          status: 'running',
          input: JSON.stringify(args.input ?? null),
          error: null,
          error_code: null,
          error_step_index: null,
          created_at: now,
          completed_at: null,
          available_at: now,
          lease_owner: null,
        })
        .execute();
      await trx
        .insertInto('execution_steps')
        .values(
          steps.map((step, idx) => ({
            execution_id: id,
            idx,
            name: step.name ?? null,
            type: step.type,
            status: 'pending',
            result: null,
            error: null,
            error_code: null,
            phase: null,
            wake_at: null,
            started_at: null,
            completed_at: null,
          })),
        )
        .execute();
      const body = { execution_id: id, workflow_id: workflow.id, status: 'running', created_at: formatTimestamp(now) };
      const response = { status: 202, bodyText: JSON.stringify(body), replayed: false };
      if (args.idempotency) await saveResponse(trx, args.idempotency, response, now);
      return response;
    });
  const response = await retryOnKeyConflict(deps.db, attempt);
  if (!response.replayed) deps.signals.workAvailable();
  return response;
}
