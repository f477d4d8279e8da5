import type BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import { type Runner, type Statement, type StatementCompiler, type Values, bind } from './statements.js';

// SkipFlow's own SQLite driver. Kysely's prepares every statement anew and opens
// transactions with a deferred BEGIN. Ours differs in what matters here:
// - prepared statements are cached by SQL text (preparing costs more than running a
//   small statement, and the hot paths run the same dozen statements all day);
// - transactions start with BEGIN IMMEDIATE, so a transaction that reads and then
//   writes takes the write lock up front instead of failing when it upgrades its lock;
// - a statement refused with SQLITE_BUSY (another connection holds the write lock: the
//   engine thread, the API thread, the CLI) is retried without blocking the event
//   loop. SQLite's own busy handler would sleep the whole thread — the API could not
//   even read requests meanwhile — in steps of up to 100 ms; here the connection
//   tries again on the next turns of the loop, so a wait lasts as long as the
//   holder's transaction;
// - the declared statements of the hot paths (db/statements.ts) run on the same
//   connection directly, synchronously, inside one mutex with Kysely's queries.

const STATEMENT_CACHE_SIZE = 500;
/** How long a statement keeps retrying while another connection holds the lock. */
const BUSY_TIMEOUT_MS = 5_000;

const isBusy = (error: unknown) =>
  typeof error === 'object' && error !== null && 'code' in error && (error.code === 'SQLITE_BUSY' || error.code === 'SQLITE_BUSY_SNAPSHOT');

/** The first retries on the next turn of the loop; later ones every millisecond. */
const pause = (attempt: number) => new Promise<void>((resolve) => (attempt < 3 ? setImmediate(resolve) : setTimeout(resolve, 1)));

/** Runs `fn`, retrying it while SQLite answers SQLITE_BUSY (up to BUSY_TIMEOUT_MS). */
async function retryBusy<T>(fn: () => T): Promise<T> {
  for (let attempt = 0, deadline = 0; ; attempt++) {
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error)) throw error;
      deadline ||= Date.now() + BUSY_TIMEOUT_MS;
      if (Date.now() > deadline) throw error;
      await pause(attempt);
    }
  }
}

/** A one-connection mutex: better-sqlite3 is synchronous, so SQLite is one connection. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();

  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const acquired = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => next);
    return acquired;
  }
}

/** The one connection of a process (or thread) to its SQLite file. */
export class SqliteConnection {
  readonly mutex = new Mutex();
  readonly #statements = new Map<string, BetterSqlite3.Statement>();

  constructor(readonly database: BetterSqlite3.Database) {}

  prepare(text: string): BetterSqlite3.Statement {
    let statement = this.#statements.get(text);
    if (statement === undefined) {
      statement = this.database.prepare(text);
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.#statements.keys().next().value;
        if (oldest !== undefined) this.#statements.delete(oldest);
      }
      this.#statements.set(text, statement);
    }
    return statement;
  }

  /** A runner for declared statements on this connection; the caller holds the mutex. */
  runner(compiler: StatementCompiler): Runner {
    const execute = (s: Statement<unknown>, values: Values | undefined) => {
      const compiled = compiler.get(s);
      const prepared = this.prepare(compiled.sql);
      const parameters = bind(compiled, values);
      return prepared.reader ? { rows: prepared.all(parameters) as unknown[], changes: 0 } : { rows: [], changes: prepared.run(parameters).changes };
    };
    return {
      all: async <R>(s: Statement<R>, values?: Values) => (await retryBusy(() => execute(s, values))).rows as R[],
      run: async (s: Statement, values?: Values) => {
        const { rows, changes } = await retryBusy(() => execute(s, values));
        return rows.length || changes;
      },
      each: async <R>(s: Statement<R>, rows: readonly Values[]) => {
        const out: unknown[] = [];
        // Inside a transaction (BEGIN IMMEDIATE holds the lock) no row can be refused
        // with SQLITE_BUSY: one synchronous loop. In autocommit every row is its own
        // transaction and is retried on its own, never repeating the ones before it.
        if (this.database.inTransaction) for (const row of rows) for (const r of execute(s, row).rows) out.push(r);
        else for (const row of rows) for (const r of (await retryBusy(() => execute(s, row))).rows) out.push(r);
        return out as R[];
      },
    };
  }

  /** One write transaction (BEGIN IMMEDIATE … COMMIT) of declared statements. */
  async transact<T>(compiler: StatementCompiler, fn: (tx: Runner) => Promise<T>): Promise<T> {
    const release = await this.mutex.lock();
    try {
      await retryBusy(() => this.prepare('begin immediate').run());
      try {
        const result = await fn(this.runner(compiler));
        this.prepare('commit').run();
        return result;
      } catch (error) {
        if (this.database.inTransaction) this.prepare('rollback').run();
        throw error;
      }
    } finally {
      release();
    }
  }

  /** Declared statements in autocommit mode (each one its own transaction). */
  autocommit(compiler: StatementCompiler): Runner {
    const inner = this.runner(compiler);
    const locked = async <T>(fn: () => Promise<T>) => {
      const release = await this.mutex.lock();
      try {
        return await fn();
      } finally {
        release();
      }
    };
    return {
      all: (s, values) => locked(() => inner.all(s, values)),
      run: (s, values) => locked(() => inner.run(s, values)),
      each: (s, rows) => locked(() => inner.each(s, rows)),
    };
  }
}

class KyselyConnection implements DatabaseConnection {
  constructor(private readonly connection: SqliteConnection) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const statement = this.connection.prepare(query.sql);
    const parameters = query.parameters as unknown[];
    return retryBusy(() => {
      if (statement.reader) return { rows: statement.all(parameters) as R[] };
      const { changes } = statement.run(parameters);
      return { numAffectedRows: BigInt(changes), rows: [] };
    });
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not used by SkipFlow');
  }
}

class CachedSqliteDriver implements Driver {
  readonly #kysely: KyselyConnection;
  #release: (() => void) | null = null;

  constructor(private readonly connection: SqliteConnection) {
    this.#kysely = new KyselyConnection(connection);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    this.#release = await this.connection.mutex.lock();
    return this.#kysely;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // A failed COMMIT (or SQLITE_BUSY on BEGIN) may already have ended the transaction.
    if (this.connection.database.inTransaction) {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    }
  }

  async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = null;
    release?.();
  }

  async destroy(): Promise<void> {
    this.connection.database.close();
  }
}

export class CachedSqliteDialect implements Dialect {
  constructor(private readonly connection: SqliteConnection) {}

  createDriver(): Driver {
    return new CachedSqliteDriver(this.connection);
  }
  createQueryCompiler() {
    return new SqliteQueryCompiler();
  }
  createAdapter() {
    return new SqliteAdapter();
  }
  createIntrospector(db: Kysely<unknown>) {
    return new SqliteIntrospector(db);
  }
}
