import type { ExecutionStepRow } from '../db/schema.js';
import { StepFailure } from './step-errors.js';
import { DEFAULT_MAX_RESULT_BYTES, MAX_RESULT_DEPTH, type StorableResult, storableResult } from './step-result.js';

// Two bounds on what a step may store: its own result (SKIPFLOW_MAX_RESULT_BYTES) and
// the total of every stored result of its execution (SKIPFLOW_MAX_EXECUTION_RESULT_BYTES).
// The total is what bounds a GET with include_step_results (every result of the
// execution in one response) and the `steps` context the worker keeps in memory for
// the execution's expressions; the per-step cap alone would still allow 100 × 1 MiB.
// The total is counted per claim: it starts from the results stored when the
// execution was claimed and grows with each result this worker stores.

export const DEFAULT_MAX_EXECUTION_RESULT_BYTES = 16 * 1024 * 1024;

export interface ResultBounds {
  readonly maxResultBytes?: number;
  readonly maxExecutionResultBytes?: number;
}

interface Claim {
  readonly steps: readonly Pick<ExecutionStepRow, 'status' | 'result'>[];
}

const used = new WeakMap<Claim, number>();

function storedBytes(claim: Claim): number {
  let total = used.get(claim);
  if (total === undefined) {
    total = 0;
    for (const step of claim.steps) if (step.status === 'completed' && step.result !== null) total += Buffer.byteLength(step.result, 'utf8');
    used.set(claim, total);
  }
  return total;
}

/** The JSON text to store as a step's result, or the step's failure when it may not be stored. */
export function stepResultText(claim: Claim, value: unknown, bounds: ResultBounds): StorableResult {
  const perStep = bounds.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  const total = bounds.maxExecutionResultBytes ?? DEFAULT_MAX_EXECUTION_RESULT_BYTES;
  const before = storedBytes(claim);
  const left = Math.max(0, total - before);
  const stored = storableResult(value, { maxBytes: Math.min(perStep, left), maxDepth: MAX_RESULT_DEPTH });
  if (stored.ok) {
    used.set(claim, before + stored.bytes);
    return stored;
  }
  if (stored.failure.code === 'result_too_large' && left < perStep) {
    const failure = new StepFailure(
      'result_too_large',
      `The step's result would bring this execution's stored results over ${total} bytes as JSON ` +
        `(${before} bytes are stored already), so it was not stored. Return only what later steps need.`,
    );
    return { ok: false, failure };
  }
  return stored;
}
