import { type CompiledQuery, type Kysely, type RawBuilder, sql } from 'kysely';
import type { DbKind } from './open.js';
import type { Database } from './schema.js';

// Statements declared once. The engine's hot paths (run-async, claims, checkpoints)
// run a dozen statement shapes all day; each is declared here as
// `statement(name, build)`: Kysely writes its SQL once per dialect, with named
// placeholders (`param('id')`), and every later run binds values and goes straight to
// the driver — no query building, no compiling, none of Kysely's per-query promise
// layers. A shape must not depend on the values (no `IN (…)` lists of varying length:
// pass arrays through `json_each` / `unnest` instead).

const PLACEHOLDER = '\u0000skipflow-param\u0000';

/** A placeholder for the value named `name`. */
export function param<T = string>(name: string): T {
  return `${PLACEHOLDER}${name}` as unknown as T;
}

export type Values = Record<string, unknown>;

/** The database's clock in epoch milliseconds, as SQL: leases and due times compare
 * against it, so that processes with skewed clocks still agree on who holds what. */
export function databaseNow(dialect: DbKind): RawBuilder<number> {
  return dialect === 'postgres' ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint` : sql<number>`cast(round(unixepoch('subsec') * 1000) as integer)`;
}

type Buildable = { compile(): CompiledQuery } | RawBuilder<unknown>;

export interface Statement<R = unknown> {
  readonly name: string;
  readonly build: (db: Kysely<Database>, dialect: DbKind) => Buildable;
  /** Phantom: the row type the statement returns. */
  readonly row?: R;
}

export function statement<R = unknown>(name: string, build: (db: Kysely<Database>, dialect: DbKind) => Buildable): Statement<R> {
  return { name, build };
}

/** Runs declared statements: inside a transaction (Db.transact) or in autocommit. */
export interface Runner {
  all<R>(s: Statement<R>, values?: Values): Promise<R[]>;
  /** Runs a statement for its effect; returns the number of rows it changed. */
  run(s: Statement, values?: Values): Promise<number>;
  /** Runs a set-based statement for many rows at once and returns what it returns.
   * Declare it for both shapes: on PostgreSQL one statement reads every row from a
   * JSON array (`param('rows')`, e.g. with json_to_recordset) — one round trip; on
   * SQLite, in-process, it is a one-row statement (`param(column)`) run once per row,
   * which is faster than parsing JSON there. */
  each<R>(s: Statement<R>, rows: readonly Values[]): Promise<R[]>;
}

export interface Compiled {
  readonly name: string;
  readonly sql: string;
  /** Per positional parameter: the name of a placeholder, or a fixed value. */
  readonly slots: ReadonlyArray<{ name: string } | { value: unknown }>;
}

/** Compiles each statement once for one database. */
export class StatementCompiler {
  readonly #compiled = new Map<Statement<unknown>, Compiled>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: DbKind,
  ) {}

  get(s: Statement<unknown>): Compiled {
    let compiled = this.#compiled.get(s);
    if (!compiled) {
      const built = s.build(this.db, this.dialect);
      // Query builders compile by themselves; a raw `sql` template needs the database.
      const query = built.compile.length > 0 ? (built as RawBuilder<unknown>).compile(this.db) : (built as { compile(): CompiledQuery }).compile();
      compiled = {
        name: s.name,
        sql: query.sql,
        slots: query.parameters.map((p) =>
          typeof p === 'string' && p.startsWith(PLACEHOLDER) ? { name: p.slice(PLACEHOLDER.length) } : { value: p },
        ),
      };
      this.#compiled.set(s, compiled);
    }
    return compiled;
  }
}

export function bind(compiled: Compiled, values: Values | undefined): unknown[] {
  return compiled.slots.map((slot) => {
    if ('value' in slot) return slot.value;
    const value = values?.[slot.name];
    if (value === undefined) throw new Error(`statement ${compiled.name}: no value for ${slot.name}`);
    return value;
  });
}
