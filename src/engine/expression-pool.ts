import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import type { Deadline } from './deadline.js';

// Evaluators for the expressions that may not run on the main thread
// (expression-class.ts). Each is a small child process evaluating one expression at
// a time with a bounded heap and stack, so whatever the expression does:
// - time: the evaluator is killed at the deadline, even when stuck inside one
//   built-in call (a backtracking regex) where JSONata's own checks never run;
// - memory and stack: an evaluator that exhausts them dies alone; the server and
//   every other evaluation go on, and the step fails with expression_error;
// - stop: an abort signal kills the evaluator at once.
// A killed evaluator is replaced right away, so the pool stays warm.
//
// Processes, not worker threads: a worker's resourceLimits do not survive one large
// allocation — `$pad("x", 400000000)` then JSON.stringify of it hit V8's fatal
// out-of-memory handler inside the worker, which aborts the whole process. A child
// process that aborts is just an exit code. Its environment is empty: an expression
// cannot read anything, but nothing is there to read either.
//
// The queue is fair across workspaces: one queue per workspace, served round-robin,
// so a workspace with many runaway expressions delays another workspace's by at most
// one evaluation per evaluator — and that wait is not the other step's running time
// (its deadline is paused meanwhile).

/** JSONata's guardrails, here and on the main thread. */
export const EXPRESSION_LIMITS = { maxDepth: 200, maxSequence: 1_000_000 } as const;
/** An expression's value is at most this long as JSON (more is an expression_error). */
export const MAX_VALUE_CHARS = 16 * 1024 * 1024;
const EVALUATORS = Math.max(2, Math.min(4, availableParallelism()));
const EVALUATOR_FLAGS = ['--max-old-space-size=256', '--max-semi-space-size=16', '--stack-size=984'];
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

const EVALUATOR_SOURCE = `
const settings = JSON.parse(process.argv[1]);
const jsonata = require(settings.jsonataPath);
const parentPort = { postMessage: (message) => process.send(message), on: (event, listener) => process.on(event, listener) };
process.on('disconnect', () => process.exit(0));
const cache = new Map();
function compiled(source) {
  let entry = cache.get(source);
  if (!entry) {
    const options = { timeout: 1, stack: settings.maxDepth, sequence: settings.maxSequence };
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
    if (json.length > settings.maxValueChars) {
      parentPort.postMessage({ ok: false, error: { message: 'the expression produced a value larger than ' + settings.maxValueChars + ' characters of JSON' } });
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

interface Evaluator {
  child: ChildProcess;
  task: Task | null;
  watchdog: NodeJS.Timeout | undefined;
}

class EvaluationPool {
  readonly #evaluators = new Set<Evaluator>();
  readonly #idle: Evaluator[] = [];
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
      task.deadline.pause(); // waiting for a evaluator is not running time
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
      const evaluator = this.#idle.pop() ?? (this.#evaluators.size < EVALUATORS ? this.#spawn() : undefined);
      if (!evaluator) return;
      const task = this.#next();
      if (task) this.#dispatch(evaluator, task);
      else this.#idle.push(evaluator);
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
      for (const evaluator of this.#evaluators) if (evaluator.task === task) this.#kill(evaluator);
    }
    task.reject(new ExpressionAborted('the evaluation was stopped'));
    this.#pump();
  }

  #spawn(): Evaluator {
    this.#jsonataPath ??= createRequire(import.meta.url).resolve('jsonata');
    const settings = JSON.stringify({ jsonataPath: this.#jsonataPath, ...EXPRESSION_LIMITS, maxValueChars: MAX_VALUE_CHARS });
    const child = spawn(process.execPath, [...EVALUATOR_FLAGS, '-e', EVALUATOR_SOURCE, settings], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'advanced',
      env: {},
    });
    // Neither keeps the server alive.
    child.unref();
    child.channel?.unref();
    const evaluator: Evaluator = { child, task: null, watchdog: undefined };
    this.#evaluators.add(evaluator);
    child.on('message', (message: { ok: boolean; json?: string; error?: ErrorShape }) => {
      if (!this.#evaluators.has(evaluator)) return; // answered just as it was killed
      const task = this.#release(evaluator);
      this.#idle.push(evaluator);
      if (task) this.#settle(task, message);
      this.#pump();
    });
    const lost = (why: string) => {
      // Not replaced here (an evaluator that cannot start would respawn for ever):
      // #pump spawns one when there is work.
      const task = this.#kill(evaluator, false);
      task?.reject(new ExpressionError(why));
      this.#pump();
    };
    child.on('error', (error) => lost(`the expression's evaluator failed: ${error.message}`));
    child.on('exit', (code, signal) => {
      if (!this.#evaluators.has(evaluator)) return;
      // V8 aborts (SIGABRT) when the heap or the stack is exhausted.
      lost(signal === 'SIGABRT' || code === 134 ? 'the expression ran out of memory' : `the expression's evaluator exited (${signal ?? `code ${code}`})`);
    });
    return evaluator;
  }

  #settle(task: Task, message: { ok: boolean; json?: string; error?: ErrorShape }): void {
    if (message.ok) task.resolve(JSON.parse(message.json!) as unknown);
    else if (isJsonataTimeout(message.error)) task.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
    else task.reject(new ExpressionError(describe(message.error)));
  }

  #dispatch(evaluator: Evaluator, task: Task): void {
    const now = Date.now();
    task.deadline.resume(now);
    const remaining = task.deadline.remaining(now);
    if (remaining <= 0) {
      this.#idle.push(evaluator);
      task.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
      return;
    }
    try {
      evaluator.child.send({ source: task.source, context: task.context, timeoutMs: remaining });
    } catch (error) {
      this.#idle.push(evaluator);
      task.reject(new ExpressionError(`the expression's context is not plain data: ${describe(error)}`));
      return;
    }
    evaluator.task = task;
    evaluator.watchdog = setTimeout(() => {
      // Still running past its deadline: stuck inside one call. Only killing stops it.
      this.#kill(evaluator)?.reject(new ExpressionTimeout(timeoutMessage(task.deadline.timeoutMs)));
      this.#pump();
    }, remaining + KILL_GRACE_MS);
  }

  #release(evaluator: Evaluator): Task | null {
    const task = evaluator.task;
    evaluator.task = null;
    clearTimeout(evaluator.watchdog);
    evaluator.watchdog = undefined;
    return task;
  }

  /** Terminates a evaluator (and spawns its replacement); returns the task it was running. */
  #kill(evaluator: Evaluator, replace = true): Task | null {
    const task = this.#release(evaluator);
    if (!this.#evaluators.delete(evaluator)) return task;
    const at = this.#idle.indexOf(evaluator);
    if (at !== -1) this.#idle.splice(at, 1);
    evaluator.child.kill('SIGKILL');
    if (replace) this.#idle.push(this.#spawn());
    return task;
  }
}

export const evaluationPool = new EvaluationPool();
