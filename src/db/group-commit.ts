import type { Logger } from 'pino';
import type { Db } from './open.js';
import type { Runner } from './statements.js';

// Group commit: the one mechanism by which the hot paths write. Every item submitted
// while a transaction is committing goes into the next one, so the database sees one
// transaction (one WAL write, on PostgreSQL one fsync) per batch instead of one per
// item, while each caller still learns its own outcome only after its commit.
//
// A batch is committed by set-based statements where it can (one statement for many
// rows). If the batch's transaction fails as a whole — a lost connection, a deadlock,
// one item's constraint violation — it is tried again once, item by item, each in its
// own transaction: the failing item fails alone and the others commit. (This replaces
// a savepoint per item, which cost three statements per item on every batch.)

export interface GroupCommitOptions<I, O> {
  readonly name: string;
  readonly db: Db;
  readonly logger: Logger;
  readonly maxBatch: number;
  /** Commits `items` inside `tx`; returns one outcome per item, in order. */
  commit(tx: Runner, items: readonly I[]): Promise<O[]>;
  /** Called after each committed batch with its items and outcomes. */
  afterCommit?(items: readonly I[], outcomes: readonly O[]): void;
}

interface Pending<I, O> {
  item: I;
  resolve(outcome: O): void;
  reject(error: unknown): void;
}

export class GroupCommit<I, O> {
  #queue: Array<Pending<I, O>> = [];
  #flushing = false;

  constructor(private readonly options: GroupCommitOptions<I, O>) {}

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.options.maxBatch);
      try {
        this.#settle(batch, await this.#transact(batch));
      } catch (error) {
        if (batch.length === 1) {
          batch[0]!.reject(error);
          continue;
        }
        this.options.logger.warn({ err: error, batch: batch.length, writer: this.options.name }, 'group commit failed; committing its items one by one');
        for (const pending of batch) {
          try {
            this.#settle([pending], await this.#transact([pending]));
          } catch (itemError) {
            pending.reject(itemError);
          }
        }
      }
    }
    this.#flushing = false;
  }

  #transact(batch: Array<Pending<I, O>>): Promise<O[]> {
    const items = batch.map((p) => p.item);
    return this.options.db.transact((tx) => this.options.commit(tx, items));
  }

  #settle(batch: Array<Pending<I, O>>, outcomes: O[]): void {
    batch.forEach((p, i) => p.resolve(outcomes[i]!));
    this.options.afterCommit?.(
      batch.map((p) => p.item),
      outcomes,
    );
  }
}
