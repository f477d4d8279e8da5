import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/open.js';
import { type Clock, DAY_MS, HOUR_MS } from '../lib/time.js';

// Retention: finished executions whose completed_at is older than the retention period
// are deleted with everything that belongs to them (steps, deliveries), in
// transactions of at most PRUNE_BATCH executions, so a prune never holds the write
// lock (SQLite) or many row locks (PostgreSQL) for long: run-async and the workers
// get their turn between two batches. On PostgreSQL one pruner works at a time (an
// advisory lock; another process that finds it taken skips its run). On SQLite the
// freed pages go back to the file system afterwards (incremental vacuum; databases
// are created with auto_vacuum = INCREMENTAL, see db/open.ts).

export const PRUNE_BATCH = 500;
const PRUNER_LOCK = 'skipflow:retention-pruner';

/** Deletes every finished execution completed before `cutoff`; returns how many. */
export async function pruneExecutions(handle: Db, cutoff: number, options: { batch?: number } = {}): Promise<number> {
  const batch = Math.min(options.batch ?? PRUNE_BATCH, PRUNE_BATCH);
  let deleted = 0;
  for (;;) {
    const result = await handle.db.transaction().execute(async (trx) => {
      if (handle.sharedAcrossProcesses) {
        const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtextextended(${PRUNER_LOCK}, 0)) as ok`.execute(trx);
        if (!rows[0]?.ok) return null;
      }
      // completed_at is set exactly when an execution reaches its final status, so
      // `completed_at < cutoff` (executions_completed) finds finished ones only.
      let query = trx.selectFrom('executions').select('id').where('completed_at', '<', cutoff).orderBy('completed_at').limit(batch);
      if (handle.sharedAcrossProcesses) query = query.forUpdate().skipLocked();
      const ids = (await query.execute()).map((r) => r.id);
      if (ids.length === 0) return 0;
      await trx.deleteFrom('execution_steps').where('execution_id', 'in', ids).execute();
      await trx.deleteFrom('webhook_deliveries').where('execution_id', 'in', ids).execute();
      const gone = await trx.deleteFrom('executions').where('id', 'in', ids).where('status', '<>', 'running').executeTakeFirst();
      return Number(gone.numDeletedRows);
    });
    if (result === null) break; // another process is pruning
    deleted += result;
    if (result < batch) break;
    // Let the hot paths in between two batches.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (deleted > 0 && handle.kind === 'sqlite') await returnFreePages(handle);
  return deleted;
}

/** SQLite: hands the free pages back to the file system (auto_vacuum = INCREMENTAL). */
export async function returnFreePages(handle: Db): Promise<void> {
  await handle.returnFreePages();
}

/** SQLite: whether the file returns free pages (2 = INCREMENTAL). */
export async function sqliteAutoVacuum(handle: Db): Promise<number> {
  const { rows } = await sql<{ auto_vacuum: number }>`pragma auto_vacuum`.execute(handle.db);
  return Number(rows[0]?.auto_vacuum ?? 0);
}

/** SQLite: converts a database made before auto_vacuum = INCREMENTAL (a VACUUM
 * rewrites the whole file: run it while the server is stopped). */
export async function enableIncrementalVacuum(handle: Db): Promise<void> {
  await sql`pragma auto_vacuum = incremental`.execute(handle.db);
  await sql`vacuum`.execute(handle.db);
}

export const retentionCutoff = (now: number, days: number) => now - days * DAY_MS;

/** The background pruner of a worker process: at start and then every PRUNE_EVERY_MS. */
export class Pruner {
  static readonly PRUNE_EVERY_MS = HOUR_MS;
  #timer: NodeJS.Timeout | undefined;
  #first: NodeJS.Timeout | undefined;
  #running: Promise<void> | null = null;

  constructor(private readonly options: { db: Db; clock: Clock; logger: Logger; retentionDays: number; everyMs?: number }) {}

  start(): void {
    if (this.options.retentionDays === 0) return; // keep for ever
    const run = () => void this.runOnce();
    this.#timer = setInterval(run, this.options.everyMs ?? Pruner.PRUNE_EVERY_MS);
    this.#timer.unref();
    // Not at once: the first prune of an old database should not compete with startup.
    this.#first = setTimeout(run, 5_000);
    this.#first.unref();
  }

  runOnce(): Promise<void> {
    this.#running ??= (async () => {
      try {
        const deleted = await pruneExecutions(this.options.db, retentionCutoff(this.options.clock.now(), this.options.retentionDays));
        if (deleted > 0) this.options.logger.info({ deleted }, 'pruned old executions');
      } catch (err) {
        this.options.logger.warn({ err }, 'pruning old executions failed; trying again later');
      } finally {
        this.#running = null;
      }
    })();
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    clearTimeout(this.#first);
    await this.#running;
  }
}
