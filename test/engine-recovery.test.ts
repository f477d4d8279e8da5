import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import type { Db } from '../src/db/open.js';
import { Checkpointer } from '../src/engine/checkpoint.js';
import { claimBatch } from '../src/engine/lease.js';
import { formatTimestamp } from '../src/lib/time.js';
import type { Server } from '../src/server.js';
import { createWorkspaceWithKey } from '../src/workspaces/create-workspace.js';
import { type BackendName, type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { putStep, runningExecutions, stepRows, stepRowsOf } from './helpers/rows.js';
import { type TestServer, eventually, openMigrated, settle, silentLogger, startServer, startTestServer } from './helpers/server.js';

// docs/api.md#execution, how an execution runs under failure: a completed step is never recomputed; a
// step in flight when its worker died runs again (at-least-once) without using its
// retry budget, and fails with `worker_lost` after 5 interruptions; a worker that lost
// its lease writes nothing (fencing); and a `kill -9` of a real `skipflow serve`
// process loses nothing.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const DEAD_OWNER = 'dead-host:99999:dead00';

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

// ---------------------------------------------------------------------------------
// Simulated crashes: an API-only server makes the executions (no worker runs them),
// the test rewrites their rows as a dead worker would have left them, then a worker
// is started on the same database.

describeEachBackend('engine: recovery of interrupted steps', (backend) => {
  let t: TestServer | undefined;
  let worker: Server | undefined;
  afterEach(async () => {
    await worker?.close();
    worker = undefined;
    await t?.close();
    t = undefined;
  });

  async function apiOnly(): Promise<TestServer> {
    t = await startTestServer(backend, { role: 'api', leaseMs: 1500, pollIntervalMs: 100 });
    return t;
  }

  async function execution(steps: unknown[], input: unknown = {}): Promise<string> {
    const wf = await t!.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'engine-recovery', steps } });
    expect(wf.statusCode, wf.body).toBe(201);
    const res = await t!.request({ method: 'POST', url: `/api/v1/workflows/${wf.json().id}/run-async`, body: { input } });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().execution_id as string;
  }

  /** Leaves the rows as a worker that died during step `inFlight` would have. */
  async function crashDuring(id: string, inFlight: number, opts: { interruptions?: number; completedResults?: unknown[]; wakeAt?: number } = {}) {
    const handle = t!.server.deps.db;
    const db = handle.db;
    const now = Date.now();
    for (let i = 0; i < inFlight; i++) {
      await putStep(handle, id, i, { status: 'completed', result: JSON.stringify(opts.completedResults?.[i] ?? null), attempts: 1, started_at: now - 3000 + i, completed_at: now - 2900 + i });
    }
    await putStep(handle, id, inFlight, { status: 'running', phase: 'attempt', attempts: 1, interruptions: opts.interruptions ?? 0, started_at: now - 2000, wake_at: opts.wakeAt ?? null });
    await db
      .updateTable('executions')
      // The claim that takes the lapsed lease over counts one more interruption.
      .set({ current_step: inFlight, lease_owner: DEAD_OWNER, lease_token: 7, available_at: now - 1, interruptions: opts.interruptions ?? 0 })
      .where('id', '=', id)
      .execute();
  }

  async function startWorker(overrides: Partial<Config> = {}): Promise<Server> {
    worker = await startServer({ ...t!.config, role: 'worker', ...overrides }, { logger: silentLogger, listen: false });
    return worker;
  }

  async function settled(id: string, timeoutMs = 8000) {
    const db = t!.server.deps.db.db;
    return eventually(async () => {
      const execution = await db.selectFrom('executions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      if (execution.status === 'running') return null;
      const steps = await stepRows(db, id);
      return { execution, steps };
    }, timeoutMs, 20);
  }

  const runningCount = () => runningExecutions(t!.server.deps.db.db, t!.workspaceId);

  it('runs an interrupted step again (interruptions + 1, attempts unchanged) and never recomputes completed steps', async () => {
    await apiOnly();
    const id = await execution([
      { type: 'transform', expression: '"recomputed!"' },
      { type: 'transform', expression: '"second ran after " & steps[0]' },
      { type: 'transform', expression: '[steps[0], steps[1]]' },
    ]);
    await crashDuring(id, 1, { completedResults: ['from before the crash'] });
    const before = (await stepRows(t!.server.deps.db.db, id))[0]!;
    await startWorker();
    const { execution: e, steps } = await settled(id);
    expect(e.status).toBe('success');
    expect(e.lease_owner).toBeNull();
    expect(steps[0]).toEqual(before); // untouched, not recomputed
    expect(steps[1]).toMatchObject({ status: 'completed', attempts: 1, interruptions: 1, result: JSON.stringify('second ran after from before the crash') });
    expect(steps[2]).toMatchObject({ status: 'completed', attempts: 1, interruptions: 0 });
    expect(JSON.parse(steps[2]!.result!)).toEqual(['from before the crash', 'second ran after from before the crash']);
    expect(await runningCount()).toBe(0);
  });

  it('fails a step with worker_lost on its 5th interruption', async () => {
    await apiOnly();
    const id = await execution([
      { type: 'transform', expression: '1' },
      { type: 'transform', name: 'crashy', expression: '2' },
      { type: 'transform', expression: '3' },
    ]);
    const other = await execution([{ type: 'transform', expression: '1' }, { type: 'transform', continue_on_error: true, expression: '2' }, { type: 'transform', expression: '$type(steps[1])' }]);
    await crashDuring(id, 1, { interruptions: 4, completedResults: [1] });
    await crashDuring(other, 1, { interruptions: 4, completedResults: [1] });
    // Just below the limit (3 before, the 4th now) the step still runs.
    const third = await execution([{ type: 'transform', expression: '"survives"' }]);
    await crashDuring(third, 0, { interruptions: 3 });
    await startWorker();

    const { execution: e, steps } = await settled(id);
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('worker_lost');
    expect(e.error_step_index).toBe(1);
    expect(typeof e.error).toBe('string');
    expect(steps[1]).toMatchObject({ status: 'failed', error_code: 'worker_lost', result: null });
    expect(steps[1]!.completed_at).not.toBeNull();
    expect(steps[2]!.status).toBe('pending');
    expect(steps[0]!.status).toBe('completed');

    const tolerated = await settled(other);
    expect(tolerated.execution.status).toBe('success');
    expect(tolerated.steps[1]).toMatchObject({ status: 'failed', error_code: 'worker_lost' });
    expect(tolerated.steps[2]!.result).toBe(JSON.stringify('null'));

    const survived = await settled(third);
    expect(survived.execution.status).toBe('success');
    expect(survived.steps[0]).toMatchObject({ status: 'completed', interruptions: 4, result: JSON.stringify('survives') });
    expect(await runningCount()).toBe(0);
  });

  it('a delay interrupted just after waking keeps its stored wake-up time (does not sleep again)', async () => {
    await apiOnly();
    const id = await execution([{ type: 'delay', seconds: 30 }, { type: 'transform', expression: 'steps[0].waited_until' }]);
    const wake = Math.floor(Date.now() / 1000) * 1000 - 5000;
    await crashDuring(id, 0, { wakeAt: wake });
    await startWorker();
    const { execution: e, steps } = await settled(id, 4000);
    expect(e.status).toBe('success');
    expect(steps[0]).toMatchObject({ status: 'completed', interruptions: 1, result: JSON.stringify({ waited_until: formatTimestamp(wake) }) });
  });

  it('takes over an execution whose worker died (stale lease) and fences the dead worker out', async () => {
    await apiOnly();
    const handle: Db = t!.server.deps.db;
    const db = handle.db;
    const x = await execution([{ type: 'transform', expression: '"x"' }, { type: 'transform', expression: '"x2"' }]);
    const y = await execution([{ type: 'transform', expression: '"y"' }]);

    // A "zombie" worker claims both, with a lease so short it lapses at once…
    const zombie = await claimBatch(handle, { owner: 'zombie', limit: 10, leaseMs: 1 });
    expect(zombie.map((c) => c.id).sort()).toEqual([x, y].sort());
    await settle(30); // the 1 ms leases lapse
    // …and a live worker takes them over: the fencing token moves on.
    const live = await claimBatch(handle, { owner: 'live', limit: 10, leaseMs: 60_000 });
    expect(live.map((c) => c.id).sort()).toEqual([x, y].sort());
    const tokenOf = (list: typeof live, id: string) => list.find((c) => c.id === id)!.lease_token;
    expect(tokenOf(live, x)).toBe(tokenOf(zombie, x) + 1);

    const snapshot = async () => ({
      executions: await db.selectFrom('executions').selectAll().where('id', 'in', [x, y]).orderBy('id').execute(),
      steps: await stepRowsOf(db, [x, y]),
      workspace: await db.selectFrom('workspaces').selectAll().where('id', '=', t!.workspaceId).executeTakeFirstOrThrow(),
      running: await runningExecutions(db, t!.workspaceId),
    });
    const before = await snapshot();
    expect(before.running).toBe(2);

    const checkpoints = new Checkpointer(handle, silentLogger);
    const finish = async (id: string, token: number, result: string) =>
      (await checkpoints.submit({
        executionId: id,
        leaseToken: token,
        steps: [{ ...before.steps.find((s) => s.execution_id === id && s.idx === 0)!, status: 'completed', phase: null, result: JSON.stringify(result), attempts: 1, started_at: Date.now(), completed_at: Date.now() }],
        move: { kind: 'finish', status: 'success', currentStep: 1, completedAt: Date.now(), error: null },
      })) === 'applied';

    // The zombie's checkpoints (stale tokens) are refused and write nothing.
    expect(await finish(x, tokenOf(zombie, x), 'zombie')).toBe(false);
    expect(await Promise.all([finish(x, tokenOf(zombie, x), 'zombie'), finish(y, tokenOf(zombie, y), 'zombie')])).toEqual([false, false]);
    expect(await snapshot()).toEqual(before);

    // In one group commit, the stale one is refused while the current one applies.
    const [stale, current] = await Promise.all([finish(x, tokenOf(zombie, x), 'zombie'), finish(y, tokenOf(live, y), 'live')]);
    expect([stale, current]).toEqual([false, true]);
    const after = await snapshot();
    expect(after.executions.find((r) => r.id === x)).toEqual(before.executions.find((r) => r.id === x));
    expect(after.steps.filter((r) => r.execution_id === x)).toEqual(before.steps.filter((r) => r.execution_id === x));
    expect(after.executions.find((r) => r.id === y)!.status).toBe('success');
    expect(after.steps.find((r) => r.execution_id === y)!.result).toBe(JSON.stringify('live'));
    expect(after.running).toBe(1);

    // A stopped execution fences even the current token.
    const stop = await t!.request({ method: 'POST', url: `/api/v1/executions/${x}/stop`, headers: { 'content-type': 'application/json' } });
    expect(stop.statusCode).toBe(200);
    const stopped = await snapshot();
    expect(await finish(x, tokenOf(live, x), 'live after stop')).toBe(false);
    expect(await snapshot()).toEqual(stopped);
    expect(stopped.running).toBe(0);
  });
});

