import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Deadline } from './deadline.js';

// Evaluation threads for the expressions that may not run on the main thread
// (expression-class.ts). Each thread evaluates one expression at a time, inside
// resource limits (heap, stack), so whatever the expression does:
// - time: the thread is terminated at the deadline, even when stuck inside one
//   built-in call (a backtracking regex) where JSONata's own checks never run;
// - memory and stack: an isolate that exhausts them dies alone; the process and
//   every other evaluation go on, and the step fails with expression_error;
// - stop: an abort signal terminates the thread at once.
// A terminated thread is replaced right away, so the pool stays warm.
//
// The queue is fair across workspaces: one queue per workspace, served round-robin,
// so a workspace with many runaway expressions delays another workspace's by at most
// one evaluation per thread — and that wait is not the other step's running time
// (its deadline is paused meanwhile).

/** JSONata's guardrails, here and on the main thread. */
export const EXPRESSION_LIMITS = { maxDepth: 200, maxSequence: 1_000_000 } as const;
/** An expression's value is at most this long as JSON (more is an expression_error). */
export const MAX_VALUE_CHARS = 16 * 1024 * 1024;
const THREADS = Math.max(2, Math.min(4, availableParallelism()));
const THREAD_LIMITS = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 };
/** Lets JSONata end a step-checked loop itself (cheaper than a respawn) before the kill. */
const KILL_GRACE_MS = 25;

export class ExpressionError extends Error {}
export class ExpressionTimeout extends Error {}
export class ExpressionAborted extends Error {}

export interface ErrorShape {
  message?: string;
  position?: number;
  code?: string;
  value?: unknown;
}

/** JSONata throws plain objects; this makes one sentence of any of them. */
export function describe(error: unknown): string {
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as ErrorShape;
  if (e.code === 'D1011') return `evaluation nested deeper than ${String(e.value)} levels`;
  if (e.code === 'D2015') return `a sequence grew beyond ${EXPRESSION_LIMITS.maxSequence} items`;
  if (typeof e.message === 'string') return typeof e.position === 'number' ? `${e.message} (at position ${e.position})` : e.message;
  return e.code ? `JSONata error ${e.code}` : 'unknown error';
}

export const isJsonataTimeout = (error: unknown) => typeof error === 'object' && error !== null && (error as ErrorShape).code === 'D1012';

