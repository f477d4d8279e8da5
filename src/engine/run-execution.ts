import type { Logger } from 'pino';
import { backoffDelay, retryPolicy } from '../lib/backoff.js';
import type { Clock } from '../lib/time.js';
import type { Checkpoint, Checkpointer, ExecutionMove, StepRow } from './checkpoint.js';
import { assertStepTransition } from '../executions/status.js';
import { stepResultText } from './execution-result-budget.js';
import type { ClaimedExecution } from './lease.js';
import type { Deadline } from './deadline.js';
import { Abandoned, attemptDeadline, evaluateCondition, runAttempt } from './run-step.js';
import { StepFailure } from './step-errors.js';
import type { Db } from '../db/open.js';
import { runForEach } from './for-each.js';
import { recordMetric } from '../metrics/engine-metrics.js';
import { type StepDefinition, stepType } from './steps/index.js';
import type { ExpressionContext, StepOutcome, StepServices } from './steps/step-type.js';

// Runs one claimed execution from its current step until it ends, sleeps or is
// given up. Steps run strictly in order, and the run is explicit about its writes:
// each step's decisions produce whole step rows, which wait in `pending` until the
// next checkpoint carries them, and a checkpoint is committed before anything that
// depends on it happens:
// - a step that has effects outside the execution (http, email, a delay) is marked
//   `running` by a checkpoint before its attempt — together with the end of the step
//   before it — so a poll sees it run; a pure step (a transform) is not marked first;
// - a step whose worker died is run again (at-least-once) without using its retry
//   budget; the claim that takes the lapsed lease over counts the interruption, and
//   after MAX_INTERRUPTIONS of one step it fails with `worker_lost`;
// - a completed step's result is durable before anything after it happens, and it is
//   never run again (its row says `completed`).
// A checkpoint that is fenced out (lease lost, execution stopped) ends the run as
// `abandoned`: nothing more is written.

export const MAX_INTERRUPTIONS = 5;

export interface RunnerDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly checkpoints: Checkpointer;
  readonly services: StepServices;
  /** The database, for what is checkpointed outside the step rows (for_each items). */
  readonly db?: Db;
  /** Called when the execution goes to sleep, so the worker can wake for it. */
  onSleep(until: number): void;
}

/** How a run ended, for the worker: its slot is free in every case. */
export type RunEnd = 'finished' | 'asleep' | 'abandoned';

class Run {
  /** Step rows decided but not yet committed; the next checkpoint carries them. */
  pending: StepRow[] = [];
  readonly rows: Array<StepRow | undefined>;
  readonly results: unknown[];
  readonly context: ExpressionContext;

  constructor(
    readonly deps: RunnerDeps,
    readonly claimed: ClaimedExecution,
    readonly defs: readonly StepDefinition[],
  ) {
    this.rows = defs.map(() => undefined);
    this.results = defs.map(() => null);
    for (const row of claimed.steps) {
      this.rows[row.idx] = row;
      if (row.status === 'completed' && row.result !== null) this.results[row.idx] = JSON.parse(row.result);
    }
    this.context = {
      input: JSON.parse(claimed.input) as unknown,
      steps: [],
      execution: { execution_id: claimed.id, workflow_id: claimed.workflow_id, workflow_name: claimed.workflow_name },
      workflow: { workflow_id: claimed.workflow_id, name: claimed.workflow_name },
    };
  }

  now(): number {
    return this.deps.clock.now();
  }

  /** The row of step i as it is now (a step without a row is pending). */
  row(i: number): StepRow {
    const def = this.defs[i]!;
    return (
      this.rows[i] ?? {
        idx: i, name: def.name ?? null, type: def.type, status: 'pending', result: null, error: null, error_code: null,
        attempts: 0, interruptions: 0, phase: null, wake_at: null, started_at: null, completed_at: null, detail: null, duration_ms: null,
      }
    );
  }

  /** Records a decided change of step i; committed by the next checkpoint. */
  write(i: number, change: Partial<StepRow>): StepRow {
    const current = this.row(i);
    if (change.status !== undefined && change.status !== current.status) assertStepTransition(current.status, change.status);
    const next = { ...current, ...change };
    this.rows[i] = next;
    this.pending = this.pending.filter((r) => r.idx !== i);
    this.pending.push(next);
    return next;
  }

  /** Commits the pending rows with the execution's move; false when fenced out. */
  async commit(move: ExecutionMove): Promise<boolean> {
    const checkpoint: Checkpoint = { executionId: this.claimed.id, leaseToken: this.claimed.lease_token, steps: this.pending, move };
    this.pending = [];
    const applied = (await this.deps.checkpoints.submit(checkpoint)) === 'applied';
    if (applied && move.kind === 'finish') this.#finished(move);
    return applied;
  }

