import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { BACKENDS, type BackendName, createTestDatabase, describeEachBackend, type TestDatabase } from './helpers/backends.js';
import { type Child, spawnSkipflow } from './helpers/child.js';
import { runningExecutions } from './helpers/rows.js';
import { eventually, openMigrated, settle, silentLogger, startServer, startTestServer } from './helpers/server.js';

// Scale-out: roles, fairness across workspaces, signals across processes, and many
// processes on one PostgreSQL database with a worker killed halfway.

const THREE_STEPS = [
  { type: 'transform', expression: 'input.n + 1' },
  { type: 'transform', expression: 'steps[0] * 2' },
  { type: 'transform', expression: "{ 'total': steps[1] }" },
];

async function inParallel<T>(count: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

describeEachBackend('scale-out: roles and fairness', (backend: BackendName) => {
  it('an api-only server runs nothing; a worker-only server runs what the api accepted', async () => {
    const api = await startTestServer(backend, { role: 'api' });
    try {
      expect(api.server.worker).toBeNull();
      const wf = (await api.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'w', steps: THREE_STEPS } })).json();
      const run = (await api.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async`, body: { input: { n: 1 } } })).json();
      await settle(300);
      const before = (await api.request({ method: 'GET', url: `/api/v1/executions/${run.execution_id}` })).json();
      expect(before.status).toBe('running');
      const worker = await startServer(loadConfig({}, { databaseUrl: api.database.url, role: 'worker', leaseMs: 2000, pollIntervalMs: 100, logLevel: 'silent' }), {
        logger: silentLogger,
      });
      try {
        expect(worker.app).toBeNull();
        const done = await eventually(async () => {
          const res = (await api.request({ method: 'GET', url: `/api/v1/executions/${run.execution_id}?include_step_results=true` })).json();
          return res.status === 'success' ? res : null;
        });
        expect(done.steps[2].result).toEqual({ total: 4 });
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
    }
  });

  it('a workspace with a big backlog does not starve another workspace', async () => {
    const api = await startTestServer(backend, { role: 'api' });
    try {
      const big = api;
      const small = await api.createWorkspace('small', 10);
      const wfBig = (await big.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'big', steps: THREE_STEPS } })).json();
      const wfSmall = (await big.request({ method: 'POST', url: '/api/v1/workflows', key: small.apiKey, body: { name: 'small', steps: THREE_STEPS } })).json();
      const BACKLOG = 1500;
      await inParallel(BACKLOG, 25, () => big.request({ method: 'POST', url: `/api/v1/workflows/${wfBig.id}/run-async`, body: { input: { n: 1 } } }));
      const mine = (await big.request({ method: 'POST', url: `/api/v1/workflows/${wfSmall.id}/run-async`, key: small.apiKey, body: { input: { n: 1 } } })).json();
      // Oldest-first claiming would run the small workspace's execution last of all.
      const db = await openMigrated(api.database.url);
      const worker = await startServer(
        loadConfig({}, { databaseUrl: api.database.url, role: 'worker', workerConcurrency: 4, leaseMs: 2000, pollIntervalMs: 100, logLevel: 'silent' }),
        { logger: silentLogger },
      );
      try {
        const bigDoneWhenSmallFinished = await eventually(async () => {
          const row = await db.db.selectFrom('executions').select('status').where('id', '=', mine.execution_id).executeTakeFirstOrThrow();
          if (row.status !== 'success') return null;
          const { n } = await db.db
            .selectFrom('executions')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('workflow_id', '=', wfBig.id)
            .where('status', '=', 'success')
            .executeTakeFirstOrThrow();
          return { n: Number(n) };
        }, 30_000, 5);
        expect(bigDoneWhenSmallFinished.n).toBeLessThan(BACKLOG / 2);
      } finally {
        await worker.close();
        await db.close();
      }
    } finally {
      await api.close();
    }
  });
});

describe.runIf(BACKENDS.includes('postgres'))('scale-out: many processes on one PostgreSQL', () => {
  const children: Child[] = [];
  let database: TestDatabase | undefined;
  afterEach(async () => {
    for (const child of children.splice(0)) child.process.kill('SIGKILL');
    await database?.drop();
    database = undefined;
  });

  async function spawnRole(role: 'api' | 'worker', env: Record<string, string> = {}): Promise<Child> {
    const child = spawnSkipflow(['serve', '--port', '0', '--role', role], {
      SKIPFLOW_DATABASE_URL: database!.url,
      SKIPFLOW_LEASE_MS: '2000',
      SKIPFLOW_RATE_LIMIT: '0',
      ...env,
    });
    children.push(child);
    return child;
  }

  async function startApi(): Promise<{ port: number; key: string; call: (method: string, path: string, body?: unknown) => Promise<Response> }> {
    const api = await spawnRole('api');
    const port = await api.waitForPort();
    const key = /sk_live_[0-9A-Za-z]{43}/.exec(api.output())![0];
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${port}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    return { port, key, call };
  }

  it('new work and stops travel across processes at once (LISTEN/NOTIFY, not the poll)', async () => {
    database = await createTestDatabase('postgres');
    const api = await startApi();
    const worker = await spawnRole('worker', { SKIPFLOW_POLL_INTERVAL_MS: '60000' });
    const db = await openMigrated(database.url);
    try {
      // The worker logs that it started once it LISTENs.
      await eventually(async () => worker.output().includes('SkipFlow started'), 15_000);
      const wf = (await (await api.call('POST', '/api/v1/workflows', { name: 'fast', steps: THREE_STEPS })).json()) as { id: string };
      const t0 = Date.now();
      const run = (await (await api.call('POST', `/api/v1/workflows/${wf.id}/run-async`, { input: { n: 1 } })).json()) as { execution_id: string };
      await eventually(async () => ((await (await api.call('GET', `/api/v1/executions/${run.execution_id}`)).json()) as { status: string }).status === 'success', 5000);
      expect(Date.now() - t0).toBeLessThan(3000);

      const spin = (await (await api.call('POST', '/api/v1/workflows', {
        name: 'spin',
        steps: [{ type: 'transform', timeout_ms: 30_000, expression: '($f := function($x){ $f($x) }; $f(1))' }],
      })).json()) as { id: string };
      const long = (await (await api.call('POST', `/api/v1/workflows/${spin.id}/run-async`, {})).json()) as { execution_id: string };
      // A transform is not marked before it runs: it is in flight once the worker holds it.
      await eventually(async () => {
        const row = await db.db.selectFrom('executions').select('lease_owner').where('id', '=', long.execution_id).executeTakeFirst();
        return row?.lease_owner !== null && row?.lease_owner !== undefined;
      }, 5000);
      const stop = await api.call('POST', `/api/v1/executions/${long.execution_id}/stop`);
      expect(stop.status).toBe(200);
      const stoppedAt = Date.now();
      // The worker lets go of it (its lease is no longer renewed) within a second.
      await eventually(async () => {
        const row = await db.db.selectFrom('executions').select(['status']).where('id', '=', long.execution_id).executeTakeFirstOrThrow();
        const step = await db.db.selectFrom('execution_steps').select(['status', 'error_code']).where('execution_id', '=', long.execution_id).executeTakeFirstOrThrow();
        return row.status === 'stopped' && step.status === 'stopped' && step.error_code === 'stopped';
      }, 2000);
      expect(Date.now() - stoppedAt).toBeLessThan(1500);
    } finally {
      await db.close();
    }
  }, 30_000);

  it('1 api + 3 workers, 2,000 executions, one worker killed halfway: everything ends success, exactly once', async () => {
    database = await createTestDatabase('postgres');
    const api = await startApi();
    const workers = await Promise.all([1, 2, 3].map(() => spawnRole('worker', { SKIPFLOW_WORKER_CONCURRENCY: '25', SKIPFLOW_POLL_INTERVAL_MS: '200' })));
    const db = await openMigrated(database.url);
    try {
      const ws = (await (await api.call('GET', '/api/v1/workspace')).json()) as { credits: number };
      await db.db.updateTable('workspaces').set({ credits: 5000 }).execute();
      const steps = [
        { type: 'transform', expression: 'input.n + 1' },
        { type: 'delay', seconds: 0.2 },
        { type: 'transform', expression: 'steps[0] * 2' },
        { type: 'transform', expression: "{ 'n': input.n, 'total': steps[2] }" },
      ];
      const wf = (await (await api.call('POST', '/api/v1/workflows', { name: 'multi', steps })).json()) as { id: string };
      const TOTAL = 2000;
      const statuses = await inParallel(TOTAL, 40, async (n) => (await api.call('POST', `/api/v1/workflows/${wf.id}/run-async`, { input: { n } })).status);
      expect(statuses.every((s) => s === 202)).toBe(true);
      expect(ws.credits).toBe(1000);

      const successCount = async () =>
        Number((await db.db.selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'success').executeTakeFirstOrThrow()).n);
      await eventually(async () => (await successCount()) >= TOTAL / 2, 60_000, 50);
      workers[0]!.process.kill('SIGKILL');
      await eventually(async () => (await successCount()) === TOTAL, 90_000, 200);

      const executions = await db.db.selectFrom('executions').selectAll().execute();
      expect(executions).toHaveLength(TOTAL);
      expect(executions.every((e) => e.status === 'success' && e.completed_at !== null && e.lease_owner === null)).toBe(true);
      const stepRows = await db.db.selectFrom('execution_steps').selectAll().execute();
      expect(stepRows).toHaveLength(TOTAL * steps.length);
      expect(stepRows.every((s) => s.status === 'completed' && s.result !== null)).toBe(true);
      // Every result is the one its own input gives: no step saw another attempt's state.
      const inputs = new Map(executions.map((e) => [e.id, (JSON.parse(e.input) as { n: number }).n]));
      for (const s of stepRows.filter((r) => r.idx === 3)) {
        const n = inputs.get(s.execution_id)!;
        expect(JSON.parse(s.result!)).toEqual({ n, total: (n + 1) * 2 });
      }
      // A step runs again only after a worker died under it.
      expect(stepRows.every((s) => s.interruptions <= 1)).toBe(true);
      const workspace = await db.db.selectFrom('workspaces').selectAll().executeTakeFirstOrThrow();
      expect(workspace.credits).toBe(5000 - TOTAL);
      expect(await runningExecutions(db.db)).toBe(0);
    } finally {
      await db.close();
    }
  }, 180_000);
});
