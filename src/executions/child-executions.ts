import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { StepFailure } from '../engine/step-errors.js';
import { versionSteps } from '../workflows/version-cache.js';
import { startExecution } from './start-execution.js';

// Sub-workflows as the engine's workflow step sees them: a child is started through
// the one start path (credit, concurrency cap, trigger `workflow`, depth), under an
// idempotency key made of the parent, the step and the item — so a parent whose
// worker dies after the child was created, before its own checkpoint, finds the same
// child again instead of starting a second one.

export const MAX_DEPTH = 10;

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals' | 'logger'>;

export interface ChildOutcome {
  status: 'running' | 'success' | 'failed' | 'stopped';
  error: string | null;
  /** The child's last step's result (null when it has none). */
  result: unknown;
}

export interface ChildExecutions {
  start(args: { workspaceId: string; parentId: string; stepIndex: number; itemIndex: number | null; workflowId: string; input: unknown }): Promise<string>;
  outcome(childId: string): Promise<ChildOutcome | null>;
  /** After a parent's wait is committed: wakes it if a child it waits for has already ended. */
  wakeIfEnded(parentId: string, stepIndex: number, childIds: readonly string[]): Promise<void>;
}

export function createChildExecutions(deps: Deps): ChildExecutions {
  const db = deps.db.db;
  return {
    async start(args) {
      const parent = await db.selectFrom('executions').select(['depth']).where('id', '=', args.parentId).executeTakeFirst();
      const depth = (parent?.depth ?? 0) + 1;
      if (depth > MAX_DEPTH) {
        throw new StepFailure('depth_exceeded', `Sub-workflows nest at most ${MAX_DEPTH} deep; this child would be at depth ${depth}.`);
      }
      try {
        const response = await startExecution(deps, {
          workspaceId: args.workspaceId,
          workflowId: args.workflowId,
          input: args.input,
          trigger: { type: 'workflow', execution_id: args.parentId, step_index: args.stepIndex },
          idempotency: { workspaceId: args.workspaceId, key: `skipflow:workflow-step:${args.parentId}:${args.stepIndex}:${args.itemIndex ?? '-'}`, fingerprint: 'workflow-step' },
          depth,
        });
        return (JSON.parse(response.bodyText) as { execution_id: string }).execution_id;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        switch (error.code) {
          case 'insufficient_credits':
            throw new StepFailure('insufficient_credits', 'The child execution could not start: the workspace has no credit left.');
          case 'concurrent_execution_limit':
            throw new StepFailure('concurrent_execution_limit', `The child execution could not start: ${error.message}`, true);
          case 'not_found':
            throw new StepFailure('workflow_not_found', `workflow_id: no workflow ${args.workflowId} in this workspace.`);
          default:
            throw new StepFailure('internal_error', `The child execution could not start: ${error.message}`);
        }
      }
    },
    async outcome(childId) {
      const row = await db.selectFrom('executions').select(['status', 'error', 'version_id']).where('id', '=', childId).executeTakeFirst();
      if (!row) return null;
      if (row.status === 'running') return { status: 'running', error: null, result: null };
      const last = (await versionSteps(db, row.version_id)).length - 1;
      const step = await db.selectFrom('execution_steps').select(['status', 'result']).where('execution_id', '=', childId).where('idx', '=', last).executeTakeFirst();
      const result = step?.status === 'completed' && step.result !== null ? (JSON.parse(step.result) as unknown) : null;
      return { status: row.status, error: row.error, result };
    },
    async wakeIfEnded(parentId, stepIndex, childIds) {
      if (childIds.length === 0) return;
      const ended = await db.selectFrom('executions').select('id').where('id', 'in', [...childIds]).where('status', '!=', 'running').executeTakeFirst();
      if (!ended) return;
      await db.updateTable('executions').set({ available_at: 0 }).where('id', '=', parentId).where('status', '=', 'running').where('current_step', '=', stepIndex).where('lease_owner', 'is', null).execute();
      deps.signals.workAvailable();
    },
  };
}
