import jsonata from 'jsonata';
import type { Deadline } from './deadline.js';
import { isBoundedPerStep } from './expression-class.js';
import {
  EXPRESSION_LIMITS,
  ExpressionAborted,
  ExpressionError,
  ExpressionTimeout,
  MAX_VALUE_CHARS,
  describe,
  evaluationPool,
  isJsonataTimeout,
  timeoutMessage,
} from './expression-pool.js';

export { EXPRESSION_LIMITS, ExpressionAborted, ExpressionError, ExpressionTimeout, timeoutMessage };

// A user's JSONata is untrusted, and JSONata is synchronous at heart: it checks its
// time budget only between evaluation steps, so one step — a backtracking regex, a
// sort of a huge sequence — holds the thread it runs on for as long as it likes.
//
// So there are two places to evaluate:
// - on the main thread, only for expressions whose every step is provably cheap
//   (expression-class.ts) over a context of at most FAST_CONTEXT_CHARS, and only for
//   FAST_SLICE_MS: JSONata's checks then bound it. This is the hot path (`input.n + 1`,
//   `{ "total": steps[1] }`), and costs a few microseconds;
// - everything else, and any fast evaluation still running after its slice (started
//   again, from scratch), in an evaluator process (expression-pool.ts), killed at its
//   deadline or on stop, with bounded memory.
// Either way an evaluation ends by its deadline (give or take one slice), the event
// loop is never held for more than a slice, and no expression can take the process down.

/** How long one evaluation may hold the main thread. */
export const FAST_SLICE_MS = 10;
/** Only this much context (roughly, in characters of JSON) is evaluated on the main thread. */
export const FAST_CONTEXT_CHARS = 64 * 1024;
/** Only expressions this short are evaluated on the main thread (each value an
 * expression builds is bounded by its length times its context). */
const FAST_SOURCE_CHARS = 1000;

export interface EvaluateOptions {
  /** The attempt's one budget; see deadline.ts. */
  deadline: Deadline;
  /** Stop: abandons the evaluation (an evaluator running it is killed). */
  signal?: AbortSignal;
  /** Whose step this is: evaluators are shared fairly across workspaces. */
  workspaceId?: string;
}

interface Compiled {
  expression: jsonata.Expression;
  /** May run on the main thread (expression-class.ts). */
  fast: boolean;
}

const CACHE_SIZE = 2_000;
const cache = new Map<string, Compiled>();

/** Compiles (with a cache); throws ExpressionError with JSONata's message. */
function compile(source: string): Compiled {
  const hit = cache.get(source);
  if (hit) return hit;
  let expression: jsonata.Expression;
  try {
    expression = jsonata(source, { timeout: FAST_SLICE_MS, stack: EXPRESSION_LIMITS.maxDepth, sequence: EXPRESSION_LIMITS.maxSequence });
  } catch (error) {
    throw new ExpressionError(describe(error));
  }
  const entry = { expression, fast: source.length <= FAST_SOURCE_CHARS && isBoundedPerStep(expression.ast()) };
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(source, entry);
  return entry;
}

/** Checks that an expression compiles; returns the error message or null. */
export function compileError(source: string): string | null {
  try {
    compile(source);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Whether an expression would be evaluated on the main thread (given a small context). */
export function runsInThread(source: string): boolean {
  return compile(source).fast;
}

/** Evaluates against a context of plain JSON data; undefined (no match) becomes null.
 * Rejects with ExpressionTimeout at the deadline, ExpressionAborted on stop, and
 * ExpressionError for anything else the expression does wrong. */
export async function evaluate(source: string, context: unknown, options: EvaluateOptions): Promise<unknown> {
  const { deadline, signal } = options;
  if (signal?.aborted) throw new ExpressionAborted('the evaluation was stopped');
  const entry = compile(source);
  if (entry.fast && contextSize(context) <= FAST_CONTEXT_CHARS) {
    if (deadline.remaining() <= 0) throw new ExpressionTimeout(timeoutMessage(deadline.timeoutMs));
    let value: unknown;
    try {
      value = await entry.expression.evaluate(context);
    } catch (error) {
      if (!isJsonataTimeout(error)) throw new ExpressionError(describe(error));
      value = SLICE_SPENT;
    }
    if (value !== SLICE_SPENT) {
      // It held the thread for at most a slice, so it overran the deadline by less.
      if (deadline.remaining() < 0) throw new ExpressionTimeout(timeoutMessage(deadline.timeoutMs));
      return normalise(value);
    }
    if (signal?.aborted) throw new ExpressionAborted('the evaluation was stopped');
  }
  return evaluationPool.evaluate({ source, context, deadline, signal, workspaceId: options.workspaceId ?? '' });
}

const SLICE_SPENT = Symbol('slice spent');

/** JSONata returns sequences (arrays with extra flags) and undefined; results are
 * stored as JSON, so reduce them to plain JSON values (JSON.parse keeps a
 * `"__proto__"` key as an own property). */
function normalise(value: unknown): unknown {
  if (value === undefined || typeof value === 'function') return null;
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ExpressionError('the expression produced a number that is not finite');
  }
  if (typeof value !== 'object' || value === null) return value;
  const json = JSON.stringify(value);
  if (json.length > MAX_VALUE_CHARS) throw new ExpressionError(`the expression produced a value larger than ${MAX_VALUE_CHARS} characters of JSON`);
  return JSON.parse(json) as unknown;
}

// --- How big a context is (cheaply: step results and inputs are measured once) -----

const sizes = new WeakMap<object, number>();

/** Roughly the length of `value` as JSON, counted up to just past `limit`. */
function sizeWithin(value: unknown, limit: number): number {
  let total = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && total <= limit) {
    const item = pending.pop();
    if (typeof item === 'string') total += item.length + 2;
    else if (typeof item !== 'object' || item === null) total += 8;
    else if (Array.isArray(item)) {
      total += 2;
      for (let i = 0; i < item.length && total <= limit; i++, total++) pending.push(item[i]);
    } else {
      total += 2;
      for (const key in item) {
        if (!Object.hasOwn(item, key)) continue;
        total += key.length + 4;
        pending.push((item as Record<string, unknown>)[key]);
        if (total > limit) break;
      }
    }
  }
  return total;
}

function measured(value: unknown): number {
  if (typeof value !== 'object' || value === null) return sizeWithin(value, FAST_CONTEXT_CHARS);
  let size = sizes.get(value);
  if (size === undefined) {
    size = sizeWithin(value, FAST_CONTEXT_CHARS);
    sizes.set(value, size);
  }
  return size;
}

/** The context's size; its lists (`steps`, rebuilt for every step) are measured item by item. */
function contextSize(context: unknown): number {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) return measured(context);
  let total = 0;
  for (const key in context) {
    const value = (context as Record<string, unknown>)[key];
    if (Array.isArray(value)) for (let i = 0; i < value.length && total <= FAST_CONTEXT_CHARS; i++) total += measured(value[i]) + 1;
    else total += measured(value);
    if (total > FAST_CONTEXT_CHARS) break;
  }
  return total;
}