  /** A final status was written: counted, and logged for the operator. */
  #finished(move: Extract<ExecutionMove, { kind: 'finish' }>): void {
    recordMetric.finished(move.status);
    const ids = { executionId: this.claimed.id, workflowId: this.claimed.workflow_id, workspaceId: this.claimed.workspace_id };
    if (move.error) this.deps.logger.info({ ...ids, status: move.status, errorCode: move.error.code, stepIndex: move.error.stepIndex }, 'execution finished');
    else this.deps.logger.info({ ...ids, status: move.status }, 'execution finished');
  }
}

function label(def: StepDefinition, i: number): string {
  return def.name ? `"${def.name}"` : `${i}`;
}

/** What happens before step i's attempt: skip it, fail it, or run attempt N. */
type Start = { skip: true } | { failure: StepFailure } | { attempt: number; wakeAt: number | null; deadline?: Deadline };

async function startStep(run: Run, i: number, signal: AbortSignal): Promise<Start> {
  const def = run.defs[i]!;
  const type = stepType(def.type)!;
  const row = run.row(i);
  const now = run.now();
  // Takeovers of this step (the claim counts them): the workers that ran it died.
  const interruptions = i === run.claimed.current_step ? run.claimed.interruptions : 0;
  if (interruptions >= MAX_INTERRUPTIONS) {
    return { failure: new StepFailure('worker_lost', `The worker running this step was lost ${interruptions} times; the step is not tried again.`) };
  }
  // Rows of an older layout (`pending` placeholders), or past the execution's
  // position, are fresh.
  if (row.status === 'pending' || i !== run.claimed.current_step) {
    // One deadline for the first attempt: its `if`, its templates and its work.
    const deadline = attemptDeadline(type, def);
    try {
      if (!(await evaluateCondition(def, run.context, { deadline, signal, workspaceId: run.claimed.workspace_id }))) {
        run.write(i, { status: 'skipped', completed_at: now });
        return { skip: true };
      }
    } catch (error) {
      if (error instanceof StepFailure) return { failure: error };
      throw error;
    }
    const running = { status: 'running', phase: 'attempt', attempts: 1, started_at: now, interruptions } as const;
    if (type.pure && !('for_each' in def && def.for_each !== undefined)) {
      run.rows[i] = { ...row, ...running };
      return { attempt: 1, wakeAt: null, deadline };
    }
    run.write(i, running);
    return { attempt: 1, wakeAt: null, deadline };
  }
  switch (row.phase) {
    case 'wait': // a waiting step (approval, sub-workflow) woken by its expiry: like a sleep
    case 'sleep':
      // Waking: the step's next write is its end. A worker that dies before then
      // leaves it asleep with a past wake time, and the next claim wakes it again.
      run.rows[i] = { ...row, interruptions };
      return { attempt: row.attempts, wakeAt: row.wake_at };
    case 'backoff':
      run.write(i, { phase: 'attempt', wake_at: null, attempts: row.attempts + 1, interruptions });
      return { attempt: row.attempts + 1, wakeAt: null };
    case 'attempt':
    case null:
      // Its attempt did not end (the worker died, or handed it back at shutdown): it
      // runs again, without using its retry budget. A delay that had already woken
      // keeps its stored wake-up time, so it neither sleeps again nor fires early.
      run.rows[i] = { ...row, interruptions };
      return { attempt: row.attempts, wakeAt: row.wake_at };
    default: {
      const never: never = row.phase;
      throw new Error(`unknown step phase ${String(never)}`);
    }
  }
}

/** Runs step i's attempt; returns its outcome or its failure. */
async function attemptStep(run: Run, i: number, start: { attempt: number; wakeAt: number | null; deadline?: Deadline }, signal: AbortSignal): Promise<StepOutcome | StepFailure> {
  const def = run.defs[i]!;
  try {
    return await runAttempt({
      type: stepType(def.type)!,
      def,
      context: run.context,
      stepKey: `${run.claimed.id}:${i}`,
      attempt: start.attempt,
      wakeAt: start.wakeAt,
      signal,
      now: () => run.now(),
      services: run.deps.services,
      workspaceId: run.claimed.workspace_id,
      deadline: start.deadline,
      detail: run.row(i).detail,
      executionId: run.claimed.id,
      stepIndex: i,
    });
  } catch (error) {
    // Only the step's own failure is data; Abandoned and anything else propagate.
    if (error instanceof StepFailure) return error;
    throw error;
  }
}

/** A step with for_each (engine/for-each.ts): its items, each checkpointed. */
async function forEachStep(run: Run, i: number, start: { wakeAt: number | null; deadline?: Deadline }, signal: AbortSignal): Promise<StepOutcome | StepFailure> {
  return runForEach(
    {
      db: run.deps.db!, executionId: run.claimed.id, leaseToken: run.claimed.lease_token, workspaceId: run.claimed.workspace_id, stepIndex: i,
      def: run.defs[i]!, context: run.context, services: run.deps.services, now: () => run.now(), deadline: start.deadline,
    },
    signal,
    start.wakeAt,
  );
}

