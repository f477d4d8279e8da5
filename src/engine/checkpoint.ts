import { type Updateable, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/open.js';
import type { ExecutionStepTable, ExecutionTable, Executor } from '../db/schema.js';
import { param, runPrepared } from '../db/prepared.js';

// Group commit of checkpoints. Each running execution submits its checkpoint (the
// step rows it changed and its own new position or final status) and waits; every
// checkpoint submitted while the previous transaction was committing goes into the
// next one. So a step's result is committed before that execution's next step
// starts, while the database sees one transaction per batch instead of one per step.
//
// Every checkpoint is fenced: the execution row is updated only WHERE its lease token
// is the one this worker claimed with and it is still `running`. Zero rows means the
// worker lost the lease or the execution was stopped — then none of its step writes
// are applied, and the runner gives up quietly.

export interface StepWrite {
  idx: number;
  set: Updateable<ExecutionStepTable>;
}

export interface Checkpoint {
  executionId: string;
  workspaceId: string;
  leaseToken: number;
  steps: StepWrite[];
  execution: Updateable<ExecutionTable>;
  /** The execution leaves `running` with this checkpoint (frees a concurrency slot). */
  terminal: boolean;
}

interface Pending {
  checkpoint: Checkpoint;
  resolve(applied: boolean): void;
  reject(error: unknown): void;
}

const RETRY_DELAY_MS = 100;

export class Checkpointer {
  #queue: Pending[] = [];
  #flushing = false;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /** Resolves true once committed, false when fenced out. */
  submit(checkpoint: Checkpoint): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ checkpoint, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      try {
        const applied = await this.#commitWithRetry(batch.map((p) => p.checkpoint));
        batch.forEach((p, i) => p.resolve(applied[i]!));
      } catch (error) {
        this.logger.error({ err: error, checkpoints: batch.length }, 'checkpoint commit failed');
        for (const p of batch) p.reject(error);
      }
    }
    this.#flushing = false;
  }

  async #commitWithRetry(checkpoints: Checkpoint[]): Promise<boolean[]> {
    try {
      return await this.#commit(checkpoints);
    } catch {
      // One retry covers a dropped connection or a transient lock timeout; a second
      // failure is reported and the executions are left to be retaken after their lease.
      await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      return this.#commit(checkpoints);
    }
  }

  #commit(checkpoints: Checkpoint[]): Promise<boolean[]> {
    return this.db.db.transaction().execute(async (trx) => {
      // Rows are locked in id order (executions, then workspaces) so that two
      // PostgreSQL workers committing overlapping batches cannot deadlock.
      const order = checkpoints.map((_, i) => i).sort((a, b) => (checkpoints[a]!.executionId < checkpoints[b]!.executionId ? -1 : 1));
      const applied: boolean[] = new Array<boolean>(checkpoints.length).fill(false);
      const freed = new Map<string, number>();
      for (const i of order) {
        const cp = checkpoints[i]!;
        const ok = await applyCheckpoint(this.db, trx, cp);
        applied[i] = ok;
        if (ok && cp.terminal) freed.set(cp.workspaceId, (freed.get(cp.workspaceId) ?? 0) + 1);
      }
      for (const [workspaceId, count] of [...freed].sort(([a], [b]) => (a < b ? -1 : 1))) {
        await trx
          .updateTable('workspaces')
          .set({ running_executions: sql`running_executions - ${count}` })
          .where('id', '=', workspaceId)
          .execute();
      }
      return applied;
    });
  }
}

function placeholders(keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, param(k)]));
}

async function applyCheckpoint(handle: Db, trx: Executor, cp: Checkpoint): Promise<boolean> {
  const execKeys = Object.keys(cp.execution).sort();
  const result = await runPrepared(
    trx,
    handle.kind,
    `checkpoint-execution:${execKeys.join(',')}`,
    () =>
      handle.db
        .updateTable('executions')
        .set(placeholders(execKeys))
        .where('id', '=', param<string>('$id'))
        .where('lease_token', '=', param<number>('$token'))
        .where('status', '=', 'running'),
    { ...cp.execution, $id: cp.executionId, $token: cp.leaseToken },
  );
  if (!result.numAffectedRows) return false;
  for (const step of cp.steps) {
    const stepKeys = Object.keys(step.set).sort();
    await runPrepared(
      trx,
      handle.kind,
      `checkpoint-step:${stepKeys.join(',')}`,
      () =>
        handle.db
          .updateTable('execution_steps')
          .set(placeholders(stepKeys))
          .where('execution_id', '=', param<string>('$id'))
          .where('idx', '=', param<number>('$idx')),
      { ...step.set, $id: cp.executionId, $idx: step.idx },
    );
  }
  return true;
}
