// The two state machines of docs/api.md#execution, as data. Every write that changes a status is
// guarded in SQL by the "from" state, so a transition happens at most once even when
// a stop races a worker: e.g. `UPDATE … SET status='stopped' WHERE status='running'`.

export const EXECUTION_STATUSES = ['running', 'success', 'failed', 'stopped'] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export const EXECUTION_TRANSITIONS: Record<ExecutionStatus, readonly ExecutionStatus[]> = {
  running: ['success', 'failed', 'stopped'],
  success: [],
  failed: [],
  stopped: [],
};

export const STEP_STATUSES = ['pending', 'running', 'completed', 'failed', 'skipped', 'stopped'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

// `running` → `running` is a step going to sleep (delay, retry backoff) or waking up.
// A stop leaves pending steps pending: only the step in flight becomes `stopped`.
export const STEP_TRANSITIONS: Record<StepStatus, readonly StepStatus[]> = {
  pending: ['running', 'skipped'],
  running: ['running', 'completed', 'failed', 'stopped'],
  completed: [],
  failed: [],
  skipped: [],
  stopped: [],
};

/** What a running step is doing (the `phase` column). */
export type StepPhase = 'attempt' | 'sleep' | 'backoff';

export function isTerminal(status: ExecutionStatus): boolean {
  return EXECUTION_TRANSITIONS[status].length === 0;
}
