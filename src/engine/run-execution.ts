import type { Logger } from 'pino';
import type { ExecutionStepRow } from '../db/schema.js';
import { backoffDelay, retryPolicy } from '../lib/backoff.js';
import type { Clock } from '../lib/time.js';
import type { Checkpoint, Checkpointer, StepWrite } from './checkpoint.js';
import type { ClaimedExecution } from './lease.js';
import type { Deadline } from './deadline.js';
import { Abandoned, attemptDeadline, evaluateCondition, runAttempt } from './run-step.js';
import { StepFailure } from './step-errors.js';
import { type StepDefinition, stepType } from './steps/index.js';
import type { ExpressionContext, StepServices } from './steps/step-type.js';

// Runs one claimed execution from its current step until it ends, sleeps or is
// stopped. Steps run strictly in order. Each checkpoint carries the end of one step
// and the start of the next, and is committed before that next step runs, so:
// - a completed step's result is durable before anything after it happens, and it
//   is never run again (its row says `completed`);
// - a step whose row says `running` in phase `attempt` when the execution is claimed
//   was interrupted by a dying worker: it runs again (at-least-once), without using
//   its retry budget, and fails with `worker_lost` after MAX_INTERRUPTIONS.

export const MAX_INTERRUPTIONS = 5;

export interface RunnerDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly checkpoints: Checkpointer;
  readonly services: StepServices;
  /** Called when the execution goes to sleep, so the worker can wake for it. */
  onSleep(until: number): void;
}

interface Run {
  readonly claimed: ClaimedExecution;
  readonly defs: readonly StepDefinition[];
  readonly context: ExpressionContext;
  /** Writes not yet committed; flushed by the next checkpoint. */
  writes: StepWrite[];
}

function failureWrite(idx: number, failure: StepFailure, now: number): StepWrite {
  return { idx, set: { status: 'failed', phase: null, wake_at: null, error: failure.message, error_code: failure.code, completed_at: now } };
}

async function commit(deps: RunnerDeps, run: Run, execution: Checkpoint['execution'], terminal = false): Promise<void> {
  const checkpoint: Checkpoint = {
    executionId: run.claimed.id,
    workspaceId: run.claimed.workspace_id,
    leaseToken: run.claimed.lease_token,
    steps: run.writes,
    execution,
    terminal,
  };
  run.writes = [];
  if (!(await deps.checkpoints.submit(checkpoint))) throw new Abandoned('fenced');
}

/** Decides how step `i` starts (or is skipped); returns false when it was skipped. */
async function beginStep(deps: RunnerDeps, run: Run, i: number, row: ExecutionStepRow, signal: AbortSignal): Promise<{ attempt: number; wakeAt: number | null; deadline?: Deadline } | null> {
  const def = run.defs[i]!;
  const now = deps.clock.now();
  if (row.status === 'pending') {
    const type = stepType(def.type)!;
    const deadline = attemptDeadline(type, def);
    if (!(await evaluateCondition(def, run.context, { deadline, signal, workspaceId: run.claimed.workspace_id }))) {
      run.writes.push({ idx: i, set: { status: 'skipped', completed_at: now } });
      return null;
    }
    run.writes.push({ idx: i, set: { status: 'running', phase: 'attempt', attempts: 1, started_at: now } });
    return { attempt: 1, wakeAt: null, deadline };
  }
  switch (row.phase) {
    case 'sleep':
      run.writes.push({ idx: i, set: { phase: 'attempt' } });
      return { attempt: row.attempts, wakeAt: row.wake_at };
    case 'backoff':
      run.writes.push({ idx: i, set: { phase: 'attempt', wake_at: null, attempts: row.attempts + 1 } });
      return { attempt: row.attempts + 1, wakeAt: null };
    default: {
      // Phase `attempt` on a fresh claim: the previous holder died mid-attempt.
      const interruptions = row.interruptions + 1;
      if (interruptions >= MAX_INTERRUPTIONS) {
        throw new StepFailure('worker_lost', `The worker running this step was lost ${interruptions} times; the step is not tried again.`);
      }
      run.writes.push({ idx: i, set: { interruptions } });
      // A delay that had already woken keeps its stored wake-up time (wake_at is only
      // set while sleeping or just after waking), so it neither sleeps again nor fires early.
      return { attempt: row.attempts, wakeAt: row.wake_at };
    }
  }
}

