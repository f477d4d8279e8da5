import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import jsonata from 'jsonata';

// JSONata is synchronous at heart and a user's expression is untrusted: every
// evaluation runs with JSONata's own guardrails — a time budget, a stack depth and a
// cap on sequence length (so `[1..100000000]` fails fast instead of allocating).
//
// JSONata's time budget only turns a runaway expression into an error once the budget
// is spent; until then it holds the thread it runs on. So an evaluation first runs on
// the main thread for a short slice (FAST_SLICE_MS: nearly every real expression ends
// well within it, at no extra cost); one that is still running then is evaluated
// again, from scratch, on a pool of worker threads with the rest of its budget. The
// event loop — the API, heartbeats, every other execution — is never held for more
// than the slice, whatever `timeout_ms` a step asks for, and an evaluation on a
// worker thread can be abandoned (stop) by terminating that thread.

export const EXPRESSION_LIMITS = { maxDepth: 200, maxSequence: 1_000_000 } as const;

/** How long one evaluation may hold the main thread before it moves to a worker thread. */
export const FAST_SLICE_MS = 20;
/** A worker thread that has not answered this long after the budget is terminated
 * (e.g. stuck inside one built-in call, where JSONata's own checks cannot run). */
const HARD_GRACE_MS = 250;
const MAX_THREADS = Math.max(2, Math.min(8, availableParallelism()));
const THREAD_HEAP_MB = 512;

export class ExpressionError extends Error {}

export function timeoutMessage(timeoutMs: number): string {
  return `evaluation took longer than ${timeoutMs} ms (timeout_ms)`;
}

interface CompiledEntry {
  expression: jsonata.Expression;
}

const CACHE_SIZE = 2_000;
const cache = new Map<string, CompiledEntry>();

interface ErrorShape {
  message?: string;
  position?: number;
  code?: string;
  value?: unknown;
}

function describe(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const e = error as { message: string; position?: number; code?: string };
    const where = typeof e.position === 'number' ? ` (at position ${e.position})` : '';
    return `${e.message}${where}`;
  }
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const e = error as { code: string; value?: unknown };
    if (e.code === 'D1012') return `evaluation took longer than ${String(e.value)} ms`;
    if (e.code === 'D1011') return `evaluation nested deeper than ${String(e.value)} levels`;
    if (e.code === 'D2015') return `a sequence grew beyond ${String(e.value)} items`;
    return `JSONata error ${e.code}`;
  }
  return String(error);
}

function isTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as ErrorShape).code === 'D1012';
}

/** Compiles (with a cache); throws ExpressionError with JSONata's message. */
export function compile(source: string, timeoutMs: number): jsonata.Expression {
  const cacheKey = `${timeoutMs}\u0000${source}`;
  const hit = cache.get(cacheKey);
  if (hit) return hit.expression;
  let expression: jsonata.Expression;
  try {
    expression = jsonata(source, {
      timeout: timeoutMs,
      stack: EXPRESSION_LIMITS.maxDepth,
      sequence: EXPRESSION_LIMITS.maxSequence,
    });
  } catch (error) {
    throw new ExpressionError(describe(error));
  }
  if (cache.size >= CACHE_SIZE) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(cacheKey, { expression });
  return expression;
}

/** Checks that an expression compiles; returns the error message or null. */
export function compileError(source: string): string | null {
  try {
    compile(source, FAST_SLICE_MS);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Evaluates against a context object (plain JSON data); undefined (no match) becomes
 * null. Bounded by `timeoutMs` in all; `signal` abandons it (rejects at once). */
export async function evaluate(source: string, context: unknown, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const started = Date.now();
  const slice = Math.min(timeoutMs, FAST_SLICE_MS);
  const expression = compile(source, slice);
  try {
    const value = await expression.evaluate(context);
    return normalise(value);
  } catch (error) {
    if (error instanceof ExpressionError) throw error;
    if (!isTimeout(error)) throw new ExpressionError(describe(error));
    if (slice >= timeoutMs) throw new ExpressionError(timeoutMessage(timeoutMs));
  }
  return pool.evaluate({ source, context, deadline: started + timeoutMs, timeoutMs, signal });
}

/** JSONata returns sequences (arrays with extra flags) and undefined; results are
 * stored as JSON, so reduce them to plain JSON values. */
function normalise(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'function') return null;
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ExpressionError('the expression produced a number that is not finite');
  }
  return JSON.parse(JSON.stringify(value)) as unknown;
}

// ---------------------------------------------------------------------------------
// The worker-thread pool. Each thread evaluates one expression at a time; a thread
// is terminated (and replaced on demand) when its evaluation is abandoned or overruns.