// ---------------------------------------------------------------------------------
// A real process killed with SIGKILL in the middle of its work.

describeEachBackend('engine: kill -9 of a serve process', (backend: BackendName) => {
  const children = new Set<ChildProcess>();
  const closers: Array<() => Promise<void>> = [];
  let database: TestDatabase | undefined;
  let inspect: Db | undefined;

  beforeAll(() => {
    if (statSync(CLI, { throwIfNoEntry: false }) === undefined || newestMtime(join(ROOT, 'src')) > statSync(CLI).mtimeMs) {
      throw new Error('dist/ is missing or older than src/: run `npm run build` before this test');
    }
  });

  afterEach(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    }
    children.clear();
    for (const close of closers.splice(0)) await close();
    await inspect?.close();
    inspect = undefined;
    await database?.drop();
    database = undefined;
  });

  async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as { port: number }).port;
        server.close(() => resolve(port));
      });
    });
  }

  async function serve(url: string, apiKey: string) {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port)], {
      cwd: ROOT,
      env: {
        ...process.env,
        SKIPFLOW_DATABASE_URL: url,
        SKIPFLOW_LEASE_MS: '1500',
        SKIPFLOW_POLL_INTERVAL_MS: '100',
        SKIPFLOW_RATE_LIMIT: '0',
        SKIPFLOW_ALLOW_PRIVATE_NETWORK: '1',
        LOG_LEVEL: 'silent',
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.resume();
    const base = `http://127.0.0.1:${port}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${stderr}`);
        return (await call('GET', '/api/v1/workspace').catch(() => ({ status: 0 }))).status === 200;
      },
      20_000,
      50,
    );
    return { child, call };
  }

  it('loses nothing: every execution ends success, completed steps keep their results, interrupted steps run again', async () => {
    database = await createTestDatabase(backend);
    inspect = await openMigrated(database.url);
    const db = inspect.db;
    const ws = await db.transaction().execute((trx) => createWorkspaceWithKey(trx, { name: 'Recovery', credits: 1000, now: Date.now() }));

    const first = await serve(database.url, ws.api_key);
    const mk = async (steps: unknown[]) => {
      const res = await first.call('POST', '/api/v1/workflows', { name: 'kill-9', steps });
      expect(res.status).toBe(201);
      return res.json.id as string;
    };
    const sleeper = await mk([
      { type: 'transform', expression: '{ "i": input.i, "at": $millis() }' },
      { type: 'delay', seconds: 1.5 },
      { type: 'transform', expression: 'steps[0].i * 2' },
    ]);
    // A step with effects that takes a while: an http call that a loopback server
    // answers after 2.5 s (it counts the requests: at-least-once, sent again).
    let hits = 0;
    const slow = createHttpServer((_req, res) => {
      hits++;
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('"slow done"'), 2500);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => slow.close(() => resolve())));
    const busy = await mk([
      { type: 'http', url: `http://127.0.0.1:${(slow.address() as { port: number }).port}/slow`, timeout_ms: 30_000 },
      { type: 'transform', expression: 'steps[0].body & "!"' },
    ]);
    const start = async (wf: string, input: unknown) => {
      const res = await first.call('POST', `/api/v1/workflows/${wf}/run-async`, { input });
      expect(res.status).toBe(202);
      return res.json.execution_id as string;
    };
    const sleepers = await Promise.all(Array.from({ length: 20 }, (_, i) => start(sleeper, { i })));
    await eventually(
      async () => {
        const rows = await db.selectFrom('execution_steps').select(['phase']).where('execution_id', 'in', sleepers).where('idx', '=', 1).execute();
        return rows.filter((r) => r.phase === 'sleep').length === 20;
      },
      10_000,
      10,
    );
    // Then two executions whose first step is certainly in flight when the process dies.
    const busies = await Promise.all([start(busy, {}), start(busy, {})]);
    const all = [...sleepers, ...busies];
    await eventually(
      async () => {
        const rows = await db.selectFrom('execution_steps').select(['phase']).where('execution_id', 'in', busies).where('idx', '=', 0).execute();
        return rows.filter((r) => r.phase === 'attempt').length === 2 && hits === 2;
      },
      10_000,
      5,
    );
    const captured = await db.selectFrom('execution_steps').selectAll().where('execution_id', 'in', sleepers).orderBy('execution_id').orderBy('idx').execute();
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    expect(first.child.signalCode).toBe('SIGKILL');

    // What the dead process left: busy executions leased to it, mid-attempt.
    const leftover = await db.selectFrom('executions').select(['id', 'lease_owner', 'status']).where('id', 'in', busies).execute();
    for (const row of leftover) {
      expect(row.status).toBe('running');
      expect(row.lease_owner).not.toBeNull();
    }

    const second = await serve(database.url, ws.api_key);
    await eventually(
      async () => {
        const running = await db.selectFrom('executions').select('id').where('id', 'in', all).where('status', '=', 'running').execute();
        return running.length === 0;
      },
      25_000,
      50,
    );

    const executions = await db.selectFrom('executions').selectAll().where('id', 'in', all).execute();
    for (const e of executions) {
      expect(e.status, `${e.id}: ${e.error}`).toBe('success');
      expect(e.lease_owner).toBeNull();
      expect(e.available_at).toBeNull();
    }
    const steps = await db.selectFrom('execution_steps').selectAll().where('execution_id', 'in', all).orderBy('execution_id').orderBy('idx').execute();
    expect(steps.length).toBe(20 * 3 + 2 * 2);
    for (const s of steps) {
      expect(s.status).toBe('completed');
      expect(s.attempts).toBe(1);
      expect(s.phase).toBeNull();
    }
    const byKey = (rows: typeof steps) => new Map(rows.map((r) => [`${r.execution_id}:${r.idx}`, r]));
    const now = byKey(steps);
    for (const old of captured) {
      const row = now.get(`${old.execution_id}:${old.idx}`)!;
      if (old.idx === 0) {
        // Completed before the kill: kept exactly (result computed with $millis() would differ).
        expect(row).toEqual(old);
      } else if (old.idx === 1) {
        expect(row.started_at).toBe(old.started_at);
        expect(row.completed_at!).toBeGreaterThanOrEqual(old.wake_at!);
        expect(row.result).toBe(JSON.stringify({ waited_until: formatTimestamp(old.wake_at) }));
        expect(row.interruptions).toBe(0);
      }
    }
    for (const id of sleepers) {
      const i = JSON.parse(now.get(`${id}:0`)!.result!).i as number;
      expect(now.get(`${id}:2`)!.result).toBe(String(i * 2));
    }
    for (const id of busies) {
      expect(now.get(`${id}:0`)).toMatchObject({ interruptions: 1 });
      expect(JSON.parse(now.get(`${id}:0`)!.result!).body).toBe('slow done');
      expect(now.get(`${id}:1`)!.result).toBe(JSON.stringify('slow done!'));
    }
    expect(hits).toBe(4); // each busy request sent twice: before the kill and after it
    const workspace = await db.selectFrom('workspaces').select(['credits']).where('id', '=', ws.workspace_id).executeTakeFirstOrThrow();
    expect(await runningExecutions(db, ws.workspace_id)).toBe(0);
    expect(workspace.credits).toBe(1000 - 22);
    // The API of the new process agrees.
    const view = await second.call('GET', `/api/v1/executions/${busies[0]}?include_step_results=true`);
    expect(view.json).toMatchObject({ status: 'success', steps: [{ status: 'completed', attempts: 1 }, { status: 'completed', result: 'slow done!' }] });
  });
});
