import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import { backoffDelay, retryPolicy } from '../lib/backoff.js';
import { MAX_FOR_EACH_ITEMS } from '../steps/step-schema.js';
import type { Deadline } from './deadline.js';
import { evaluate } from './expressions.js';
import { Abandoned, attemptDeadline, runAttempt } from './run-step.js';
import { StepFailure } from './step-errors.js';
import { type StepDefinition, stepType } from './steps/index.js';
import type { ExpressionContext, StepOutcome, StepServices } from './steps/step-type.js';

// `for_each`: one step run once per item of a JSONata array, `for_each_concurrency`
// at a time, each item with the step's own retry policy. Each item is checkpointed as
// it completes — a row of execution_step_items, written only while this worker holds
// the lease — so after a crash the step runs only the items that had not completed.
// The first item that fails (after its retries) fails the step and aborts the items
// in flight. An item that waits (a workflow step's child) is recorded `waiting`; once
// no item is left to run, the step waits as a whole, and each child's end wakes it.
// The step's `progress` ({ total, completed }) is kept in its row's detail.

export interface ForEachRun {
  db: Db;
  executionId: string;
  leaseToken: number;
  workspaceId: string;
  stepIndex: number;
  def: StepDefinition & { for_each?: string; for_each_concurrency?: number };
  context: ExpressionContext;
  services: StepServices;
  now(): number;
  /** The first attempt's deadline, from the step's `if` (bounds the for_each expression). */
  deadline?: Deadline;
}

interface ItemRow {
  item_index: number;
  status: 'completed' | 'waiting';
  result: string | null;
  detail: string | null;
}

const fenced = (db: Db, id: string, token: number) => sql`exists (select 1 from executions where id = ${id} and lease_token = ${token} and status = 'running')`;

