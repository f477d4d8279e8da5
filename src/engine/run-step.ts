import { Deadline } from './deadline.js';
import { type EvaluateOptions, ExpressionAborted, ExpressionError, ExpressionTimeout, evaluate } from './expressions.js';
import { StepFailure } from './step-errors.js';
import type { StepDefinition } from './steps/index.js';
import { UNTEMPLATED_FIELDS } from '../steps/step-schema.js';
import type { ExpressionContext, StepOutcome, StepServices, StepType } from './steps/step-type.js';
import { renderTemplates, setOwn } from './template.js';
import { stepSecretNames } from '../secrets/references.js';
import { redactText, redactValue } from '../secrets/redact.js';

// The step framework: what every step type gets for free. One deadline per attempt
// (timeout_ms) covers the step's `if` (on its first attempt), its templates and its
// work; the stop signal reaches all three; any error becomes a StepFailure with a
// stable code.

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

/** The deadline of an attempt that starts now. */
export function attemptDeadline(type: StepType, def: StepDefinition): Deadline {
  return new Deadline(timeoutOf(type, def));
}

/** A failed evaluation of `field` as the step's failure (or Abandoned, when stopped). */
function evaluationFailure(field: string, error: unknown, signal: AbortSignal | undefined): Error {
  if (error instanceof Abandoned || error instanceof ExpressionAborted || signal?.aborted) return new Abandoned('stopped');
  if (error instanceof StepFailure) return error;
  if (error instanceof ExpressionTimeout) return new StepFailure('timeout', `${field}: ${error.message}`, true);
  return new StepFailure('expression_error', `${field}: ${(error as Error).message}`);
}

/** Evaluates the step's `if` within `options.deadline` (the first attempt's). Throws a
 * StepFailure (expression_error, timeout), or Abandoned when `options.signal` aborts.
 * The deadline is left paused: the checkpoint committed between the `if` and the
 * attempt is not the step's time (under load it can take longer than a short
 * timeout_ms); runAttempt resumes it. */
export async function evaluateCondition(def: StepDefinition, context: ExpressionContext, options: EvaluateOptions): Promise<boolean> {
  try {
    if (def.if === undefined) return true;
    return truthy(await evaluate(def.if, context, options));
  } catch (error) {
    throw evaluationFailure('if', error, options.signal);
  } finally {
    options.deadline.pause();
  }
}


async function renderFields(type: StepType, def: StepDefinition, context: ExpressionContext, options: EvaluateOptions) {
  const fields: Record<string, unknown> = {};
  const expressionFields = new Set(type.expressionFields);
  for (const [name, value] of Object.entries(def)) {
    if (UNTEMPLATED_FIELDS.has(name) || expressionFields.has(name)) {
      setOwn(fields, name, value);
      continue;
    }
    try {
      setOwn(fields, name, await renderTemplates(value, context, options));
    } catch (error) {
      throw evaluationFailure(name, error, options.signal);
    }
  }
  return fields;
}

function toFailure(error: unknown): StepFailure {
  if (error instanceof StepFailure) return error;
  if (error instanceof ExpressionTimeout) return new StepFailure('timeout', error.message, true);
  if (error instanceof ExpressionError) return new StepFailure('expression_error', error.message);
  return new StepFailure('internal_error', `The step failed unexpectedly: ${(error as Error)?.message ?? String(error)}`);
}

