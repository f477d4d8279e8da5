import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe } from 'vitest';

// Every database test runs on both backends: the same test body, once on a fresh
// SQLite file and once on a fresh PostgreSQL database. PostgreSQL comes from
// SKIPFLOW_TEST_POSTGRES_URL (set by .ci/run); without it the PostgreSQL variant is
// skipped locally, and in CI (CI=true) its absence is a failure, not a skip.

export type BackendName = 'sqlite' | 'postgres';

export const POSTGRES_URL = process.env.SKIPFLOW_TEST_POSTGRES_URL ?? '';

if (process.env.CI === 'true' && POSTGRES_URL === '') {
  throw new Error('CI=true but SKIPFLOW_TEST_POSTGRES_URL is not set: the PostgreSQL half of the suite must run in CI');
}

export interface TestDatabase {
  readonly backend: BackendName;
  readonly url: string;
  drop(): Promise<void>;
}

/** A brand-new empty database (nothing migrated yet). */
export async function createTestDatabase(backend: BackendName): Promise<TestDatabase> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'skipflow-test-'));
    return { backend, url: `sqlite:${join(dir, 'skipflow.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `skipflow_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    backend,
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export const BACKENDS: BackendName[] = POSTGRES_URL ? ['sqlite', 'postgres'] : ['sqlite'];

/** `describe` once per backend; the body receives the backend's name. */
export function describeEachBackend(title: string, body: (backend: BackendName) => void): void {
  for (const backend of ['sqlite', 'postgres'] as BackendName[]) {
    const run = BACKENDS.includes(backend) ? describe : describe.skip;
    run(`${title} [${backend}]`, () => body(backend));
  }
}
