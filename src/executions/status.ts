import type { ExecutionStatus, StepPhase, StepStatus } from '../db/schema.js';

// The two state machines, as data. executions/transitions.ts is the one module that
// changes an execution's status, and it checks every change against this table; in
// SQL each change is also guarded by its from-state, so a transition happens at most
// once even when a stop races a worker.

export type { ExecutionStatus, StepPhase, StepStatus };

export const EXECUTION_STATUSES = ['running', 'success', 'failed', 'stopped'] as const satisfies readonly ExecutionStatus[];
export const STEP_STATUSES = ['pending', 'running', 'completed', 'failed', 'skipped', 'stopped'] as const satisfies readonly StepStatus[];

export const EXECUTION_TRANSITIONS: Record<ExecutionStatus, readonly ExecutionStatus[]> = {
  running: ['success', 'failed', 'stopped'],
  success: [],
  failed: [],
  stopped: [],
};

// `running` → `running` is a step going to sleep (delay, retry backoff) or waking up.
// A stop leaves pending steps pending: only the step in flight becomes `stopped`.
export const STEP_TRANSITIONS: Record<StepStatus, readonly StepStatus[]> = {
  pending: ['running', 'skipped', 'completed', 'failed'],
  running: ['running', 'completed', 'failed', 'stopped'],
  completed: [],
  failed: [],
  skipped: [],
  stopped: [],
};

export type TerminalStatus = Exclude<ExecutionStatus, 'running'>;

export function isTerminal(status: ExecutionStatus): status is TerminalStatus {
  switch (status) {
    case 'running':
      return false;
    case 'success':
    case 'failed':
    case 'stopped':
      return true;
    default: {
      const never: never = status;
      throw new Error(`unknown execution status ${String(never)}`);
    }
  }
}

/** Throws when `from → to` is not in the table: a bug in the engine, never user input. */
export function assertTransition(from: ExecutionStatus, to: ExecutionStatus): void {
  if (!EXECUTION_TRANSITIONS[from].includes(to)) throw new Error(`illegal execution transition ${from} → ${to}`);
}

export function assertStepTransition(from: StepStatus, to: StepStatus): void {
  if (!STEP_TRANSITIONS[from].includes(to)) throw new Error(`illegal step transition ${from} → ${to}`);
}
