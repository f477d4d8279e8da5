import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { promisify } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DAY_MS } from '../src/lib/time.js';
import { Pruner, pruneExecutions, retentionCutoff } from '../src/retention/prune.js';
import { createWorkflow, finished, run } from './helpers/api.js';
import { createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { CLI } from './helpers/child.js';
import { type TestServer, openMigrated, openTestDb, silentLogger, startTestServer } from './helpers/server.js';

// Retention: finished executions older than the period go, with their steps and
// deliveries, in batches, while run-async and readers carry on; `skipflow prune`.

const execFileP = promisify(execFile);
const OLD = 1_200; // more than two batches of 500
let seq = 1;

describeEachBackend('retention: pruning old executions', (backend) => {
  let t: TestServer;
  let workflowId: string;
  let versionId: string;

  beforeAll(async () => {
    // The background pruner is off here (0 = keep for ever); the test prunes itself.
    t = await startTestServer(backend, { retentionDays: 0 });
    workflowId = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const id = await run(t, workflowId);
    await finished(t, id);
    versionId = (await t.server.deps.db.db.selectFrom('executions').select('version_id').where('id', '=', id).executeTakeFirstOrThrow()).version_id;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Old finished executions (with a step and a delivery each), written directly. */
  async function seedOld(count: number, completedAt: number): Promise<string[]> {
    const db = t.server.deps.db.db;
    const ids = Array.from({ length: count }, () => `00${(seq++).toString(16).padStart(22, '0')}`);
    for (let i = 0; i < ids.length; i += 200) {
      const chunk = ids.slice(i, i + 200);
      await db.insertInto('executions').values(chunk.map((id) => ({ id, workspace_id: t.workspaceId, workflow_id: workflowId, version_id: versionId, workflow_name: 'w', status: 'success' as const, input: 'null', created_at: completedAt, completed_at: completedAt }))).execute();
      await db.insertInto('execution_steps').values(chunk.map((id) => ({ execution_id: id, idx: 0, type: 'transform', status: 'completed' as const, result: '1' }))).execute();
      await db.insertInto('webhook_deliveries').values(chunk.map((id) => ({ id: `d${id.slice(1)}`, workspace_id: t.workspaceId, execution_id: id, endpoint_id: 'e'.repeat(24), event: 'execution.succeeded', status: 'delivered' as const, created_at: completedAt }))).execute();
    }
    return ids;
  }

  it('deletes old finished executions with their steps and deliveries while run-async and readers carry on', async () => {
    const now = Date.now();
    const old = await seedOld(OLD, now - 40 * DAY_MS);
    const recent = await Promise.all([1, 2, 3].map(() => run(t, workflowId)));
    for (const id of recent) await finished(t, id);
    // An old execution that is still running is never pruned.
    const running = (await seedOld(1, now - 50 * DAY_MS))[0]!;
    await t.server.deps.db.db.updateTable('executions').set({ status: 'running', completed_at: null, available_at: now + DAY_MS }).where('id', '=', running).execute();

    let stop = false;
    const starts: number[] = [];
    const reads: number[] = [];
    const load = (async () => {
      while (!stop) {
        starts.push((await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: {} })).statusCode);
        reads.push((await t.request({ method: 'GET', url: `/api/v1/executions/${recent[0]}?include_step_results=true` })).statusCode);
        const page = await t.request({ method: 'GET', url: '/api/v1/executions?limit=100' });
        reads.push(page.statusCode);
      }
    })();
    const deleted = await pruneExecutions(t.server.deps.db, retentionCutoff(now, 30));
    stop = true;
    await load;
    expect(deleted).toBe(OLD);
    expect(starts.length).toBeGreaterThan(0);
    expect(new Set(starts)).toEqual(new Set([202]));
    expect(new Set(reads)).toEqual(new Set([200]));

    const db = t.server.deps.db.db;
    const left = await db.selectFrom('executions').select('id').where('id', 'in', old.slice(0, 500)).execute();
    expect(left).toEqual([]);
    expect(await db.selectFrom('execution_steps').select('execution_id').where('execution_id', 'in', old.slice(-500)).execute()).toEqual([]);
    expect(await db.selectFrom('webhook_deliveries').select('id').where('execution_id', 'in', old.slice(-500)).execute()).toEqual([]);
    expect((await t.request({ method: 'GET', url: `/api/v1/executions/${old[0]}` })).statusCode).toBe(404);
    for (const id of [...recent, running]) expect((await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).statusCode).toBe(200);
    await db.deleteFrom('executions').where('id', '=', running).execute();

    if (backend === 'sqlite') {
      const { rows } = await sql<{ auto_vacuum: number }>`pragma auto_vacuum`.execute(db);
      expect(rows[0]!.auto_vacuum).toBe(2); // INCREMENTAL, from the first table on
      const free = await sql<{ freelist_count: number }>`pragma freelist_count`.execute(db);
      expect(free.rows[0]!.freelist_count).toBe(0); // the freed pages went back to the file system
    }
  });

  it('two pruners at once (separate connections on PostgreSQL) delete each execution once, no error', async () => {
    const now = Date.now();
    await seedOld(1_100, now - 40 * DAY_MS);
    const other = backend === 'postgres' ? openTestDb(t.database.url, { poolSize: 2 }) : t.server.deps.db;
    try {
      const [a, b] = await Promise.all([pruneExecutions(t.server.deps.db, retentionCutoff(now, 30)), pruneExecutions(other, retentionCutoff(now, 30))]);
      // On PostgreSQL the second finds the advisory lock taken and leaves the work to the
      // first (or the work is split between batches); never more than was there.
      expect(a + b).toBeLessThanOrEqual(1_100);
      expect(a + b + (await pruneExecutions(t.server.deps.db, retentionCutoff(now, 30)))).toBe(1_100);
    } finally {
      if (other !== t.server.deps.db) await other.close();
    }
  });

  it('the background pruner uses SKIPFLOW_RETENTION_DAYS', async () => {
    const now = Date.now();
    const old = await seedOld(10, now - 8 * DAY_MS);
    const keep = await seedOld(5, now - 6 * DAY_MS + 1000);
    const pruner = new Pruner({ db: t.server.deps.db, clock: { now: () => now }, logger: silentLogger, retentionDays: 7 });
    await pruner.runOnce();
    const db = t.server.deps.db.db;
    expect(await db.selectFrom('executions').select('id').where('id', 'in', old).execute()).toEqual([]);
    expect(await db.selectFrom('executions').select('id').where('id', 'in', keep).execute()).toHaveLength(5);
    await pruneExecutions(t.server.deps.db, now);
  });

  it('skipflow prune --older-than-days N --json prints { deleted }', async () => {
    if (statSync(CLI, { throwIfNoEntry: false }) === undefined) throw new Error('dist/ is missing: run `npm run build` before this test');
    await seedOld(7, Date.now() - 3 * DAY_MS);
    const env = { PATH: process.env.PATH ?? '', SKIPFLOW_DATABASE_URL: t.database.url };
    const { stdout } = await execFileP(process.execPath, [CLI, 'prune', '--older-than-days', '2', '--json'], { env, timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ deleted: 7 });
    const again = await execFileP(process.execPath, [CLI, 'prune', '--older-than-days', '2', '--json'], { env, timeout: 30_000 });
    expect(JSON.parse(again.stdout)).toEqual({ deleted: 0 });
    const bad = await execFileP(process.execPath, [CLI, 'prune', '--older-than-days', 'x', '--json'], { env, timeout: 30_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
  });
});

it('skipflow prune --vacuum converts an SQLite database made without incremental vacuum', async () => {
  const database = await createTestDatabase('sqlite');
  try {
    const path = database.url.slice('sqlite:'.length);
    const legacy = new BetterSqlite3(path);
    legacy.exec('create table legacy_marker (x integer)');
    expect(legacy.pragma('auto_vacuum', { simple: true })).toBe(0);
    legacy.close();
    const env = { PATH: process.env.PATH ?? '', SKIPFLOW_DATABASE_URL: database.url };
    const { stdout } = await execFileP(process.execPath, [CLI, 'prune', '--older-than-days', '30', '--vacuum', '--json'], { env, timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ deleted: 0, vacuumed: true });
    const after = new BetterSqlite3(path);
    expect(after.pragma('auto_vacuum', { simple: true })).toBe(2);
    after.close();
    const db = await openMigrated(database.url);
    await db.close();
  } finally {
    await database.drop();
  }
});

describeEachBackend('retention: a pruned execution is 404 even where its finished copy was cached', (backend) => {
  it('GET after the prune answers 404', async () => {
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const t = await startTestServer(backend, { retentionDays: 30 }, { clock });
    try {
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
      const id = await run(t, wf);
      await finished(t, id);
      expect((await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).statusCode).toBe(200); // now cached
      offset = 31 * DAY_MS; // a month later
      expect(await pruneExecutions(t.server.deps.db, retentionCutoff(clock.now(), 30))).toBe(1);
      expect((await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).statusCode).toBe(404);
    } finally {
      await t.close();
    }
  });
});

it('SKIPFLOW_RETENTION_DAYS: 30 by default, 0 keeps for ever, anything else is refused by name', async () => {
  const { loadConfig } = await import('../src/config.js');
  expect(loadConfig({}).retentionDays).toBe(30);
  expect(loadConfig({ SKIPFLOW_RETENTION_DAYS: '0' }).retentionDays).toBe(0);
  expect(loadConfig({ SKIPFLOW_RETENTION_DAYS: '365' }).retentionDays).toBe(365);
  for (const bad of ['-1', '1.5', 'forever']) expect(() => loadConfig({ SKIPFLOW_RETENTION_DAYS: bad })).toThrow(/SKIPFLOW_RETENTION_DAYS/);
});