export function timeoutMessage(timeoutMs: number): string {
  return `evaluation took longer than ${timeoutMs} ms (timeout_ms)`;
}

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
function shape(e) {
  e = e ?? {};
  return { message: typeof e.message === 'string' ? e.message : undefined, position: e.position, code: e.code, value: typeof e.value === 'number' ? e.value : undefined };
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
    const json = value === undefined || typeof value === 'function' ? 'null' : JSON.stringify(value) ?? 'null';
    if (json.length > workerData.maxValueChars) {
      parentPort.postMessage({ ok: false, error: { message: 'the expression produced a value larger than ' + workerData.maxValueChars + ' characters of JSON' } });
      return;
    }
    parentPort.postMessage({ ok: true, json });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: shape(error) });
  }
});
`;

export interface PoolTask {
  source: string;
  context: unknown;
  deadline: Deadline;
  signal: AbortSignal | undefined;
  /** The fairness key: the workspace whose step asks. */
  workspaceId: string;
}

interface Task extends PoolTask {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** Detaches the task's listeners; called exactly once, when it settles. */
  cleanup(): void;
}

interface Thread {
  worker: Worker;
  task: Task | null;
  watchdog: NodeJS.Timeout | undefined;
}

class EvaluationPool {
  readonly #threads = new Set<Thread>();
  readonly #idle: Thread[] = [];
  /** Per-workspace queues; Map order is the round-robin order. */
  readonly #queues = new Map<string, Task[]>();
  #jsonataPath: string | undefined;

  evaluate(args: PoolTask): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (args.signal?.aborted) return reject(new ExpressionAborted('the evaluation was stopped'));
      const onAbort = () => this.#abort(task);
      const task: Task = {
        ...args,
        resolve: (value) => (task.cleanup(), resolve(value)),
        reject: (error) => (task.cleanup(), reject(error)),
        cleanup: () => args.signal?.removeEventListener('abort', onAbort),
      };
      args.signal?.addEventListener('abort', onAbort, { once: true });
      task.deadline.pause(); // waiting for a thread is not running time
      const queue = this.#queues.get(task.workspaceId);
      if (queue) queue.push(task);
      else this.#queues.set(task.workspaceId, [task]);
      this.#pump();
    });
  }

  /** Next task, round-robin over workspaces. */
  #next(): Task | undefined {
    const first = this.#queues.entries().next();
    if (first.done) return undefined;
    const [workspaceId, queue] = first.value;
    const task = queue.shift();
    this.#queues.delete(workspaceId);
    if (queue.length > 0) this.#queues.set(workspaceId, queue); // to the back of the round
    return task;
  }

  #pump(): void {
    while (this.#queues.size > 0) {
      const thread = this.#idle.pop() ?? (this.#threads.size < THREADS ? this.#spawn() : undefined);
      if (!thread) return;
      const task = this.#next();
      if (task) this.#dispatch(thread, task);
      else this.#idle.push(thread);
    }
  }

  #abort(task: Task): void {
    const queue = this.#queues.get(task.workspaceId);
    const at = queue?.indexOf(task) ?? -1;
    if (queue && at !== -1) {
      queue.splice(at, 1);
      if (queue.length === 0) this.#queues.delete(task.workspaceId);
      task.deadline.resume();
    } else {
      for (const thread of this.#threads) if (thread.task === task) this.#kill(thread);
    }
    task.reject(new ExpressionAborted('the evaluation was stopped'));
    this.#pump();
  }

  #spawn(): Thread {
    this.#jsonataPath ??= createRequire(import.meta.url).resolve('jsonata');
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { jsonataPath: this.#jsonataPath, ...EXPRESSION_LIMITS, maxValueChars: MAX_VALUE_CHARS },
      resourceLimits: THREAD_LIMITS,
      stdout: false,
      stderr: false,
    });
    worker.unref();
    const thread: Thread = { worker, task: null, watchdog: undefined };
    this.#threads.add(thread);
    worker.on('message', (message: { ok: boolean; json?: string; error?: ErrorShape }) => {
      if (!this.#threads.has(thread)) return; // answered just as it was terminated
      const task = this.#release(thread);
      this.#idle.push(thread);
      if (task) this.#settle(task, message);
      this.#pump();
    });
    const lost = (error: unknown) => {
      // Not replaced here (a thread that cannot start would respawn for ever): #pump
      // spawns one when there is work.
      const task = this.#kill(thread, false);
      const outOfMemory = (error as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY';
      task?.reject(new ExpressionError(outOfMemory ? 'the expression ran out of memory' : `the expression's thread failed: ${describe(error)}`));
      this.#pump();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      if (this.#threads.has(thread)) lost(new Error(`it exited with code ${code}`));
    });
    return thread;
  }

  #settle(task: Task, message: { ok: boolean; json?: string; error?: ErrorShape }): void {
    if (message.ok) task.resolve(JSON.parse(message.json!) as unknown);
    else if (isJsonataTimeout(message.error)) task.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
    else task.reject(new ExpressionError(describe(message.error)));
  }

  #dispatch(thread: Thread, task: Task): void {
    const now = Date.now();
    task.deadline.resume(now);
    const remaining = task.deadline.remaining(now);
    if (remaining <= 0) {
      this.#idle.push(thread);
      task.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
      return;
    }
    try {
      thread.worker.postMessage({ source: task.source, context: task.context, timeoutMs: remaining });
    } catch (error) {
      this.#idle.push(thread);
      task.reject(new ExpressionError(`the expression's context is not plain data: ${describe(error)}`));
      return;
    }
    thread.task = task;
    thread.watchdog = setTimeout(() => {
      // Still running past its deadline: stuck inside one call. Only killing stops it.
      this.#kill(thread)?.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
      this.#pump();
    }, remaining + KILL_GRACE_MS);
  }

  #release(thread: Thread): Task | null {
    const task = thread.task;
    thread.task = null;
    clearTimeout(thread.watchdog);
    thread.watchdog = undefined;
    return task;
  }

  /** Terminates a thread (and spawns its replacement); returns the task it was running. */
  #kill(thread: Thread, replace = true): Task | null {
    const task = this.#release(thread);
    if (!this.#threads.delete(thread)) return task;
    const at = this.#idle.indexOf(thread);
    if (at !== -1) this.#idle.splice(at, 1);
    void thread.worker.terminate().catch(() => {});
    if (replace) this.#idle.push(this.#spawn());
    return task;
  }
}

export const evaluationPool = new EvaluationPool();
