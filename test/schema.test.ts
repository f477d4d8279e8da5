import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { openDb } from '../src/db/open.js';
import { POSTGRES_URL, type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { dumpSchema } from './helpers/schema-dump.js';

// The migrated schema of each backend, compared with a committed dump
// (test/schema/<backend>.snapshot.txt), so that every schema change — a new migration,
// or an old one edited by mistake — shows up in review as a diff of that file.
// After a deliberate change, regenerate both with `npm run schema:snapshot`.

const UPDATE = process.env.UPDATE_SCHEMA_SNAPSHOT === '1';

if (UPDATE && POSTGRES_URL === '') {
  throw new Error('UPDATE_SCHEMA_SNAPSHOT=1 needs SKIPFLOW_TEST_POSTGRES_URL: both snapshots are regenerated together');
}

const snapshotPath = (backend: string) => fileURLToPath(new URL(`./schema/${backend}.snapshot.txt`, import.meta.url));

describeEachBackend('migrated schema', (backend) => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(backend);
    const db = openDb(database.url, { poolSize: 1 });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('equals the committed snapshot', async () => {
    const actual = await dumpSchema(database.url);
    const file = snapshotPath(backend);
    if (UPDATE) {
      writeFileSync(file, actual);
      return;
    }
    let committed = '';
    try {
      committed = readFileSync(file, 'utf8');
    } catch {
      // Missing: the comparison below fails with the whole dump as the diff.
    }
    expect(actual, `the ${backend} schema differs from test/schema/${backend}.snapshot.txt; if the change is intended, run \`npm run schema:snapshot\` and commit the diff`).toBe(committed);
  });
});
