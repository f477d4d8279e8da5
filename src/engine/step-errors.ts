// Step failures are data: a stable code, a message that says what to fix, and whether
// trying again can help (a code never changes meaning).

export const STEP_ERROR_CODES = [
  'expression_error',
  'timeout',
  'http_status',
  'network_error',
  'destination_blocked',
  'email_not_configured',
  'smtp_error',
  'worker_lost',
  'stopped',
  /** A `{{ secrets.NAME }}` names no secret of the workspace (or none can be read). */
  'secret_not_found',
  /** An approval step was rejected (POST …/reject). */
  'rejected',
  /** A workflow step's child execution failed / was stopped. */
  'child_failed',
  'child_stopped',
  /** Sub-workflows nested deeper than 10. */
  'depth_exceeded',
  /** A child execution could not start: no credit, the concurrency cap, no such workflow. */
  'insufficient_credits',
  'concurrent_execution_limit',
  'workflow_not_found',
  /** The step's result is over SKIPFLOW_MAX_RESULT_BYTES, or its execution's results over SKIPFLOW_MAX_EXECUTION_RESULT_BYTES. */
  'result_too_large',
  /** The step's result cannot be stored as JSON: nested too deep, a cycle, a BigInt. */
  'result_not_storable',
  /** A bug in SkipFlow or a step type, not in the workflow; logged with its stack. */
  'internal_error',
] as const;

export type StepErrorCode = (typeof STEP_ERROR_CODES)[number];

export class StepFailure extends Error {
  constructor(
    readonly code: StepErrorCode,
    message: string,
    /** Whether another attempt may succeed (network errors, timeouts, 408/429/5xx). */
    readonly retryable = false,
    /** A server's Retry-After, which overrides the computed backoff when longer. */
    readonly retryAfterMs: number | null = null,
  ) {
    // U+0000 cannot be stored in a PostgreSQL text column; a message that carries one
    // (e.g. `$error("a\u0000b")`) must still be recordable.
    super(message.replace(/\u0000/g, '\uFFFD'));
    this.name = 'StepFailure';
  }
}