export async function runExecution(deps: RunnerDeps, claimed: ClaimedExecution, defs: readonly StepDefinition[], signal: AbortSignal): Promise<RunEnd> {
  const run = new Run(deps, claimed, defs);
  try {
    for (let i = claimed.current_step; i < defs.length; i++) {
      if (signal.aborted) return 'abandoned';
      run.context.steps = run.results.slice(0, i);
      const end = await runStep(run, i, signal);
      if (end !== 'next') return end;
    }
    const ok = await run.commit({ kind: 'finish', status: 'success', currentStep: defs.length, completedAt: run.now(), error: null });
    return ok ? 'finished' : 'abandoned';
  } catch (error) {
    if (error instanceof Abandoned) return 'abandoned';
    throw error;
  }
}

/** One step, start to end: 'next' when the run goes on to the following step. */
async function runStep(run: Run, i: number, signal: AbortSignal): Promise<RunEnd | 'next'> {
  const def = run.defs[i]!;
  const start = await startStep(run, i, signal);
  if ('skip' in start) return 'next';
  if ('failure' in start) return fail(run, i, start.failure);
  // Whatever is pending (the end of the step before, this step's mark) is durable
  // before the attempt begins.
  if (run.pending.length > 0 && !(await run.commit({ kind: 'progress', currentStep: i }))) return 'abandoned';

  const began = performance.now();
  const outcome = 'for_each' in def && def.for_each !== undefined ? await forEachStep(run, i, start, signal) : await attemptStep(run, i, start, signal);
  const durationMs = Math.round(performance.now() - began);
  recordMetric.step(def.type, outcome instanceof StepFailure ? 'failed' : outcome.kind === 'sleep' ? 'sleeping' : 'completed', durationMs / 1000);
  const now = run.now();
  if (outcome instanceof StepFailure) {
    const policy = retryPolicy(def.retry);
    if (outcome.retryable && start.attempt < policy.maxAttempts && !signal.aborted) {
      const wakeAt = now + backoffDelay(policy, start.attempt, outcome.retryAfterMs);
      // A retry backoff is a durable timer like a delay: no worker slot is held.
      run.write(i, { status: 'running', phase: 'backoff', wake_at: wakeAt, error: outcome.message, error_code: outcome.code, duration_ms: durationMs });
      return sleepUntil(run, i, wakeAt);
    }
    if (outcome.code === 'internal_error') run.deps.logger.error({ err: outcome, executionId: run.claimed.id, step: i }, 'step failed unexpectedly');
    run.rows[i] = { ...run.row(i), duration_ms: durationMs };
    return fail(run, i, outcome);
  }
  if (outcome.kind === 'wait') {
    // Waiting for something outside the engine (a decision, a child execution) until
    // at most `until`: durable like a sleep, with what it waits for in `detail`.
    const detail = outcome.detail === undefined ? run.row(i).detail : JSON.stringify(outcome.detail);
    run.write(i, { status: 'running', phase: 'wait', wake_at: outcome.until, detail, attempts: start.attempt, started_at: run.row(i).started_at ?? now });
    const end = await sleepUntil(run, i, outcome.until);
    if (end === 'asleep') await outcome.afterCommit?.();
    return end;
  }
  if (outcome.kind === 'sleep') {
    run.write(i, { status: 'running', phase: 'sleep', wake_at: outcome.until, attempts: start.attempt, started_at: run.row(i).started_at ?? now });
    return sleepUntil(run, i, outcome.until);
  }
  // A result too large or too deep to store fails the step, once (never retried).
  const stored = stepResultText(run.claimed, outcome.result, run.deps.services);
  if (!stored.ok) return fail(run, i, stored.failure);
  run.write(i, {
    status: 'completed', phase: null, result: stored.text, error: null, error_code: null,
    attempts: start.attempt, started_at: run.row(i).started_at ?? now, completed_at: now, duration_ms: durationMs,
  });
  run.results[i] = outcome.result;
  return 'next';
}

async function sleepUntil(run: Run, i: number, until: number): Promise<RunEnd> {
  if (!(await run.commit({ kind: 'sleep', currentStep: i, until }))) return 'abandoned';
  run.deps.onSleep(until);
  return 'asleep';
}

async function fail(run: Run, i: number, failure: StepFailure): Promise<RunEnd | 'next'> {
  const def = run.defs[i]!;
  const now = run.now();
  run.write(i, { status: 'failed', phase: null, wake_at: null, error: failure.message, error_code: failure.code, completed_at: now });
  run.deps.logger.info(
    { executionId: run.claimed.id, workflowId: run.claimed.workflow_id, workspaceId: run.claimed.workspace_id, stepIndex: i, stepType: def.type, errorCode: failure.code },
    'step failed',
  );
  if (def.continue_on_error) {
    run.results[i] = null;
    return 'next';
  }
  const ok = await run.commit({
    kind: 'finish',
    status: 'failed',
    currentStep: i,
    completedAt: now,
    error: { message: `Step ${label(def, i)} (${def.type}) failed: ${failure.message}`, code: failure.code, stepIndex: i },
  });
  return ok ? 'finished' : 'abandoned';
}

