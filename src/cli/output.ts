import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { type Db, openDb } from '../db/open.js';

// `--json` prints exactly one JSON object on stdout and nothing else; without it the
// same facts are printed for a person. Errors go to stderr (and, with --json, as one
// `{ "error", "error_code" }` object on stdout) with exit code 2 (cli/main.ts).

export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 'invalid_usage',
  ) {
    super(message);
  }
}

/** A command other than serve/migrate must not create an empty database by opening a
 * path that does not exist (a typo would silently give a fresh, empty workspace). */
export function assertDatabaseExists(url: string): void {
  if (!url.startsWith('sqlite:')) return;
  const path = url.slice('sqlite:'.length);
  if (path === ':memory:' || existsSync(path)) return;
  throw new CliError(`no database at ${resolve(path)} (SKIPFLOW_DATABASE_URL=${url}); run "skipflow migrate" or "skipflow serve" first, or point SKIPFLOW_DATABASE_URL at the right file`, 'database_not_found');
}

export function print(json: boolean, value: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

/** Opens the configured database (schema brought up to date), runs `fn`, closes it. */
export async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const url = loadConfig().databaseUrl;
  assertDatabaseExists(url);
  const db = openDb(url, { poolSize: 2 });
  try {
    await migrate(db);
    return await fn(db);
  } finally {
    await db.close();
  }
}

export function positiveInt(name: string, min = 0) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new CliError(`${name} must be an integer ≥ ${min}, got "${raw}"`);
    return value;
  };
}
