import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import type { ExecutionStepRow } from '../src/db/schema.js';
import { stepsOf } from '../src/executions/store.js';
import { runningExecutions } from './helpers/rows.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// A bounded soak: a steady run-async load (10 writers, some with Idempotency-Keys and
// their replays), readers polling executions (with and without step results) and
// walking list pages, and random stops mixed in — for SKIPFLOW_SOAK_SECONDS per backend
// (default 10, so about 20 s for the file). Live, every read must be self-consistent;
// after the drain: credits spent = fresh 202s = executions, every execution terminal,
// every step of a success execution completed exactly once, no success with a pending
// step, nothing left running, and the heap (after a forced GC) did not keep growing.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SOAK_MS = Math.max(2, Number(process.env.SKIPFLOW_SOAK_SECONDS) || 30) * 1000;
const WRITERS = 10;
const READERS = 3;
const INITIAL_CREDITS = 1_000_000;

/** A forced full GC when V8 lets us expose it; otherwise null (then rss is compared). */
function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

describeEachBackend('soak', (backend) => {
  let t: TestServer;
  let workspace: { workspaceId: string; apiKey: string };

  beforeAll(async () => {
    t = await startTestServer(backend, { workerConcurrency: 50, leaseMs: 2000, pollIntervalMs: 100 });
    workspace = await t.createWorkspace('soak', INITIAL_CREDITS);
  });
  afterAll(() => t?.close());

  const call = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) =>
    t.request({
      method,
      url,
      key: workspace.apiKey,
      body,
      // Like the official client: JSON content type on POSTs, even with no body.
      headers: { ...(method === 'POST' && body === undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    });

  function expectErrorShape(res: { statusCode: number; body: string }, status: number, code: string) {
    expect(res.statusCode, res.body).toBe(status);
    const body = JSON.parse(res.body) as Json;
    expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
    expect(body.error_code).toBe(code);
  }

  /** What a single read may show, whatever the timing. */
  function checkView(e: Json, withSteps: boolean) {
    expect(['running', 'success', 'failed', 'stopped']).toContain(e.status);
    if (e.status === 'running') expect(e.completed_at).toBeNull();
    else expect(e.completed_at).not.toBeNull();
    if (!withSteps) {
      expect(e.steps).toBeUndefined();
      return;
    }
    const statuses = (e.steps as Json[]).map((s) => s.status as string);
    if (e.status === 'success') {
      expect(statuses.every((s) => s === 'completed'), `success with steps ${statuses.join(',')}`).toBe(true);
    } else if (e.status === 'failed') {
      expect(statuses[e.error_step_index]).toBe('failed');
      expect(statuses.slice(e.error_step_index + 1).every((s) => s === 'pending')).toBe(true);
    } else if (e.status === 'stopped') {
      expect(statuses).not.toContain('running');
    }
    // Steps run strictly in order: nothing after a pending step has started.
    const firstPending = statuses.indexOf('pending');
    if (firstPending >= 0) expect(statuses.slice(firstPending).every((s) => s === 'pending')).toBe(true);
  }

  it(`stays consistent and bounded under ${SOAK_MS / 1000} s of mixed load`, async () => {
    const gc = exposeGc();
    const mk = async (name: string, steps: unknown[]) => {
      const res = await call('POST', '/api/v1/workflows', { name, steps });
      expect(res.statusCode, res.body).toBe(201);
      return { id: res.json().id as string, steps: steps.length };
    };
    const quick = await mk('quick', [
      { type: 'transform', expression: 'input.n + 1' },
      { type: 'transform', expression: 'steps[0] * 2' },
      { type: 'transform', expression: '{ "n": input.n, "total": steps[1] }' },
    ]);
    const sleepy = await mk('sleepy', [
      { type: 'transform', expression: 'input.n' },
      { type: 'delay', seconds: 0.3 },
      { type: 'transform', expression: 'steps[0] & "!"' },
    ]);
    const failing = await mk('failing', [
      { type: 'transform', expression: '1' },
      { type: 'transform', expression: '$error("planned failure")' },
      { type: 'transform', expression: '"never"' },
    ]);
    const workflows = [quick, quick, sleepy, failing];

    const ids: string[] = [];
    let fresh = 0;
    let replays = 0;
    let stops200 = 0;
    let stops400 = 0;
    let reads = 0;
    let pages = 0;
    const heap: number[] = [];
    const rss: number[] = [];
    const until = Date.now() + SOAK_MS;
    let running = true;
    // Steady, not ever-growing: writers hold back while the backlog of running
    // executions is above this (so a long soak stays bounded and drains in time).
    const MAX_BACKLOG = 300;
    let backlog = 0;
    let throttled = 0;

    const writer = async (w: number) => {
      let n = 0;
      while (Date.now() < until) {
        const wf = pick(workflows);
        const keyed = n % 3 === 0;
        const key = `soak-${w}-${n}`;
        const res = await call('POST', `/api/v1/workflows/${wf.id}/run-async`, { input: { n } }, keyed ? { 'idempotency-key': key } : {});
        expect(res.statusCode, res.body).toBe(202);
        expect(res.headers['x-idempotent-replayed']).toBeUndefined();
        fresh++;
        ids.push(res.json().execution_id as string);
        if (keyed && n % 2 === 0) {
          // A client retry: the replay, byte for byte, charging nothing.
          const again = await call('POST', `/api/v1/workflows/${wf.id}/run-async`, { input: { n } }, { 'idempotency-key': key });
          expect({ status: again.statusCode, body: again.body, replayed: again.headers['x-idempotent-replayed'] }).toEqual({ status: 202, body: res.body, replayed: 'true' });
          replays++;
        }
        n++;
        await sleep(10 + Math.random() * 20);
        while (backlog > MAX_BACKLOG && Date.now() < until) {
          throttled++;
          await sleep(50);
        }
      }
    };
    const reader = async () => {
      while (running) {
        if (ids.length > 0) {
          const id = pick(ids.slice(-200));
          const withSteps = Math.random() < 0.5;
          const res = await call('GET', `/api/v1/executions/${id}?include_step_results=${withSteps}`);
          expect(res.statusCode, res.body).toBe(200);
          checkView(res.json(), withSteps);
          reads++;
        }
        if (Math.random() < 0.2) {
          // Walk two list pages (optionally filtered): strictly newest first, nothing repeated.
          const filter = pick(['', '&status=running', '&status=success', `&workflow_id=${quick.id}`]);
          const first = await call('GET', `/api/v1/executions?limit=25${filter}`);
          expect(first.statusCode, first.body).toBe(200);
          const items = first.json().executions as Json[];
          let all = items.map((x) => x.execution_id as string);
          if (items.length === 25) {
            const second = await call('GET', `/api/v1/executions?limit=25${filter}&after=${all[all.length - 1]}`);
            expect(second.statusCode, second.body).toBe(200);
            all = all.concat((second.json().executions as Json[]).map((x) => x.execution_id as string));
          }
          expect(new Set(all).size).toBe(all.length);
          expect([...all].sort().reverse()).toEqual(all);
          pages++;
        }
        await sleep(5);
      }
    };
    const stopper = async () => {
      while (Date.now() < until) {
        await sleep(40);
        if (ids.length === 0) continue;
        const id = pick(ids.slice(-30));
        const res = await call('POST', `/api/v1/executions/${id}/stop`);
        if (res.statusCode === 200) {
          expect(res.json()).toStrictEqual({ execution_id: id, status: 'stopped' });
          stops200++;
          const after = await call('GET', `/api/v1/executions/${id}?include_step_results=true`);
          expect(after.json().status).toBe('stopped');
          checkView(after.json(), true);
        } else {
          expectErrorShape(res, 400, 'execution_not_running');
          stops400++;
        }
      }
    };
    const sampler = async () => {
      while (running) {
        backlog = Number(
          (await t.server.deps.db.db.selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', workspace.workspaceId).where('status', '=', 'running').executeTakeFirstOrThrow()).n,
        );
        gc?.();
        const m = process.memoryUsage();
        heap.push(m.heapUsed);
        rss.push(m.rss);
        await sleep(250);
      }
    };

    const sampling = sampler();
    const readers = Array.from({ length: READERS }, () => reader());
    await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), stopper()]);
    // Drain: readers keep reading while the last executions finish.
    const db = t.server.deps.db.db;
    const ws = workspace.workspaceId;
    const loadEndedAt = Date.now();
    const runningAtEnd = Number(
      (await db.selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', ws).where('status', '=', 'running').executeTakeFirstOrThrow()).n,
    );
    await eventually(
      async () => {
        const row = await db.selectFrom('executions').select('id').where('workspace_id', '=', ws).where('status', '=', 'running').limit(1).executeTakeFirst();
        return row === undefined;
      },
      30_000,
      100,
    );
    const drainMs = Date.now() - loadEndedAt;
    running = false;
    await Promise.all([...readers, sampling]);

    // Ledger: credits spent = fresh 202s = executions created.
    const executions = await db.selectFrom('executions').selectAll().where('workspace_id', '=', ws).execute();
    const wsRow = { credits: (await db.selectFrom('workspaces').select(['credits']).where('id', '=', ws).executeTakeFirstOrThrow()).credits, running_executions: await runningExecutions(db, ws) };
    expect(executions).toHaveLength(fresh);
    expect(new Set(ids).size).toBe(fresh);
    expect(wsRow).toEqual({ credits: INITIAL_CREDITS - fresh, running_executions: 0 });

    // Every execution terminal; every step row accounted for.
    const stepsPer = new Map(workflows.map((w) => [w.id, w.steps]));
    // Every step of every execution, its row merged with its snapshot (a step's row is
    // written when it first changes; pending steps have none).
    const byExecution = new Map<string, ExecutionStepRow[]>();
    for (const e of executions) byExecution.set(e.id, await stepsOf(db, e));
    const tally: Record<string, number> = { success: 0, failed: 0, stopped: 0 };
    for (const e of executions) {
      expect(e.status).not.toBe('running');
      tally[e.status] = (tally[e.status] ?? 0) + 1;
      expect(e.lease_owner).toBeNull();
      expect(e.available_at).toBeNull();
      const steps = (byExecution.get(e.id) ?? []).sort((a, b) => a.idx - b.idx);
      expect(steps).toHaveLength(stepsPer.get(e.workflow_id)!);
      if (e.status === 'success') {
        for (const s of steps) {
          // Completed exactly once: one attempt, never interrupted, never re-run.
          expect({ status: s.status, attempts: s.attempts, interruptions: s.interruptions, phase: s.phase }).toEqual({ status: 'completed', attempts: 1, interruptions: 0, phase: null });
          expect(s.result).not.toBeNull();
        }
      } else if (e.status === 'failed') {
        expect(e.workflow_id).toBe(failing.id);
        expect(e.error_code).toBe('expression_error');
        expect(steps.map((s) => s.status)).toEqual(['completed', 'failed', 'pending']);
      } else {
        expect(e.status).toBe('stopped');
        expect(steps.some((s) => s.status === 'running')).toBe(false);
      }
    }
    // The invariant as one query too: no success execution with a step not completed.
    const broken = await db
      .selectFrom('executions as e')
      .innerJoin('execution_steps as s', 's.execution_id', 'e.id')
      .select('e.id')
      .where('e.workspace_id', '=', ws)
      .where('e.status', '=', 'success')
      .where('s.status', '<>', 'completed')
      .execute();
    expect(broken).toEqual([]);
    expect(tally.success).toBeGreaterThan(0);
    expect(tally.failed).toBeGreaterThan(0);
    expect(stops200).toBeGreaterThan(0);
    expect(replays).toBeGreaterThan(0);

    // Memory: the second half of the run did not keep growing past the first.
    const series = gc ? heap : rss;
    expect(series.length).toBeGreaterThanOrEqual(6);
    const half = Math.floor(series.length / 2);
    const firstMax = Math.max(...series.slice(0, half));
    const secondMedian = [...series.slice(half)].sort((a, b) => a - b)[Math.floor((series.length - half) / 2)]!;
    const MiB = 1024 * 1024;
    console.info(
      `[soak ${backend}] ${SOAK_MS / 1000} s: ${fresh} executions (${tally.success} success, ${tally.failed} failed, ${tally.stopped} stopped), ` +
        `${replays} replays, stops ${stops200} ok / ${stops400} not running, ${reads} reads, ${pages} list walks; writers held back ${throttled}×50 ms; ${runningAtEnd} running when the load ended, drained in ${drainMs} ms; ` +
        `${gc ? 'heapUsed after gc' : 'rss'}: first-half max ${(firstMax / MiB).toFixed(1)} MiB, second-half median ${(secondMedian / MiB).toFixed(1)} MiB`,
    );
    expect(secondMedian, 'memory did not grow without bound').toBeLessThanOrEqual(firstMax * 1.5 + 32 * MiB);
  }, SOAK_MS + 90_000);
});
