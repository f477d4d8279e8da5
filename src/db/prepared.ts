import type { CompiledQuery, QueryResult } from 'kysely';
import type { Executor } from './schema.js';

// Building and compiling a Kysely query costs more than running a small statement on
// SQLite. The hot paths (checkpoints, run-async, polling) run the same few statement
// shapes all day, so they are built once per shape with named placeholders and then
// run with their values — one code path for both databases, Kysely still writing the
// SQL. A shape must not depend on the values (no `IN (…)` lists of varying length).

const PLACEHOLDER = '\u0000skipflow-param\u0000';

/** A placeholder for the value named `name` (use it where the value will go). */
export function param<T = unknown>(name: string): T {
  return `${PLACEHOLDER}${name}` as unknown as T;
}

interface Prepared {
  sql: string;
  query: CompiledQuery['query'];
  /** For each positional parameter: the name of a placeholder, or a fixed value. */
  slots: Array<{ name: string } | { value: unknown }>;
}

const cache = new Map<string, Prepared>();

function prepare(compiled: CompiledQuery): Prepared {
  return {
    sql: compiled.sql,
    query: compiled.query,
    slots: compiled.parameters.map((p) =>
      typeof p === 'string' && p.startsWith(PLACEHOLDER) ? { name: p.slice(PLACEHOLDER.length) } : { value: p },
    ),
  };
}

/** Runs the statement built by `build` (once per `key` and dialect) with `values`. */
export async function runPrepared<R>(
  executor: Executor,
  dialect: string,
  key: string,
  build: () => { compile(): CompiledQuery },
  values: Record<string, unknown>,
): Promise<QueryResult<R>> {
  const cacheKey = `${dialect}\u0000${key}`;
  let prepared = cache.get(cacheKey);
  if (!prepared) {
    prepared = prepare(build().compile());
    cache.set(cacheKey, prepared);
  }
  const parameters = prepared.slots.map((slot) => {
    if ('value' in slot) return slot.value;
    if (!(slot.name in values)) throw new Error(`prepared statement ${key}: no value for ${slot.name}`);
    return values[slot.name];
  });
  return executor.executeQuery<R>({ sql: prepared.sql, query: prepared.query, parameters, queryId: { queryId: key } } as CompiledQuery<R>);
}
