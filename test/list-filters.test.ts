import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Json, createWorkflow, finished, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// GET /executions filters: status lists, created_after / created_before, trigger,
// error_code; validated; combined with the `after` cursor.

describeEachBackend('execution list filters', (backend) => {
  let t: TestServer;
  const ids: Record<string, string[]> = { success: [], failed: [], stopped: [], retry: [] };
  let middle = 0;

  beforeAll(async () => {
    t = await startTestServer(backend);
    const ok = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const bad = await createWorkflow(t, [{ type: 'transform', expression: '$error("x")' }]);
    const slow = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    for (let i = 0; i < 3; i++) ids.success!.push(await run(t, ok));
    for (let i = 0; i < 3; i++) ids.failed!.push(await run(t, bad));
    for (const id of [...ids.success!, ...ids.failed!]) await finished(t, id);
    // created_at is kept in milliseconds; the next second starts a clean boundary.
    await new Promise((r) => setTimeout(r, 1100));
    middle = Math.ceil(Date.now() / 1000) * 1000;
    await new Promise((r) => setTimeout(r, middle - Date.now() + 10));
    for (let i = 0; i < 2; i++) {
      const id = await run(t, slow);
      await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
      ids.stopped!.push(id);
    }
    const r = await t.request({ method: 'POST', url: `/api/v1/executions/${ids.failed![0]}/retry`, body: {} });
    ids.retry!.push(r.json().execution_id);
    await finished(t, ids.retry![0]!);
  });
  afterAll(async () => {
    await t?.close();
  });

  const list = async (query: string) => {
    const res = await t.request({ method: 'GET', url: `/api/v1/executions?${query}` });
    expect(res.statusCode, res.body).toBe(200);
    return (res.json().executions as Json[]).map((e) => e.execution_id as string);
  };
  const sorted = (xs: string[]) => [...xs].sort().reverse();

  it('status as a comma list', async () => {
    expect(await list('status=failed,stopped')).toEqual(sorted([...ids.failed!, ...ids.stopped!, ...ids.retry!]));
    expect(await list('status=stopped')).toEqual(sorted(ids.stopped!));
    expect(await list('status=success,success')).toEqual(sorted(ids.success!));
  });

  it('created_after (>=) and created_before (<), with any offset', async () => {
    const at = new Date(middle).toISOString().replace('.000Z', '+00:00');
    expect(await list(`created_after=${encodeURIComponent(at)}`)).toEqual(sorted([...ids.stopped!, ...ids.retry!]));
    expect(await list(`created_before=${encodeURIComponent(at)}`)).toEqual(sorted([...ids.success!, ...ids.failed!]));
    const shifted = new Date(middle).toISOString().slice(0, 19).replace('T', 'T') + 'Z';
    expect(await list(`created_after=${shifted}&status=stopped`)).toEqual(sorted(ids.stopped!));
  });

  it('trigger and error_code', async () => {
    expect(await list('trigger=retry')).toEqual(ids.retry);
    expect(await list('trigger=api&status=failed')).toEqual(sorted(ids.failed!));
    expect(await list('error_code=expression_error')).toEqual(sorted([...ids.failed!, ...ids.retry!]));
    expect(await list('error_code=stopped')).toEqual([]);
  });

  it('every filter pages with after, neither skipping nor repeating', async () => {
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const page = await list(`status=failed,stopped,success&limit=2${after}`);
      if (page.length === 0) break;
      seen.push(...page);
      after = `&after=${page.at(-1)}`;
    }
    expect(seen).toEqual(sorted([...ids.success!, ...ids.failed!, ...ids.stopped!, ...ids.retry!]));
  });

  it('a bad filter is a 400 naming the parameter', async () => {
    for (const [query, name] of [
      ['status=failed,nope', 'status'],
      ['status=', 'status'],
      ['created_after=yesterday', 'created_after'],
      ['created_before=2026-01-01', 'created_before'],
      ['trigger=cron', 'trigger'],
      ['error_code=Not%20A%20Code', 'error_code'],
    ] as const) {
      const res = await t.request({ method: 'GET', url: `/api/v1/executions?${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error_code).toBe('invalid_request');
      expect(res.json().error, query).toContain(name);
    }
  });
});
