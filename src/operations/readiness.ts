import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import { MIGRATION_NAMES } from '../db/migrate.js';

// Ready means: the database answers, and every migration this build knows has been
// applied to it (a process started against a database another, older process
// migrated — or one whose migration failed — is not ready to serve).

export type Readiness = { ready: true } | { ready: false; reason: string };

const PROBE_TIMEOUT_MS = 2_000;

async function probe(db: Db): Promise<Readiness> {
  let applied: Set<string>;
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db.db);
    applied = new Set(rows.map((r) => r.name));
  } catch (error) {
    return { ready: false, reason: `the database does not answer: ${(error as Error).message}` };
  }
  const missing = MIGRATION_NAMES.filter((name) => !applied.has(name));
  if (missing.length > 0) return { ready: false, reason: `the database schema is behind: ${missing.length} migration(s) not applied (${missing.join(', ')}); run "skipflow migrate"` };
  return { ready: true };
}

export async function readiness(db: Db): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve({ ready: false, reason: `the database did not answer within ${PROBE_TIMEOUT_MS} ms` }), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([probe(db), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
