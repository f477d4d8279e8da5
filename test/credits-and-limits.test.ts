import { afterAll, beforeAll, expect, it } from 'vitest';
import { setMaxConcurrent } from '../src/workspaces/store.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// docs/api.md#credits and #limits: run-async debits exactly one credit with its execution,
// atomically (N credits → at most N executions under any concurrency, never a negative
// balance); max_concurrent_executions caps running executions race-safely with 429
// concurrent_execution_limit (Retry-After, no credit taken), which wins over 402.

type Res = Awaited<ReturnType<TestServer['request']>>;

const ROUNDS = 5;
const RACERS = 50;
const CREDIT_MESSAGE = /credit/i;

describeEachBackend('credits and concurrency limits', (backend) => {
  let t: TestServer;

  const db = () => t.server.deps.db.db;
  const createWorkflow = async (key: string, steps: unknown[] = [{ type: 'delay', seconds: 60 }]) => {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', key, body: { name: 'Limited', steps } });
    expect(res.statusCode).toBe(201);
    return res.json().id as string;
  };
  const runAsync = (key: string, workflowId: string) =>
    t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, key, body: { input: null } });
  const workspace = async (key: string) => {
    const res = await t.request({ method: 'GET', url: '/api/v1/workspace', key });
    expect(res.statusCode).toBe(200);
    return res.json() as { credits: number; max_concurrent_executions: number | null };
  };
  const countExecutions = async (workspaceId: string, status?: 'running' | 'success' | 'failed' | 'stopped') => {
    let q = db().selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', workspaceId);
    if (status) q = q.where('status', '=', status);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };
  const expect402 = (res: Res) => {
    expect(res.statusCode).toBe(402);
    expect(res.json().error_code).toBe('insufficient_credits');
    expect(res.json().error).toMatch(CREDIT_MESSAGE);
  };
  const expect429 = (res: Res, limit: number) => {
    expect(res.statusCode).toBe(429);
    expect(res.json()).toEqual({
      error: `Concurrent execution limit reached. This workspace allows ${limit} concurrent executions.`,
      error_code: 'concurrent_execution_limit',
    });
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  };

  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t?.close());

  it('each accepted run debits exactly one credit; rejected, replayed, stopped and failed runs refund or take nothing', async () => {
    const ws = await t.createWorkspace('Metered', 5);
    const wf = await createWorkflow(ws.apiKey);
    const failing = await createWorkflow(ws.apiKey, [{ type: 'transform', expression: '$error("boom")' }]);
    expect((await workspace(ws.apiKey)).credits).toBe(5);

    const first = await runAsync(ws.apiKey, wf);
    expect(first.statusCode).toBe(202);
    expect((await workspace(ws.apiKey)).credits).toBe(4);
    expect((await runAsync(ws.apiKey, wf)).statusCode).toBe(202);
    expect((await workspace(ws.apiKey)).credits).toBe(3);

    // A 400 and a 404 take nothing.
    expect((await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/run-async`, key: ws.apiKey, body: [1] })).statusCode).toBe(400);
    expect((await runAsync(ws.apiKey, '0123456789abcdef01234567')).statusCode).toBe(404);
    expect((await workspace(ws.apiKey)).credits).toBe(3);

    // Stopping refunds nothing; failing refunds nothing.
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${first.json().execution_id}/stop`, key: ws.apiKey })).statusCode).toBe(200);
    expect((await workspace(ws.apiKey)).credits).toBe(3);
    const failed = await runAsync(ws.apiKey, failing);
    expect(failed.statusCode).toBe(202);
    await eventually(async () => (await t.request({ method: 'GET', url: `/api/v1/executions/${failed.json().execution_id}`, key: ws.apiKey })).json().status === 'failed');
    expect((await workspace(ws.apiKey)).credits).toBe(2);

    expect((await runAsync(ws.apiKey, wf)).statusCode).toBe(202);
    expect((await runAsync(ws.apiKey, wf)).statusCode).toBe(202);
    expect((await workspace(ws.apiKey)).credits).toBe(0);
    const denied = await runAsync(ws.apiKey, wf);
    expect402(denied);
    expect((await workspace(ws.apiKey)).credits).toBe(0);
    expect(await countExecutions(ws.workspaceId)).toBe(5);
  });

  it(`with 10 credits, ${RACERS} concurrent run-async create exactly 10 executions; the rest are 402 (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const ws = await t.createWorkspace(`Ten credits ${round}`, 10);
      const wf = await createWorkflow(ws.apiKey);
      const balances: number[] = [];
      let racing = true;
      const sampler = (async () => {
        while (racing) {
          balances.push((await workspace(ws.apiKey)).credits);
          await new Promise((r) => setImmediate(r));
        }
      })();
      const responses = await Promise.all(Array.from({ length: RACERS }, () => runAsync(ws.apiKey, wf)));
      racing = false;
      await sampler;

      const accepted = responses.filter((r) => r.statusCode === 202);
      const rejected = responses.filter((r) => r.statusCode !== 202);
      expect(accepted).toHaveLength(10);
      expect(rejected).toHaveLength(RACERS - 10);
      rejected.forEach(expect402);
      expect(new Set(accepted.map((r) => r.json().execution_id)).size).toBe(10);
      expect((await workspace(ws.apiKey)).credits).toBe(0);
      expect(await countExecutions(ws.workspaceId)).toBe(10);
      for (const b of balances) expect(b).toBeGreaterThanOrEqual(0);
      // Every accepted execution exists and is readable.
      const listed = (await t.request({ method: 'GET', url: '/api/v1/executions?limit=100', key: ws.apiKey })).json().executions as Array<{ execution_id: string }>;
      expect(listed.map((e) => e.execution_id).sort()).toEqual(accepted.map((r) => r.json().execution_id as string).sort());
    }
  });

  it(`with max_concurrent_executions 3, ${RACERS} concurrent run-async accept exactly 3; the rest are 429 and cost nothing (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const ws = await t.createWorkspace(`Three slots ${round}`, 1000);
      expect(await setMaxConcurrent(db(), ws.workspaceId, 3)).toBe(true);
      expect((await workspace(ws.apiKey)).max_concurrent_executions).toBe(3);
      const wf = await createWorkflow(ws.apiKey);

      const responses = await Promise.all(Array.from({ length: RACERS }, () => runAsync(ws.apiKey, wf)));
      const accepted = responses.filter((r) => r.statusCode === 202);
      expect(accepted).toHaveLength(3);
      for (const res of responses) if (res.statusCode !== 202) expect429(res, 3);
      expect((await workspace(ws.apiKey)).credits).toBe(997);
      expect(await countExecutions(ws.workspaceId)).toBe(3);
      expect(await countExecutions(ws.workspaceId, 'running')).toBe(3);

      // Still full.
      expect429(await runAsync(ws.apiKey, wf), 3);
      // Stopping one frees exactly one slot.
      const stopped = await t.request({ method: 'POST', url: `/api/v1/executions/${accepted[0]!.json().execution_id}/stop`, key: ws.apiKey });
      expect(stopped.statusCode).toBe(200);
      const again = await Promise.all(Array.from({ length: 10 }, () => runAsync(ws.apiKey, wf)));
      expect(again.filter((r) => r.statusCode === 202)).toHaveLength(1);
      for (const res of again) if (res.statusCode !== 202) expect429(res, 3);
      expect((await workspace(ws.apiKey)).credits).toBe(996);
      expect(await countExecutions(ws.workspaceId, 'running')).toBe(3);
    }
  });

  it('an execution that finishes frees its slot', async () => {
    const ws = await t.createWorkspace('One slot', 10);
    await setMaxConcurrent(db(), ws.workspaceId, 1);
    const quick = await createWorkflow(ws.apiKey, [{ type: 'transform', expression: '1' }]);
    const first = await runAsync(ws.apiKey, quick);
    expect(first.statusCode).toBe(202);
    await eventually(async () => (await t.request({ method: 'GET', url: `/api/v1/executions/${first.json().execution_id}`, key: ws.apiKey })).json().status === 'success');
    expect((await runAsync(ws.apiKey, quick)).statusCode).toBe(202);
    // A failing one frees it too.
    const failing = await createWorkflow(ws.apiKey, [{ type: 'transform', expression: '$error("x")' }]);
    await eventually(async () => (await runAsync(ws.apiKey, failing)).statusCode === 202);
    await eventually(async () => (await runAsync(ws.apiKey, quick)).statusCode === 202);
  });

  it(`429 concurrent_execution_limit wins over 402 when both apply (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const ws = await t.createWorkspace(`Both limits ${round}`, 3);
      await setMaxConcurrent(db(), ws.workspaceId, 3);
      const wf = await createWorkflow(ws.apiKey);
      const responses = await Promise.all(Array.from({ length: 20 }, () => runAsync(ws.apiKey, wf)));
      const accepted = responses.filter((r) => r.statusCode === 202);
      expect(accepted).toHaveLength(3);
      // Credits and slots ran out together: every rejection says "concurrent", not "credits".
      for (const res of responses) if (res.statusCode !== 202) expect429(res, 3);
      expect((await workspace(ws.apiKey)).credits).toBe(0);
      expect429(await runAsync(ws.apiKey, wf), 3);

      // With a slot free and no credits, it is 402.
      await t.request({ method: 'POST', url: `/api/v1/executions/${accepted[0]!.json().execution_id}/stop`, key: ws.apiKey });
      expect402(await runAsync(ws.apiKey, wf));
      expect(await countExecutions(ws.workspaceId)).toBe(3);
    }
  });

  it('a workspace without a limit is not capped, and lifting a limit takes effect at once', async () => {
    const ws = await t.createWorkspace('Unlimited', 100);
    expect((await workspace(ws.apiKey)).max_concurrent_executions).toBeNull();
    const wf = await createWorkflow(ws.apiKey);
    const responses = await Promise.all(Array.from({ length: 20 }, () => runAsync(ws.apiKey, wf)));
    expect(responses.every((r) => r.statusCode === 202)).toBe(true);
    await setMaxConcurrent(db(), ws.workspaceId, 20);
    expect429(await runAsync(ws.apiKey, wf), 20);
    await setMaxConcurrent(db(), ws.workspaceId, null);
    expect((await runAsync(ws.apiKey, wf)).statusCode).toBe(202);
    expect((await workspace(ws.apiKey)).credits).toBe(79);
  });
});
