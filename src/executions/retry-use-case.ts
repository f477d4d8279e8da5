import { sql } from 'kysely';
import type { AuthContext } from '../api-keys/key-verifier.js';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import type { IdempotentRequest, StoredResponse } from '../idempotency/idempotency.js';
import { param, statement } from '../db/statements.js';
import { startExecution } from './start-execution.js';
import { findExecution, stepsOf } from './store.js';

// POST /executions/:id/retry: a new execution of the original's snapshot (its version)
// with the original's input, started through the one start path (1 credit, the cap,
// idempotency). An execution is retried at most once: the start's guard refuses when
// a retry exists, and the unique index on executions.retry_of settles a race (the
// loser's batch fails on it and is decided again, seeing the winner). With
// `failed_step`, the steps before the first failed or stopped one are copied with
// `reused` set, in the start's transaction, and the new execution begins at that step.

export type RetryFrom = 'failed_step' | 'start';

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals' | 'logger'>;

const notRetryable = (status: string) =>
  new ApiError('execution_not_retryable', `The execution is ${status}; only a failed or stopped execution can be retried.`);
const alreadyRetried = (retryId: string) =>
  new ApiError('already_retried', `The execution was already retried by execution ${retryId}; retry that one instead.`);

const retryOf = statement<{ id: string }>('retry:existing', (db) => db.selectFrom('executions').select('id').where('retry_of', '=', param('id')));

const copySteps = statement('retry:copy-steps', () =>
  sql`insert into execution_steps (execution_id, idx, name, type, status, result, error, error_code, attempts, interruptions, phase, wake_at, started_at, completed_at, reused)
      select ${param('to')}, idx, name, type, status, result, error, error_code, attempts, 0, null, null, started_at, completed_at, 1
      from execution_steps where execution_id = ${param('from')} and idx < ${param<number>('before')}`,
);

const startAt = statement('retry:start-at', () => sql`update executions set current_step = ${param<number>('step')} where id = ${param('id')}`);

export async function retryExecution(
  deps: Deps,
  args: { auth: AuthContext; executionId: string; from: RetryFrom; idempotency: IdempotentRequest | null },
): Promise<StoredResponse> {
  const { workspaceId } = args.auth;
  const original = await findExecution(deps.db.db, workspaceId, args.executionId);
  if (!original) throw notFound('Execution');
  if (original.status !== 'failed' && original.status !== 'stopped') throw notRetryable(original.status);

  // The original is final: its steps no longer change, so where to resume is decided here.
  let resumeAt = 0;
  if (args.from === 'failed_step') {
    const steps = await stepsOf(deps.db.db, original);
    const broken = steps.findIndex((s) => s.status === 'failed' || s.status === 'stopped');
    resumeAt = broken >= 0 ? broken : Math.min(original.current_step, steps.length);
    // Only finished steps can be reused; anything else before the resume point is run again.
    const firstUnfinished = steps.findIndex((s, i) => i < resumeAt && s.status !== 'completed' && s.status !== 'skipped');
    if (firstUnfinished >= 0) resumeAt = firstUnfinished;
  }

  let existing: string | null = null;
  return startExecution(deps, {
    workspaceId,
    workflowId: original.workflow_id,
    versionId: original.version_id,
    input: JSON.parse(original.input) as unknown,
    trigger: { type: 'retry', execution_id: original.id },
    idempotency: args.idempotency,
    guard: {
      claim: async (tx) => {
        existing = (await tx.all(retryOf, { id: original.id }))[0]?.id ?? null;
        return existing === null;
      },
      refusal: () => alreadyRetried(existing!),
    },
    afterInsert: async (tx, executionId) => {
      if (resumeAt === 0) return;
      await tx.run(copySteps, { to: executionId, from: original.id, before: resumeAt });
      await tx.run(startAt, { id: executionId, step: resumeAt });
    },
  });
}
