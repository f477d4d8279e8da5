import BetterSqlite3 from 'better-sqlite3';
import {
  type CompiledQuery,
  type Dialect,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Db } from '../src/db/open.js';
import type { Database } from '../src/db/schema.js';
import type { ExecutionStatus } from '../src/executions/status.js';
import { type ListFilter, findExecution, findSteps, listExecutions } from '../src/executions/store.js';
import { type BackendName, type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { openMigrated } from './helpers/server.js';

// A page of executions must cost the same at any table size and any depth: every list
// query (workspace, maybe a workflow and/or a status, maybe a cursor, newest first) is
// served by an index in index order — no full scan, no sort — and a single execution
// and its steps are found by primary key. We ask each database's planner about the
// exact SQL that src/executions/store.ts generates (captured with a dummy driver).

// 40k executions: eight tenants share the table, interleaved as ids from many tenants
// are; "big" holds one row in eight, "small" one in a hundred. Each tenant's rows are
// spread over two workflows (3:1) and all four statuses.
const ROWS = 40_000;
const SLOTS = 8;
const STEPS_PER_EXECUTION = 3;

const hexId = (n: number) => n.toString(16).padStart(24, '0');
const workspaceId = (w: number) => `aaaaaaaaaaaaaaaaaaaa${w.toString(16).padStart(4, '0')}`;
const workflowId = (w: number, f: number) => `bbbbbbbbbbbbbbbb${w.toString(16).padStart(4, '0')}${f.toString(16).padStart(4, '0')}`;
const BIG = 1;
const SMALL = 99;

interface GeneratedRow {
  id: string;
  workspace_id: string;
  workflow_id: string;
  status: ExecutionStatus;
}

function generateRows(): GeneratedRow[] {
  const rows: GeneratedRow[] = [];
  const rank = new Map<number, number>();
  for (let i = 0; i < ROWS; i++) {
    const w = i % 100 === 50 ? SMALL : i % SLOTS;
    const k = rank.get(w) ?? 0; // the row's rank within its workspace
    rank.set(w, k + 1);
    const r = k % 100;
    // 60% success, 25% failed, 10% stopped, 5% running; workflow 0 gets three rows in four.
    const status: ExecutionStatus = r < 60 ? 'success' : r < 85 ? 'failed' : r < 95 ? 'stopped' : 'running';
    rows.push({ id: hexId(i + 1), workspace_id: workspaceId(w), workflow_id: workflowId(w, k % 4 === 3 ? 1 : 0), status });
  }
  return rows;
}

/** The SQL (and parameters) that a store function sends, captured without running it. */
async function capture(backend: BackendName, run: (db: Kysely<Database>) => Promise<unknown>): Promise<CompiledQuery> {
  const dialect: Dialect =
    backend === 'sqlite'
      ? {
          createAdapter: () => new SqliteAdapter(),
          createDriver: () => new DummyDriver(),
          createIntrospector: (db) => new SqliteIntrospector(db),
          createQueryCompiler: () => new SqliteQueryCompiler(),
        }
      : {
          createAdapter: () => new PostgresAdapter(),
          createDriver: () => new DummyDriver(),
          createIntrospector: (db) => new PostgresIntrospector(db),
          createQueryCompiler: () => new PostgresQueryCompiler(),
        };
  const queries: CompiledQuery[] = [];
  const db = new Kysely<Database>({ dialect, log: (event) => void queries.push(event.query) });
  await run(db);
  await db.destroy();
  expect(queries).toHaveLength(1);
  return queries[0]!;
}

interface Variant {
  name: string;
  filter: ListFilter;
  /** The indexes that serve it in order (either will do). */
  indexes: string[];
}

function variantsFor(tenant: number, middleId: string): Variant[] {
  const wf = workflowId(tenant, 1); // the smaller of its two workflows
  const filters: Variant[] = [
    { name: 'no filter', filter: {}, indexes: ['executions_workspace'] },
    { name: 'workflow_id', filter: { workflow_id: wf }, indexes: ['executions_workflow'] },
    { name: 'status=running (rare)', filter: { status: 'running' }, indexes: ['executions_status'] },
    { name: 'status=success (common)', filter: { status: 'success' }, indexes: ['executions_status'] },
    { name: 'workflow_id and status', filter: { workflow_id: wf, status: 'failed' }, indexes: ['executions_workflow_status', 'executions_workflow', 'executions_status'] },
  ];
  return filters.flatMap(({ name, filter, indexes }) => [
    { name, filter, indexes },
    { name: `${name}, limit 100`, filter: { ...filter, limit: 100 }, indexes },
    { name: `${name}, after`, filter: { ...filter, after: middleId }, indexes },
  ]);
}

const IS_SORT = /(^|->\s+)(Incremental )?Sort\b/m;

describeEachBackend('list and get queries use indexes', (backend) => {
  let database: TestDatabase;
  let db: Db;
  let explain: (query: CompiledQuery, steer?: boolean) => Promise<string>;
  let closeExplainer: () => Promise<void>;
  let analyzeSqlite: () => void = () => {};
  const tenants: Record<'big' | 'small', { ws: string; middleId: string; someExecution: string; variants: Variant[] }> = {} as never;

  beforeAll(async () => {
    database = await createTestDatabase(backend);
    db = await openMigrated(database.url);
    const rows = generateRows();
    for (const [name, tenant] of [['big', BIG], ['small', SMALL]] as const) {
      const mine = rows.filter((r) => r.workspace_id === workspaceId(tenant));
      const middleId = mine[Math.floor(mine.length / 2)]!.id;
      tenants[name] = { ws: workspaceId(tenant), middleId, someExecution: mine[123]!.id, variants: variantsFor(tenant, middleId) };
    }

    if (backend === 'sqlite') {
      const sqlite = new BetterSqlite3(database.url.slice('sqlite:'.length));
      const insert = sqlite.prepare(
        `INSERT INTO executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, completed_at, error_code)
         VALUES (?, ?, ?, ?, 'W', ?, 'null', 0, 0, CASE WHEN ? = 'failed' THEN 'expression_error' END)`,
      );
      const insertStep = sqlite.prepare(`INSERT INTO execution_steps (execution_id, idx, type, status) VALUES (?, ?, 'transform', 'completed')`);
      sqlite.transaction(() => {
        for (const row of rows) {
          insert.run(row.id, row.workspace_id, row.workflow_id, hexId(1), row.status, row.status);
          for (let s = 0; s < STEPS_PER_EXECUTION; s++) insertStep.run(row.id, s);
        }
      })();
      // Plans are checked first as a freshly installed SQLite has them (no statistics),
      // then after ANALYZE (last test).
      explain = async (query) =>
        (sqlite.prepare(`EXPLAIN QUERY PLAN ${query.sql}`).all(...(query.parameters as unknown[])) as Array<{ detail: string }>)
          .map((r) => r.detail)
          .join('\n');
      closeExplainer = async () => {
        sqlite.close();
      };
      analyzeSqlite = () => sqlite.exec('ANALYZE');
    } else {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query(
        `INSERT INTO executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, completed_at, error_code)
         SELECT id, workspace_id, workflow_id, $5, 'W', status, 'null', 0, 0, CASE WHEN status = 'failed' THEN 'expression_error' END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, workspace_id, workflow_id, status)`,
        [rows.map((r) => r.id), rows.map((r) => r.workspace_id), rows.map((r) => r.workflow_id), rows.map((r) => r.status), hexId(1)],
      );
      await client.query(
        `INSERT INTO execution_steps (execution_id, idx, type, status)
         SELECT id, s, 'transform', 'completed' FROM executions, generate_series(0, $1 - 1) AS s`,
        [STEPS_PER_EXECUTION],
      );
      await client.query('ANALYZE');
      explain = async (query, steer = false) => {
        // Steered: sorts, bitmap scans and sequential scans made prohibitively expensive,
        // so the plan shows whether some index can serve the query in id order at all.
        const settings = steer ? ['enable_sort', 'enable_bitmapscan', 'enable_seqscan'] : [];
        await client.query('BEGIN');
        try {
          for (const setting of settings) await client.query(`SET LOCAL ${setting} = off`);
          const result = await client.query(`EXPLAIN ${query.sql}`, query.parameters as unknown[]);
          return result.rows.map((r: Record<string, string>) => r['QUERY PLAN']!).join('\n');
        } finally {
          await client.query('ROLLBACK');
        }
      };
      closeExplainer = () => client.end();
    }
    const count = await db.db.selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(ROWS);
  }, 60_000);

  afterAll(async () => {
    await closeExplainer?.();
    await db?.close();
    await database?.drop();
  });

  /** SQLite: a SEARCH on one of the given indexes, no full scan, no temp b-tree (sort). */
  const checkSqlitePlan = (plan: string, indexes: string[]) => {
    // e.g. "SEARCH executions USING INDEX executions_workflow (workspace_id=? AND workflow_id=? AND id<?)"
    expect(plan, plan).toMatch(new RegExp(`^SEARCH executions USING (COVERING )?INDEX (${indexes.join('|')}) \\(workspace_id=\\?`, 'm'));
    expect(plan, plan).not.toMatch(/^SCAN /m);
    expect(plan, plan).not.toMatch(/TEMP B-TREE/);
  };
  /** PostgreSQL: an ordered index scan on one of the given indexes, no Sort, no Seq Scan, no bitmap. */
  const checkPostgresPlan = (plan: string, indexes: string[]) => {
    expect(plan, plan).toMatch(new RegExp(`Index (Only )?Scan( Backward)? using (${indexes.join('|')}) on executions`));
    expect(plan, plan).not.toMatch(/Seq Scan/);
    expect(plan, plan).not.toMatch(IS_SORT);
    expect(plan, plan).not.toMatch(/Bitmap/);
  };

  /** Checks the captured store query and that the store returns the right rows. */
  const listQuery = async (ws: string, filter: ListFilter) => {
    const query = await capture(backend, (k) => listExecutions(k, ws, filter));
    expect(query.sql).toMatch(/order by "id" desc/i);
    expect(query.sql).toMatch(/limit/i);
    const rows = await listExecutions(db.db, ws, filter);
    expect(rows.length).toBeGreaterThan(0);
    const ids = rows.map((r) => r.id);
    expect(ids).toEqual([...ids].sort().reverse());
    expect(rows.length).toBeLessThanOrEqual(filter.limit ?? 20);
    if (filter.after) expect(ids.every((id) => id < filter.after!)).toBe(true);
    if (filter.workflow_id) expect(rows.every((r) => r.workflow_id === filter.workflow_id)).toBe(true);
    if (filter.status) expect(rows.every((r) => r.status === filter.status)).toBe(true);
    return query;
  };

  it.runIf(backend === 'sqlite')('SQLite: every list query is an index SEARCH in id order, for a big and a small tenant', async () => {
    for (const tenant of Object.values(tenants)) {
      for (const v of tenant.variants) checkSqlitePlan(await explain(await listQuery(tenant.ws, v.filter)), v.indexes);
    }
  });

  it.runIf(backend === 'postgres')('PostgreSQL: an index serves every list query in id order (planner steered off sorts)', async () => {
    // The small tenant: walking the primary key and filtering would read ~100 rows per
    // row returned, so the plan must use the tenant's own index.
    for (const v of tenants.small.variants) checkPostgresPlan(await explain(await listQuery(tenants.small.ws, v.filter), true), v.indexes);
  });

  it.runIf(backend === 'postgres')('PostgreSQL: after ANALYZE the chosen list plans use an ordered index scan, without Sort', async () => {
    // The big tenant holds one row in eight, and ids follow the table's physical order, so
    // walking the primary key backwards with a filter is a legitimate ordered plan too.
    // With workflow_id and status both set, the planner may also pick a bitmap scan of
    // executions_workflow_status + Sort: that index's condition covers every filter, so
    // the sort only ever sees rows the page could return — accepted, no other Sort is.
    const coveredSort = (plan: string) =>
      /Bitmap Index Scan on executions_workflow_status/.test(plan) && /Index Cond: .*workflow_id.*status/.test(plan) && !/Seq Scan/.test(plan);
    const bad: string[] = [];
    for (const v of tenants.big.variants) {
      const plan = await explain(await listQuery(tenants.big.ws, v.filter));
      try {
        checkPostgresPlan(plan, [...v.indexes, 'executions_pkey']);
      } catch {
        if (!(v.filter.workflow_id && v.filter.status && coveredSort(plan))) bad.push(`${v.name}:\n${plan}`);
      }
    }
    expect(bad, bad.join('\n\n')).toEqual([]);
  });

  it('a page deep in the table uses the same plan as the first page', async () => {
    for (const tenant of Object.values(tenants)) {
      const first = await explain(await listQuery(tenant.ws, { limit: 20 }), true);
      const deep = await explain(await listQuery(tenant.ws, { limit: 20, after: tenant.middleId }), true);
      if (backend === 'sqlite') {
        checkSqlitePlan(deep, ['executions_workspace']);
        expect(deep.replace(' AND id<?', '')).toBe(first);
      } else {
        const node = (plan: string) => /Index (Only )?Scan( Backward)? using \w+/.exec(plan)?.[0];
        expect(node(deep), deep).toBeDefined();
        expect(node(deep)).toBe(node(first));
        expect(deep).not.toMatch(IS_SORT);
      }
    }
  });

  it('an execution and its steps are found by primary key, steps in order without a sort', async () => {
    const { ws, someExecution } = tenants.big;
    const getPlan = await explain(await capture(backend, (k) => findExecution(k, ws, someExecution)));
    const stepsPlan = await explain(await capture(backend, (k) => findSteps(k, someExecution)));
    if (backend === 'sqlite') {
      expect(getPlan, getPlan).toMatch(/^SEARCH executions USING INDEX (sqlite_autoindex_executions_1|executions_workspace) \((workspace_id=\? AND )?id=\?\)/m);
      expect(stepsPlan, stepsPlan).toMatch(/^SEARCH execution_steps USING INDEX sqlite_autoindex_execution_steps_1 \(execution_id=\?\)/m);
      expect(`${getPlan}\n${stepsPlan}`).not.toMatch(/TEMP B-TREE|^SCAN/m);
    } else {
      expect(getPlan, getPlan).toMatch(/Index Scan using (executions_pkey|executions_workspace) on executions/);
      expect(stepsPlan, stepsPlan).toMatch(/Index Scan using execution_steps_pk on execution_steps/);
      expect(`${getPlan}\n${stepsPlan}`).not.toMatch(/Seq Scan|Bitmap/);
      expect(`${getPlan}\n${stepsPlan}`).not.toMatch(IS_SORT);
    }
    expect((await findExecution(db.db, ws, someExecution))?.id).toBe(someExecution);
    expect((await findSteps(db.db, someExecution)).map((s) => s.idx)).toEqual([0, 1, 2]);
  });

  it.runIf(backend === 'sqlite')('SQLite keeps index-ordered plans after ANALYZE', async () => {
    analyzeSqlite();
    for (const tenant of Object.values(tenants)) {
      for (const v of tenant.variants) checkSqlitePlan(await explain(await listQuery(tenant.ws, v.filter)), v.indexes);
    }
  });

  // The filters added later (status lists, creation times, trigger, error code) and
  // their combinations: always served by an index that starts with the workspace — never
  // a full scan of the table — and correct under the cursor.
  const extraFilters = (tenant: number): Array<[string, ListFilter]> => [
    ['statuses', { statuses: ['failed', 'stopped'] }],
    ['trigger', { trigger: 'api' }],
    ['error_code', { errorCode: 'expression_error' }],
    ['created_after', { createdAfter: 0 }],
    ['created_before', { createdBefore: 1 }],
    ['workflow_id', { workflow_id: workflowId(tenant, 1) }],
    ['status', { status: 'failed' }],
  ];
  const combinations = (tenant: number, middleId: string): Array<[string, ListFilter]> => {
    const singles = extraFilters(tenant);
    const out: Array<[string, ListFilter]> = [];
    for (let i = 0; i < singles.length; i++) {
      out.push(singles[i]!);
      for (let j = i + 1; j < singles.length; j++) {
        const [a, fa] = singles[i]!;
        const [b, fb] = singles[j]!;
        if ('status' in fa && 'statuses' in fb) continue;
        if ('statuses' in fa && 'status' in fb) continue;
        out.push([`${a} + ${b}`, { ...fa, ...fb }]);
      }
    }
    return out.flatMap(([name, f]) => [[name, f], [`${name}, after`, { ...f, after: middleId }]] as Array<[string, ListFilter]>);
  };

  it('every combination of the other filters is index-backed (no full scan) and returns the right rows', async () => {
    const bad: string[] = [];
    for (const [label, tenant] of [['big', BIG], ['small', SMALL]] as const) {
      const { ws, middleId } = tenants[label];
      for (const [name, filter] of combinations(tenant, middleId)) {
        const query = await capture(backend, (k) => listExecutions(k, ws, filter));
        const plan = await explain(query, true);
        const ok =
          backend === 'sqlite'
            ? /^SEARCH executions USING (COVERING )?INDEX \w+ \(workspace_id=\?/m.test(plan) && !/^SCAN executions/m.test(plan)
            : /Index (Only )?Scan( Backward)? using \w+ on executions|Bitmap Index Scan on executions_\w+/.test(plan) && !/Seq Scan/.test(plan);
        if (!ok) bad.push(`${label} ${name}:\n${plan}`);
        const rows = await listExecutions(db.db, ws, { ...filter, limit: 100 });
        const ids = rows.map((r) => r.id);
        expect(ids).toEqual([...ids].sort().reverse());
        if (filter.after) expect(ids.every((id) => id < filter.after!)).toBe(true);
        if (filter.statuses) expect(rows.every((r) => filter.statuses!.includes(r.status))).toBe(true);
        if (filter.status) expect(rows.every((r) => r.status === filter.status)).toBe(true);
        if (filter.workflow_id) expect(rows.every((r) => r.workflow_id === filter.workflow_id)).toBe(true);
        if (filter.errorCode) expect(rows.every((r) => r.status === 'failed')).toBe(true);
        expect(rows.length, `${label} ${name}`).toBeGreaterThan(0);
      }
    }
    expect(bad, bad.join('\n\n')).toEqual([]);
  });
});
