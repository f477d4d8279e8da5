import { loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { type Db, openDb } from '../db/open.js';

// `--json` prints exactly one JSON object on stdout and nothing else; without it the
// same facts are printed for a person. Errors go to stderr with exit code 1.

export class CliError extends Error {}

export function print(json: boolean, value: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

/** Opens the configured database (schema brought up to date), runs `fn`, closes it. */
export async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const db = openDb(loadConfig().databaseUrl, { poolSize: 2 });
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