async function saveItem(run: ForEachRun, item: number, status: ItemRow['status'], result: unknown, detail: unknown, progress: { total: number; completed: number }): Promise<void> {
  const ok = await run.db.db.transaction().execute(async (tx) => {
    const inserted = await sql<{ item_index: number }>`
      insert into execution_step_items (execution_id, idx, item_index, status, result, detail)
      select ${run.executionId}, ${run.stepIndex}, ${item}, ${status}, ${result === undefined ? null : JSON.stringify(result)}, ${detail === undefined ? null : JSON.stringify(detail)}
      where ${fenced(run.db, run.executionId, run.leaseToken)}
      on conflict (execution_id, idx, item_index) do update set status = excluded.status, result = excluded.result, detail = excluded.detail
      returning item_index`.execute(tx);
    if (inserted.rows.length === 0) return false;
    await tx.updateTable('execution_steps').set({ detail: JSON.stringify({ progress }) }).where('execution_id', '=', run.executionId).where('idx', '=', run.stepIndex).where('status', '=', 'running').execute();
    return true;
  });
  if (!ok) throw new Abandoned('lease lost');
}

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Abandoned('stopped'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Abandoned('stopped'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function itemsOf(run: ForEachRun, signal: AbortSignal): Promise<unknown[]> {
  const deadline = run.deadline ?? attemptDeadline(stepType(run.def.type)!, run.def);
  deadline.resume();
  let value: unknown;
  try {
    value = await evaluate(run.def.for_each!, run.context, { deadline, signal, workspaceId: run.workspaceId });
  } catch (error) {
    if (signal.aborted) throw new Abandoned('stopped');
    throw new StepFailure('expression_error', `for_each: ${(error as Error).message}`);
  }
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new StepFailure('expression_error', `for_each: must give an array, got ${JSON.stringify(value)?.slice(0, 100)}`);
  if (value.length > MAX_FOR_EACH_ITEMS) throw new StepFailure('expression_error', `for_each: gave ${value.length} items; at most ${MAX_FOR_EACH_ITEMS} are allowed`);
  return value;
}

/** Runs the step's items; its outcome is the step's (never retried as a whole: items retry). */
export async function runForEach(run: ForEachRun, signal: AbortSignal, wakeAt: number | null): Promise<StepOutcome | StepFailure> {
  let items: unknown[];
  try {
    items = await itemsOf(run, signal);
  } catch (error) {
    if (error instanceof StepFailure) return error;
    throw error;
  }
  const total = items.length;
  const rows = await run.db.db.selectFrom('execution_step_items').select(['item_index', 'status', 'result', 'detail']).where('execution_id', '=', run.executionId).where('idx', '=', run.stepIndex).execute();
  const done = new Map<number, unknown>();
  const waitingDetail = new Map<number, string | null>();
  for (const row of rows as ItemRow[]) {
    if (row.status === 'completed') done.set(row.item_index, row.result === null ? null : JSON.parse(row.result));
    else waitingDetail.set(row.item_index, row.detail);
  }
  await run.db.db.updateTable('execution_steps').set({ detail: JSON.stringify({ progress: { total, completed: done.size } }) }).where('execution_id', '=', run.executionId).where('idx', '=', run.stepIndex).where('status', '=', 'running').execute();
  const type = stepType(run.def.type)!;
  const policy = retryPolicy(run.def.retry);
  const concurrency = run.def.for_each_concurrency ?? 1;
  const items$ = new AbortController();
  const onStop = () => items$.abort();
  signal.addEventListener('abort', onStop, { once: true });
  let failure: StepFailure | null = null;
  const waits: Array<{ item: number; children: string[]; afterCommit?: () => Promise<void> }> = [];
  const todo = items.map((_, i) => i).filter((i) => !done.has(i));
  let next = 0;

  const runItem = async (item: number): Promise<void> => {
    const context = { ...run.context, item: items[item], item_index: item } as ExpressionContext;
    const stored = waitingDetail.get(item);
    for (let attempt = 1; ; attempt++) {
      let outcome: StepOutcome;
      try {
        outcome = await runAttempt({
          type, def: run.def, context, stepKey: `${run.executionId}:${run.stepIndex}:${item}`, attempt,
          wakeAt: stored !== undefined ? (wakeAt ?? run.now()) : null, signal: items$.signal, now: run.now, services: run.services,
          workspaceId: run.workspaceId, detail: stored ?? null, executionId: run.executionId, stepIndex: run.stepIndex, itemIndex: item,
        });
      } catch (error) {
        if (!(error instanceof StepFailure)) throw error;
        if (error.retryable && attempt < policy.maxAttempts && !items$.signal.aborted) {
          await abortable(backoffDelay(policy, attempt, error.retryAfterMs), items$.signal);
          continue;
        }
        throw new StepFailure(error.code, `item ${item}: ${error.message}`);
      }
      if (outcome.kind === 'completed') {
        done.set(item, outcome.result);
        await saveItem(run, item, 'completed', outcome.result, undefined, { total, completed: done.size });
      } else if (outcome.kind === 'wait') {
        const detail = outcome.detail ?? (stored ? JSON.parse(stored) : null);
        const children = (detail as { children?: string[] } | null)?.children ?? [];
        if (outcome.detail !== undefined || stored === undefined) await saveItem(run, item, 'waiting', undefined, detail, { total, completed: done.size });
        waits.push({ item, children, afterCommit: outcome.afterCommit });
      } else {
        throw new StepFailure('internal_error', `item ${item}: a ${run.def.type} step cannot sleep inside for_each`);
      }
      return;
    }
  };

  const lane = async () => {
    while (failure === null && next < todo.length) {
      const item = todo[next++]!;
      try {
        await runItem(item);
      } catch (error) {
        if (error instanceof StepFailure) {
          if (failure === null) failure = error;
          items$.abort(); // the first failure aborts the items in flight
          return;
        }
        if (error instanceof Abandoned && failure !== null) return; // aborted by that failure
        throw error;
      }
    }
  };
  try {
    const lanes = await Promise.allSettled(Array.from({ length: Math.min(concurrency, Math.max(1, todo.length)) }, lane));
    if (signal.aborted) throw new Abandoned('stopped');
    if (failure !== null) return failure;
    const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (broken) throw broken.reason;
  } finally {
    signal.removeEventListener('abort', onStop);
  }
  if (waits.length > 0) {
    const children = waits.flatMap((w) => w.children);
    return {
      kind: 'wait',
      until: run.now() + 100 * 365 * 24 * 3600 * 1000,
      detail: { type: 'workflow', children, progress: { total, completed: done.size } },
      afterCommit: async () => {
        for (const w of waits) await w.afterCommit?.();
      },
    };
  }
  return { kind: 'completed', result: items.map((_, i) => done.get(i) ?? null) };
}
