import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, type RawBuilder, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { ensureDirectory } from '../lib/ensure-directory.js';
import { postgresDueIds, sqliteDueIds } from './due-executions.js';
import { PgSignals } from './pg-signals.js';
import type { Database, Executor } from './schema.js';
import { LocalSignals, type Signals } from './signals.js';
import { CachedSqliteDialect, SqliteConnection } from './sqlite-driver.js';
import { type Runner, type Statement, StatementCompiler, type Values, bind, databaseNow, param, statement } from './statements.js';

// The narrow seam between SkipFlow and its two databases. Everything dialect-specific
// lives here (and in the statements that branch on the dialect they are compiled
// for); the rest of the code asks the Db for capabilities, never for its kind.

export type DbKind = 'sqlite' | 'postgres';

export interface Db {
  readonly kind: DbKind;
  readonly db: Kysely<Database>;
  /** Several processes may share this database (PostgreSQL): state that must agree
   * across them (rate windows, signals) goes through the database. SQLite is one
   * server process by definition. */
  readonly sharedAcrossProcesses: boolean;
  /** The database's clock in epoch milliseconds: leases compare against it, so that
   * processes with skewed clocks still agree on who holds what. */
  nowMs(): RawBuilder<number>;
  isUniqueViolation(error: unknown): boolean;
  /** Serialises transactions that name the same key until commit or rollback.
   * PostgreSQL: a transaction-scoped advisory lock; SQLite runs one write transaction
   * at a time already, so there is nothing to do. */
  lockInTransaction(trx: Executor, key: string): Promise<void>;
  /** The same locks, for many keys at once (in key order, so two transactions never
   * wait on each other's keys in opposite orders), inside `transact`. */
  lockKeys(tx: Runner, keys: readonly string[]): Promise<void>;
  /** The due executions a claim should take, fairly across workspaces (see
   * db/due-executions.ts). Call inside the claim's transaction. */
  dueExecutionIds(tx: Runner, limit: number): Promise<string[]>;
  /** One transaction of declared statements (db/statements.ts): the hot paths. */
  transact<T>(fn: (tx: Runner) => Promise<T>): Promise<T>;
  /** Declared statements outside a transaction (each its own). */
  readonly runner: Runner;
  /** How the API tells workers about work and stops: in memory on SQLite (and across
   * this process's threads through the engine host), LISTEN/NOTIFY on PostgreSQL. */
  createSignals(logger: Logger): Promise<Signals>;
  /** SQLite: hands free pages back to the file system (auto_vacuum = INCREMENTAL); the
   * pragma frees one page per step, so it runs to completion in one exec. PostgreSQL:
   * nothing (VACUUM is autovacuum's job). */
  returnFreePages(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL pool size. */
  poolSize?: number;
}

// int8 (COUNT, bigint columns) arrives as a string by default; every value we store
// fits in a double (epoch milliseconds, credit balances).
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

function openSqlite(path: string): Db {
  if (path !== ':memory:') ensureDirectory(dirname(path));
  const database = new BetterSqlite3(path);
  // Before anything else: on a new file this must precede the first table, so that
  // pruned executions' pages go back to the file system (retention/prune.ts). On an
  // existing file it changes nothing until a VACUUM (`skipflow prune --vacuum`).
  database.pragma('auto_vacuum = INCREMENTAL');
  database.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a commit survives a crash of the process (kill -9); only an
  // operating-system crash or power loss can roll back the last commits. See
  // docs/guarantees.md.
  database.pragma('synchronous = NORMAL');
  // Waiting for another connection's write lock is done by the driver, off the event
  // loop (db/sqlite-driver.ts), not by SQLite's blocking busy handler.
  database.pragma('busy_timeout = 0');
  // A page cache large enough for the hot tables and their indexes. Not memory-mapped
  // I/O: mapped pages count in the process's resident memory as the file grows.
  database.pragma('cache_size = -16384');
  database.pragma('temp_store = memory');
  database.pragma('foreign_keys = ON');
  const connection = new SqliteConnection(database);
  const db = new Kysely<Database>({ dialect: new CachedSqliteDialect(connection) });
  const compiler = new StatementCompiler(db, 'sqlite');
  return {
    kind: 'sqlite',
    db,
    sharedAcrossProcesses: false,
    nowMs: () => databaseNow('sqlite'),
    isUniqueViolation: (error) =>
      typeof error === 'object' && error !== null && 'code' in error &&
      (error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || error.code === 'SQLITE_CONSTRAINT_UNIQUE'),
    lockInTransaction: async () => {},
    lockKeys: async () => {},
    dueExecutionIds: sqliteDueIds,
    transact: (fn) => connection.transact(compiler, fn),
    runner: connection.autocommit(compiler),
    createSignals: async () => new LocalSignals(),
    returnFreePages: async () => {
      const release = await connection.mutex.lock();
      try {
        database.exec('pragma incremental_vacuum');
      } finally {
        release();
      }
    },
    close: () => db.destroy(),
  };
}

/** Declared statements on one PostgreSQL client (or the pool), as named prepared
 * statements: each connection parses and plans a shape once. */
function pgRunner(client: pg.Pool | pg.PoolClient, compiler: StatementCompiler): Runner {
  const execute = (s: Statement<unknown>, values: Values | undefined) => {
    const compiled = compiler.get(s);
    return client.query({ name: compiled.name, text: compiled.sql, values: bind(compiled, values) });
  };
  return {
    all: async <R>(s: Statement<R>, values?: Values) => (await execute(s, values)).rows as R[],
    run: async (s: Statement, values?: Values) => (await execute(s, values)).rowCount ?? 0,
    each: async <R>(s: Statement<R>, rows: readonly Values[]) => (rows.length === 0 ? [] : ((await execute(s, { rows: JSON.stringify(rows) })).rows as R[])),
  };
}

const advisoryLocks = statement('advisory-locks', () =>
  sql`select pg_advisory_xact_lock(hashtextextended(k, 0)) from (select k from unnest(${param('keys')}::text[]) as k order by k) as ordered`,
);

function openPostgres(url: string, options: OpenOptions): Db {
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, types: pgTypes });
  // An idle client that loses its connection emits 'error' on the pool; without a
  // listener that would crash the process. The next checkout reconnects.
  pool.on('error', () => {});
  // A checked-out client whose backend is terminated (failover, pg_terminate_backend)
  // emits 'error' with no pool listener attached: without this the process would crash.
  // The query in flight rejects on its own and its transaction is reported as failed.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const compiler = new StatementCompiler(db, 'postgres');
  return {
    kind: 'postgres',
    db,
    sharedAcrossProcesses: true,
    nowMs: () => databaseNow('postgres'),
    isUniqueViolation: (error) =>
      typeof error === 'object' && error !== null && 'code' in error && error.code === '23505',
    dueExecutionIds: postgresDueIds,
    lockInTransaction: async (trx, key) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);
    },
    lockKeys: async (tx, keys) => {
      if (keys.length > 0) await tx.all(advisoryLocks, { keys: [...keys].sort() });
    },
    transact: async (fn) => {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('begin');
        try {
          const result = await fn(pgRunner(client, compiler));
          await client.query('commit');
          return result;
        } catch (error) {
          await client.query('rollback').catch(() => (broken = true));
          throw error;
        }
      } finally {
        client.release(broken);
      }
    },
    runner: pgRunner(pool, compiler),
    createSignals: async (logger) => {
      const signals = new PgSignals(pool, url, logger);
      await signals.start();
      return signals;
    },
    returnFreePages: async () => {},
    close: () => db.destroy(),
  };
}

export function openDb(url: string, options: OpenOptions = {}): Db {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length));
  if (/^postgres(ql)?:\/\//.test(url)) return openPostgres(url, options);
  throw new Error(`unsupported database URL "${url}"`);
}
