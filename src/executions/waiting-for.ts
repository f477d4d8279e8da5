import { Type } from '@sinclair/typebox';
import type { ExecutionRow, ExecutionStepRow, Executor } from '../db/schema.js';
import { formatTimestamp } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';

// `waiting_for` on an execution: what a person must do for it to go on (an approval),
// else null; and `progress` on a for_each step. Read from the step's `detail`. Only
// an execution whose current step is of a waiting type costs a read of its step row
// (the snapshot's definitions are cached), so the hot poll stays one query.

export const WaitingFor = Type.Union(
  [
    Type.Object({ step_index: Type.Integer(), type: Type.Literal('approval'), message: Type.Union([Type.String(), Type.Null()]), expires_at: Type.String() }),
    Type.Null(),
  ],
  { description: 'what the execution waits for: a decision on an approval step; else null' },
);

export const Progress = Type.Union([Type.Object({ total: Type.Integer(), completed: Type.Integer() }), Type.Null()], {
  description: 'a for_each step’s items: how many, how many completed; else null',
});

export type WaitingForView = { step_index: number; type: 'approval'; message: string | null; expires_at: string } | null;

function detailOf(row: Pick<ExecutionStepRow, 'detail'>): Record<string, unknown> | null {
  if (row.detail === null) return null;
  try {
    return JSON.parse(row.detail) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function waitingForOf(step: ExecutionStepRow | undefined): WaitingForView {
  if (!step || step.status !== 'running' || step.phase !== 'wait' || step.type !== 'approval') return null;
  const detail = detailOf(step);
  return { step_index: step.idx, type: 'approval', message: typeof detail?.message === 'string' ? detail.message : null, expires_at: formatTimestamp(step.wake_at)! };
}

export function progressOf(step: ExecutionStepRow): { total: number; completed: number } | null {
  if (step.status !== 'running') return null;
  const progress = detailOf(step)?.progress as { total?: unknown; completed?: unknown } | undefined;
  return typeof progress?.total === 'number' && typeof progress.completed === 'number' ? { total: progress.total, completed: progress.completed } : null;
}

/** The waiting_for of a running execution, from its step rows when already read. */
export async function readWaitingFor(db: Executor, row: ExecutionRow, steps?: ExecutionStepRow[]): Promise<WaitingForView> {
  if (row.status !== 'running') return null;
  if (steps) return waitingForOf(steps[row.current_step]);
  const def = (await versionSteps(db, row.version_id))[row.current_step];
  if (def?.type !== 'approval') return null;
  const step = await db.selectFrom('execution_steps').selectAll().where('execution_id', '=', row.id).where('idx', '=', row.current_step).executeTakeFirst();
  return waitingForOf(step);
}
