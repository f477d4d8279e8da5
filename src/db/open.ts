import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, type RawBuilder, sql } from 'kysely';
import pg from 'pg';
import { ensureDirectory } from '../lib/ensure-directory.js';
import { type DueQuery, postgresDueIds, sqliteDueIds } from './due-executions.js';
import type { Database, Executor } from './schema.js';
import { CachedSqliteDialect } from './sqlite-driver.js';

// The narrow seam between SkipFlow and its two databases. Everything dialect-specific
// lives here; the rest of the code writes one Kysely query for both.

export type DbKind = 'sqlite' | 'postgres';

export interface Db {
  readonly kind: DbKind;
  readonly db: Kysely<Database>;
  /** The database's clock in epoch milliseconds: leases compare against it, so that
   * processes with skewed clocks still agree on who holds what. */
  nowMs(): RawBuilder<number>;
  isUniqueViolation(error: unknown): boolean;
  /** Serialises transactions that name the same key until commit or rollback.
   * PostgreSQL: a transaction-scoped advisory lock; SQLite runs one write transaction
   * at a time already, so there is nothing to do. */
  lockInTransaction(trx: Executor, key: string): Promise<void>;
  /** The due executions a claim should take, fairly across workspaces (see
   * db/due-executions.ts). Call inside the claim's transaction. */
  dueExecutionIds(trx: Executor, query: DueQuery): Promise<string[]>;
  /** The pg pool, for LISTEN/NOTIFY; null on SQLite. */
  readonly pool: pg.Pool | null;
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
  database.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a commit survives a crash of the process (kill -9); only an
  // operating-system crash or power loss can roll back the last commits. See
  // docs/guarantees.md.
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  // A larger page cache and memory-mapped reads: the hot tables and their indexes stay
  // in memory instead of being re-read through system calls on every statement.
  database.pragma('cache_size = -65536');
  database.pragma('mmap_size = 268435456');
  database.pragma('temp_store = memory');
  database.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new CachedSqliteDialect(database) });
  return {
    kind: 'sqlite',
    db,
    nowMs: () => sql<number>`cast(round(unixepoch('subsec') * 1000) as integer)`,
    isUniqueViolation: (error) =>
      typeof error === 'object' && error !== null && 'code' in error &&
      (error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || error.code === 'SQLITE_CONSTRAINT_UNIQUE'),
    lockInTransaction: async () => {},
    dueExecutionIds: sqliteDueIds,
    pool: null,
    close: () => db.destroy(),
  };
}

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
  return {
    kind: 'postgres',
    db,
    nowMs: () => sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`,
    isUniqueViolation: (error) =>
      typeof error === 'object' && error !== null && 'code' in error && error.code === '23505',
    dueExecutionIds: postgresDueIds,
    lockInTransaction: async (trx, key) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);
    },
    pool,
    close: () => db.destroy(),
  };
}

export function openDb(url: string, options: OpenOptions = {}): Db {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length));
  if (/^postgres(ql)?:\/\//.test(url)) return openPostgres(url, options);
  throw new Error(`unsupported database URL "${url}"`);
}
