import type { StepDefinition } from './steps/index.js';
import { UNTEMPLATED_FIELDS } from '../steps/step-schema.js';
import type { ExpressionContext, StepOutcome, StepServices, StepType } from './steps/step-type.js';
import { ExpressionError, evaluate } from './expressions.js';
import { StepFailure } from './step-errors.js';
import { renderTemplates } from './template.js';

// The step framework: what every step type gets for free. Templates are rendered
// just before the attempt, the attempt runs under its time budget and the stop
// signal, and any error becomes a StepFailure with a stable code.

/** Thrown when the execution was stopped (or its lease lost): nothing is written. */
export class Abandoned extends Error {}

export function timeoutOf(type: StepType, def: StepDefinition): number {
  return def.timeout_ms ?? type.defaultTimeoutMs;
}

/** JSONata's notion of truth ($boolean): empty strings, arrays and objects are false. */
export function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(truthy);
  if (value !== null && typeof value === 'object') return Object.keys(value).length > 0;
  return Boolean(value);
}

export async function evaluateCondition(def: StepDefinition, context: ExpressionContext, timeoutMs: number): Promise<boolean> {
  if (def.if === undefined) return true;
  try {
    return truthy(await evaluate(def.if, context, timeoutMs));
  } catch (error) {
    throw new StepFailure('expression_error', `if: ${(error as Error).message}`);
  }
}


async function renderFields(type: StepType, def: StepDefinition, context: ExpressionContext, timeoutMs: number) {
  const fields: Record<string, unknown> = {};
  const expressionFields = new Set(type.expressionFields);
  for (const [name, value] of Object.entries(def)) {
    if (UNTEMPLATED_FIELDS.has(name) || expressionFields.has(name)) {
      fields[name] = value;
      continue;
    }
    try {
      fields[name] = await renderTemplates(value, context, timeoutMs);
    } catch (error) {
      throw new StepFailure('expression_error', `${name}: ${(error as Error).message}`);
    }
  }
  return fields;
}

function toFailure(error: unknown): StepFailure {
  if (error instanceof StepFailure) return error;
  if (error instanceof ExpressionError) return new StepFailure('expression_error', error.message);
  return new StepFailure('internal_error', `The step failed unexpectedly: ${(error as Error)?.message ?? String(error)}`);
}

export async function runAttempt(args: {
  type: StepType;
  def: StepDefinition;
  context: ExpressionContext;
  stepKey: string;
  attempt: number;
  wakeAt: number | null;
  signal: AbortSignal;
  now: () => number;
  services: StepServices;
}): Promise<StepOutcome> {
  const timeoutMs = timeoutOf(args.type, args.def);
  const fields = await renderFields(args.type, args.def, args.context, timeoutMs);
  // Stopped (or shutting down) before the attempt began: do not start it at all.
  if (args.signal.aborted) throw new Abandoned('stopped');
  // One controller per attempt, aborted by its timer or by the execution's signal.
  // (Linked by hand: AbortSignal.any allocates weak references per call, which showed
  // up as a tenth of the worker's time, most of it in the garbage collector.)
  const attempt = new AbortController();
  const signal = attempt.signal;
  let timer: NodeJS.Timeout | undefined;
  const onStop = () => attempt.abort();
  args.signal.addEventListener('abort', onStop, { once: true });
  // The race makes a step that ignores its signal end on time all the same; the
  // signal makes a well-behaved step (http) also release what it holds.
  const cut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => attempt.abort(), timeoutMs);
    signal.addEventListener(
      'abort',
      () => {
        if (args.signal.aborted) reject(new Abandoned('stopped'));
        else reject(args.type.timeoutFailure?.(timeoutMs) ?? new StepFailure('timeout', `The step did not finish within ${timeoutMs} ms (timeout_ms).`, true));
      },
      { once: true },
    );
  });
  cut.catch(() => {}); // settled only by an abort; unobserved when the step wins
  try {
    const run = args.type.run(
      { fields, expressionContext: args.context, stepKey: args.stepKey, attempt: args.attempt, wakeAt: args.wakeAt, timeoutMs, now: args.now, services: args.services },
      signal,
    );
    run.catch(() => {}); // when `cut` wins, a later rejection of `run` is expected
    return await Promise.race([run, cut]);
  } catch (error) {
    if (error instanceof Abandoned || args.signal.aborted) throw new Abandoned('stopped');
    throw toFailure(error);
  } finally {
    clearTimeout(timer);
    args.signal.removeEventListener('abort', onStop);
  }
}