/** While an evaluation waits for an evaluator the deadline is paused: look again this often. */
const PAUSED_RECHECK_MS = 50;

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
  /** The execution's workspace: evaluators are shared fairly across workspaces. */
  workspaceId?: string;
  /** The deadline the step's `if` started, paused (first attempt); otherwise one starts now. */
  deadline?: Deadline;
  /** The stored detail of a waiting step that is woken (JSON text), and where the step is. */
  detail?: string | null;
  executionId?: string;
  stepIndex?: number;
  itemIndex?: number;
}): Promise<StepOutcome> {
  const timeoutMs = timeoutOf(args.type, args.def);
  const deadline = args.deadline ?? new Deadline(timeoutMs);
  deadline.resume(); // paused by evaluateCondition, if it ran
  const workspaceId = args.workspaceId ?? '';
  // Stopped (or shutting down) before the attempt began: do not start it at all.
  if (args.signal.aborted) throw new Abandoned('stopped');
  // One controller per attempt, aborted by its deadline or by the execution's signal.
  // (Linked by hand: AbortSignal.any allocates weak references per call, which showed
  // up as a tenth of the worker's time, most of it in the garbage collector.)
  const attempt = new AbortController();
  const signal = attempt.signal;
  let timer: NodeJS.Timeout | undefined;
  const onStop = () => attempt.abort();
  args.signal.addEventListener('abort', onStop, { once: true });
  const check = () => {
    const left = deadline.remaining();
    if (left > 0) timer = setTimeout(check, deadline.paused ? Math.max(left, PAUSED_RECHECK_MS) : left);
    else attempt.abort();
  };
  // The race makes a step that ignores its signal end on time all the same; the
  // signal makes a well-behaved step (http) also release what it holds, and ends the
  // evaluation of its templates.
  const cut = new Promise<never>((_, reject) => {
    signal.addEventListener(
      'abort',
      () => {
        if (args.signal.aborted) reject(new Abandoned('stopped'));
        else reject(new StepFailure('timeout', `The step did not finish within ${timeoutMs} ms (timeout_ms).`, true));
      },
      { once: true },
    );
  });
  cut.catch(() => {}); // settled only by an abort; unobserved when the step wins
  check();
  // The secrets this attempt used: their values are redacted from its result and error.
  let used: Map<string, string> | null = null;
  try {
    const run = (async () => {
      const context = await withSecrets(args, workspaceId, (values) => (used = values));
      const fields = await renderFields(args.type, args.def, context, { deadline, signal, workspaceId });
      if (signal.aborted) throw new Abandoned('stopped');
      return args.type.run(
        {
          fields,
          expressionContext: args.context,
          stepKey: args.stepKey,
          attempt: args.attempt,
          wakeAt: args.wakeAt,
          detail: args.detail ? (JSON.parse(args.detail) as unknown) : null,
          executionId: args.executionId ?? args.stepKey.split(':')[0]!,
          stepIndex: args.stepIndex ?? Number(args.stepKey.split(':')[1]),
          itemIndex: args.itemIndex,
          timeoutMs,
          deadline,
          workspaceId,
          now: args.now,
          services: args.services,
        },
        signal,
      );
    })();
    run.catch(() => {}); // when `cut` wins, a later rejection of `run` is expected
    const outcome = await Promise.race([run, cut]);
    return used !== null && outcome.kind === 'completed' ? { ...outcome, result: redactValue(outcome.result, (used as Map<string, string>).values()) } : outcome;
  } catch (error) {
    if (args.signal.aborted) throw new Abandoned('stopped');
    // Our own deadline aborted it (the evaluation of a template then ends "stopped").
    if (signal.aborted) throw new StepFailure('timeout', `The step did not finish within ${timeoutMs} ms (timeout_ms).`, true);
    if (error instanceof Abandoned) throw error;
    throw redactFailure(toFailure(error), used);
  } finally {
    clearTimeout(timer);
    args.signal.removeEventListener('abort', onStop);
  }
}

/** The context the step's templates render in: with `secrets` (only the ones the step
 * names, read just now) for the types that may use them. */
async function withSecrets(
  args: { type: StepType; def: StepDefinition; context: ExpressionContext; services: StepServices },
  workspaceId: string,
  onUsed: (values: Map<string, string>) => void,
): Promise<ExpressionContext> {
  if (!args.type.usesSecrets) return args.context;
  const names = stepSecretNames(args.def as Record<string, unknown>, UNTEMPLATED_FIELDS);
  if (names.length === 0) return args.context;
  if (!args.services.secrets) throw new StepFailure('secret_not_found', `secrets.${names[0]}: secrets are not available on this server.`);
  const values = await args.services.secrets.resolve(workspaceId, names);
  onUsed(values);
  return { ...args.context, secrets: Object.fromEntries(values) } as ExpressionContext;
}

function redactFailure(failure: StepFailure, used: Map<string, string> | null): StepFailure {
  if (used === null) return failure;
  const message = redactText(failure.message, used.values());
  if (message === failure.message) return failure;
  const redacted = new StepFailure(failure.code, message, failure.retryable, failure.retryAfterMs);
  return redacted;
}