export async function runExecution(deps: RunnerDeps, claimed: ClaimedExecution, defs: readonly StepDefinition[], signal: AbortSignal): Promise<void> {
  const steps: unknown[] = claimed.steps.map((s) => (s.status === 'completed' && s.result !== null ? JSON.parse(s.result) : null));
  const run: Run = {
    claimed,
    defs,
    context: {
      input: JSON.parse(claimed.input) as unknown,
      steps,
      execution: { execution_id: claimed.id, workflow_id: claimed.workflow_id, workflow_name: claimed.workflow_name },
      workflow: { workflow_id: claimed.workflow_id, name: claimed.workflow_name },
    },
    writes: [],
  };
  try {
    for (let i = claimed.current_step; i < defs.length; i++) {
      if (signal.aborted) return;
      run.context.steps = steps.slice(0, i);
      const outcome = await runOneStep(deps, run, i, signal);
      if (outcome === 'released') return;
      steps[i] = outcome === 'failed' ? null : outcome.result;
    }
    const now = deps.clock.now();
    await commit(deps, run, { current_step: defs.length, status: 'success', completed_at: now, available_at: null, lease_owner: null }, true);
  } catch (error) {
    if (error instanceof Abandoned) return;
    throw error;
  }
}

type StepEnd = { result: unknown } | 'failed' | 'released';

async function runOneStep(deps: RunnerDeps, run: Run, i: number, signal: AbortSignal): Promise<StepEnd> {
  const def = run.defs[i]!;
  const row = run.claimed.steps[i]!;
  const type = stepType(def.type)!;
  const freshRow = row.status === 'pending' || i !== run.claimed.current_step;
  let started: { attempt: number; wakeAt: number | null; deadline?: Deadline } | null;
  try {
    started = await beginStep(deps, run, i, freshRow ? { ...row, status: 'pending' } : row, signal);
  } catch (error) {
    if (!(error instanceof StepFailure)) throw error;
    return endWithFailure(deps, run, i, error);
  }
  if (started === null) return { result: null };
  await commit(deps, run, { current_step: i });

  try {
    const outcome = await runAttempt({
      type,
      def,
      context: run.context,
      stepKey: `${run.claimed.id}:${i}`,
      attempt: started.attempt,
      wakeAt: started.wakeAt,
      signal,
      now: () => deps.clock.now(),
      services: deps.services,
      workspaceId: run.claimed.workspace_id,
      deadline: started.deadline,
    });
    const now = deps.clock.now();
    if (outcome.kind === 'sleep') {
      run.writes.push({ idx: i, set: { phase: 'sleep', wake_at: outcome.until } });
      await commit(deps, run, { available_at: outcome.until, lease_owner: null });
      deps.onSleep(outcome.until);
      return 'released';
    }
    run.writes.push({
      idx: i,
      set: { status: 'completed', phase: null, result: JSON.stringify(outcome.result), error: null, error_code: null, completed_at: now },
    });
    return { result: outcome.result };
  } catch (error) {
    // Only the step's own failure is data. Anything else — a checkpoint that could not
    // be committed (database down, connection cut) — is not the step's fault: the
    // worker gives the execution up and it is taken again after its lease expires.
    if (!(error instanceof StepFailure)) throw error;
    const failure = error;
    const policy = retryPolicy(def.retry);
    if (failure.retryable && started.attempt < policy.maxAttempts && !signal.aborted) {
      const wakeAt = deps.clock.now() + backoffDelay(policy, started.attempt, failure.retryAfterMs);
      // A retry backoff is a durable timer like a delay: no worker slot is held.
      run.writes.push({ idx: i, set: { phase: 'backoff', wake_at: wakeAt, error: failure.message, error_code: failure.code } });
      await commit(deps, run, { available_at: wakeAt, lease_owner: null });
      deps.onSleep(wakeAt);
      return 'released';
    }
    if (failure.code === 'internal_error') deps.logger.error({ err: failure, executionId: run.claimed.id, step: i }, 'step failed unexpectedly');
    return endWithFailure(deps, run, i, failure);
  }
}

async function endWithFailure(deps: RunnerDeps, run: Run, i: number, failure: StepFailure): Promise<StepEnd> {
  const now = deps.clock.now();
  run.writes.push(failureWrite(i, failure, now));
  if (run.defs[i]!.continue_on_error) return 'failed';
  const label = run.defs[i]!.name ? `"${run.defs[i]!.name}"` : `${i}`;
  await commit(
    deps,
    run,
    {
      current_step: i,
      status: 'failed',
      error: `Step ${label} (${run.defs[i]!.type}) failed: ${failure.message}`,
      error_code: failure.code,
      error_step_index: i,
      completed_at: now,
      available_at: null,
      lease_owner: null,
    },
    true,
  );
  return 'released';
}