const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const jsonata = require(workerData.jsonataPath);
const cache = new Map();
function compiled(source) {
  let entry = cache.get(source);
  if (!entry) {
    const options = { timeout: 1, stack: workerData.maxDepth, sequence: workerData.maxSequence };
    entry = { options, expression: jsonata(source, options) };
    if (cache.size >= 500) cache.delete(cache.keys().next().value);
    cache.set(source, entry);
  }
  return entry;
}
parentPort.on('message', async ({ source, context, timeoutMs }) => {
  try {
    const entry = compiled(source);
    entry.options.timeout = timeoutMs; // read by JSONata's guardrails; one evaluation at a time
    const value = await entry.expression.evaluate(context);
    if (typeof value === 'number' && !Number.isFinite(value)) {
      parentPort.postMessage({ ok: false, error: { message: 'the expression produced a number that is not finite' } });
      return;
    }
    const json = value === undefined || typeof value === 'function' ? 'null' : JSON.stringify(value);
    parentPort.postMessage({ ok: true, json: json === undefined ? 'null' : json });
  } catch (error) {
    const e = error ?? {};
    parentPort.postMessage({ ok: false, error: { message: e.message, position: e.position, code: e.code, value: e.value } });
  }
});
`;

interface Task {
  source: string;
  context: unknown;
  deadline: number;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Thread {
  worker: Worker;
  task: Task | null;
  watchdog: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
}

class EvaluatorPool {
  readonly #idle: Thread[] = [];
  readonly #threads = new Set<Thread>();
  readonly #queue: Task[] = [];
  #jsonataPath: string | undefined;

  evaluate(args: Omit<Task, 'resolve' | 'reject'>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (args.signal?.aborted) return reject(new ExpressionError('the evaluation was abandoned'));
      const task: Task = { ...args, resolve, reject };
      if (task.signal) {
        const signal = task.signal;
        const onQueuedAbort = () => {
          const at = this.#queue.indexOf(task);
          if (at !== -1) {
            this.#queue.splice(at, 1);
            reject(new ExpressionError('the evaluation was abandoned'));
          }
        };
        signal.addEventListener('abort', onQueuedAbort, { once: true });
        const settle = () => signal.removeEventListener('abort', onQueuedAbort);
        task.resolve = (v) => (settle(), resolve(v));
        task.reject = (e) => (settle(), reject(e));
      }
      this.#queue.push(task);
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const thread = this.#idle.pop() ?? (this.#threads.size < MAX_THREADS ? this.#spawn() : undefined);
      if (!thread) return;
      this.#dispatch(thread, this.#queue.shift()!);
    }
  }

  #spawn(): Thread {
    this.#jsonataPath ??= createRequire(import.meta.url).resolve('jsonata');
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { jsonataPath: this.#jsonataPath, maxDepth: EXPRESSION_LIMITS.maxDepth, maxSequence: EXPRESSION_LIMITS.maxSequence },
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
      stdout: false,
      stderr: false,
    });
    worker.unref();
    const thread: Thread = { worker, task: null, watchdog: undefined, onAbort: undefined };
    this.#threads.add(thread);
    worker.on('message', (message: { ok: boolean; json?: string; error?: ErrorShape }) => {
      const task = this.#release(thread);
      if (!task) return;
      if (message.ok) task.resolve(JSON.parse(message.json!) as unknown);
      else if (isTimeout(message.error)) task.reject(new ExpressionError(timeoutMessage(task.timeoutMs)));
      else task.reject(new ExpressionError(describe(message.error)));
      this.#idle.push(thread);
      this.#pump();
    });
    const lost = (error: unknown) => {
      const task = this.#kill(thread);
      const why = (error as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'ran out of memory' : `failed: ${describe(error)}`;
      task?.reject(new ExpressionError(`the expression ${why}`));
      this.#pump();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      if (this.#threads.has(thread)) lost(new Error(`evaluation thread exited with code ${code}`));
    });
    return thread;
  }

  #dispatch(thread: Thread, task: Task): void {
    const remaining = task.deadline - Date.now();
    if (remaining <= 0) {
      this.#idle.push(thread);
      task.reject(new ExpressionError(timeoutMessage(task.timeoutMs)));
      return;
    }
    thread.task = task;
    thread.watchdog = setTimeout(() => {
      // JSONata's own budget did not end it (stuck in one built-in call): kill the thread.
      this.#kill(thread)?.reject(new ExpressionError(timeoutMessage(task.timeoutMs)));
      this.#pump();
    }, remaining + HARD_GRACE_MS);
    if (task.signal) {
      thread.onAbort = () => {
        this.#kill(thread)?.reject(new ExpressionError('the evaluation was abandoned'));
        this.#pump();
      };
      task.signal.addEventListener('abort', thread.onAbort, { once: true });
    }
    try {
      thread.worker.postMessage({ source: task.source, context: task.context, timeoutMs: remaining });
    } catch (error) {
      // The context could not be copied to the thread (not plain data).
      this.#release(thread);
      this.#idle.push(thread);
      task.reject(new ExpressionError(`the expression's context could not be evaluated: ${describe(error)}`));
    }
  }

  /** Detaches the thread's task (if any) and returns it. */
  #release(thread: Thread): Task | null {
    const task = thread.task;
    thread.task = null;
    clearTimeout(thread.watchdog);
    thread.watchdog = undefined;
    if (task?.signal && thread.onAbort) task.signal.removeEventListener('abort', thread.onAbort);
    thread.onAbort = undefined;
    return task;
  }

  /** Removes and terminates a thread; returns the task it was running. */
  #kill(thread: Thread): Task | null {
    const task = this.#release(thread);
    if (!this.#threads.delete(thread)) return task;
    const at = this.#idle.indexOf(thread);
    if (at !== -1) this.#idle.splice(at, 1);
    void thread.worker.terminate().catch(() => {});
    return task;
  }
}

const pool = new EvaluatorPool();
