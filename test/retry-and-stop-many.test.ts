import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Json, createWorkflow, finished, get, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// Retry (redrive) of failed and stopped executions, and stopping many at once.

describeEachBackend('retry an execution', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  const retry = (id: string, body: unknown = {}, headers: Record<string, string> = {}) =>
    t.request({ method: 'POST', url: `/api/v1/executions/${id}/retry`, body, headers });
  const failing = () =>
    createWorkflow(t, [
      { type: 'transform', name: 'random', expression: '$random()' },
      { type: 'transform', name: 'echo', expression: 'input.x' },
      { type: 'transform', name: 'boom', expression: '$error("boom")' },
      { type: 'transform', name: 'after', expression: '3' },
    ]);

  it('from failed_step: earlier steps copied with reused: true and not run again; work resumes at the failed step', async () => {
    const original = await finished(t, await run(t, await failing(), { x: 'hello' }));
    expect(original.status).toBe('failed');
    const credits = (await t.request({ method: 'GET', url: '/api/v1/workspace' })).json().credits;
    const res = await retry(original.execution_id);
    expect(res.statusCode, res.body).toBe(202);
    const accepted = res.json();
    expect(accepted).toMatchObject({ workflow_id: original.workflow_id, status: 'running', retry_of: original.execution_id });
    const again = await finished(t, accepted.execution_id);
    expect(again).toMatchObject({ status: 'failed', retry_of: original.execution_id, trigger: { type: 'retry', execution_id: original.execution_id }, input: { x: 'hello' } });
    expect(again.steps.map((s: Json) => [s.status, s.reused])).toEqual([['completed', true], ['completed', true], ['failed', false], ['pending', false]]);
    // Not recomputed: the random number is the original's.
    expect(again.steps[0].result).toBe(original.steps[0].result);
    expect(again.steps[1].result).toBe('hello');
    expect(again.steps[2].attempts).toBe(1);
    expect(original.steps.every((s: Json) => s.reused === false)).toBe(true);
    expect((await t.request({ method: 'GET', url: '/api/v1/workspace' })).json().credits).toBe(credits - 1);
    // The original now names nothing new, the retry shows retry_of in the list too.
    const list = (await t.request({ method: 'GET', url: '/api/v1/executions?trigger=retry' })).json().executions as Json[];
    expect(list.find((e) => e.execution_id === again.execution_id)?.retry_of).toBe(original.execution_id);
  });

  it('from start: every step runs again', async () => {
    const original = await finished(t, await run(t, await failing(), { x: 1 }));
    const res = await retry(original.execution_id, { from: 'start' });
    expect(res.statusCode, res.body).toBe(202);
    const again = await finished(t, res.json().execution_id);
    expect(again.steps.map((s: Json) => s.reused)).toEqual([false, false, false, false]);
    expect(again.steps[0].result).not.toBe(original.steps[0].result);
  });

  it('only failed or stopped, once; a second retry is 409 naming the first; bad bodies are 400', async () => {
    const ok = await finished(t, await run(t, await createWorkflow(t, [{ type: 'transform', expression: '1' }])));
    const r1 = await retry(ok.execution_id);
    expect(r1.statusCode).toBe(400);
    expect(r1.json().error_code).toBe('execution_not_retryable');
    const sleeping = await run(t, await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]));
    expect((await retry(sleeping)).json().error_code).toBe('execution_not_retryable');
    expect((await retry(`${'f'.repeat(24)}`)).statusCode).toBe(404);
    expect((await retry('nope')).statusCode).toBe(404);

    const original = await finished(t, await run(t, await failing()));
    expect((await retry(original.execution_id, { from: 'middle' })).statusCode).toBe(400);
    expect((await retry(original.execution_id, { extra: true })).statusCode).toBe(400);
    const first = await retry(original.execution_id);
    expect(first.statusCode).toBe(202);
    const second = await retry(original.execution_id);
    expect(second.statusCode).toBe(409);
    expect(second.json().error_code).toBe('already_retried');
    expect(second.json().error).toContain(first.json().execution_id);
    // The retry can itself be retried.
    await finished(t, first.json().execution_id);
    expect((await retry(first.json().execution_id)).statusCode).toBe(202);
    // Another workspace cannot see it.
    const other = await t.createWorkspace();
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${original.execution_id}/retry`, key: other.apiKey, body: {} })).statusCode).toBe(404);
  });

  it('a stopped execution resumes at the stopped step', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '"a"' }, { type: 'delay', seconds: 3600 }, { type: 'transform', expression: '"c"' }]);
    const id = await run(t, wf);
    await eventually(async () => (await get(t, id)).steps[1].status === 'running');
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` })).statusCode).toBe(200);
    const res = await retry(id);
    expect(res.statusCode, res.body).toBe(202);
    const again = await eventually(async () => {
      const e = await get(t, res.json().execution_id);
      return e.steps[1].status === 'running' ? e : null;
    });
    expect(again.steps.map((s: Json) => [s.status, s.reused])).toEqual([['completed', true], ['running', false], ['pending', false]]);
    await t.request({ method: 'POST', url: `/api/v1/executions/${again.execution_id}/stop` });
  });

  it('20 concurrent retries of one execution: one 202, the others 409 already_retried', async () => {
    const original = await finished(t, await run(t, await failing()));
    const answers = await Promise.all(Array.from({ length: 20 }, () => retry(original.execution_id)));
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes.filter((c) => c === 202)).toHaveLength(1);
    expect(codes.filter((c) => c === 409)).toHaveLength(19);
    const winner = answers.find((a) => a.statusCode === 202)!.json().execution_id;
    for (const a of answers.filter((x) => x.statusCode === 409)) expect(a.json().error).toContain(winner);
    const rows = await t.server.deps.db.db.selectFrom('executions').select('id').where('retry_of', '=', original.execution_id).execute();
    expect(rows.map((r) => r.id)).toEqual([winner]);
  });

  it('Idempotency-Key: the same retry replays its 202 instead of 409', async () => {
    const original = await finished(t, await run(t, await failing()));
    const first = await retry(original.execution_id, {}, { 'idempotency-key': 'retry-once' });
    const second = await retry(original.execution_id, {}, { 'idempotency-key': 'retry-once' });
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(202);
    expect(second.body).toBe(first.body);
    expect(second.headers['idempotent-replayed']).toBe('true');
  });
});

describeEachBackend('stop many executions', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { workerConcurrency: 20, allowPrivateNetwork: true });
  });
  afterAll(async () => {
    await t?.close();
  });
  const stopMany = (body: unknown) => t.request({ method: 'POST', url: '/api/v1/executions/stop', body });

  it('stops the matching running executions of the workspace (workflow_id, created_before) and only those', async () => {
    const sleepy = [{ type: 'delay', seconds: 3600 }];
    const a = await createWorkflow(t, sleepy);
    const b = await createWorkflow(t, sleepy);
    const ofA = await Promise.all([1, 2, 3].map(() => run(t, a)));
    const ofB = await Promise.all([1, 2].map(() => run(t, b)));
    const other = await t.createWorkspace();
    const theirs = await t.request({ method: 'POST', url: '/api/v1/workflows', key: other.apiKey, body: { name: 'x', steps: sleepy } });
    const theirRun = (await t.request({ method: 'POST', url: `/api/v1/workflows/${theirs.json().id}/run-async`, key: other.apiKey, body: {} })).json().execution_id;

    expect((await stopMany({ created_before: '2000-01-01T00:00:00Z' })).json()).toEqual({ stopped: 0 });
    const res = await stopMany({ workflow_id: a });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ stopped: 3 });
    for (const id of ofA) expect((await get(t, id)).status).toBe('stopped');
    for (const id of ofB) expect((await get(t, id)).status).toBe('running');
    expect((await stopMany({})).json()).toEqual({ stopped: 2 });
    for (const id of ofB) expect((await get(t, id)).status).toBe('stopped');
    expect((await t.request({ method: 'GET', url: `/api/v1/executions/${theirRun}`, key: other.apiKey })).json().status).toBe('running');
    await t.request({ method: 'POST', url: `/api/v1/executions/${theirRun}/stop`, key: other.apiKey });

    for (const body of [{ workflow_id: 'x' }, { created_before: 'yesterday' }, { status: 'running' }]) {
      const bad = await stopMany(body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
      expect(bad.json().error).toMatch(/workflow_id|created_before|status/);
    }
  });

  it('racing steps in flight: every execution ends stopped or succeeded, nothing runs after its stop', async () => {
    const steps = Array.from({ length: 30 }, (_, i) => ({ type: 'transform', expression: `${i}` }));
    const wf = await createWorkflow(t, steps);
    const ids = await Promise.all(Array.from({ length: 30 }, () => run(t, wf)));
    const res = await stopMany({ workflow_id: wf });
    expect(res.statusCode).toBe(200);
    const stopped = res.json().stopped as number;
    const ends = await Promise.all(ids.map((id) => finished(t, id)));
    expect(ends.filter((e) => e.status === 'stopped')).toHaveLength(stopped);
    for (const e of ends) {
      expect(['stopped', 'success']).toContain(e.status);
      if (e.status !== 'stopped') continue;
      const statuses = e.steps.map((s: Json) => s.status as string);
      const firstNotDone = statuses.findIndex((s: string) => s !== 'completed');
      // completed…, at most one stopped, then pending
      expect(statuses.slice(firstNotDone).filter((s: string) => s === 'completed')).toEqual([]);
      expect(statuses.filter((s: string) => s === 'stopped').length).toBeLessThanOrEqual(1);
    }
    // Still stopped a moment later: no worker wrote after the stop.
    await new Promise((r) => setTimeout(r, 300));
    for (const e of ends) expect((await get(t, e.execution_id)).status).toBe(e.status);
  });

  it('aborts http requests in flight: the steps become stopped and the connections close', async () => {
    const open = new Set<import('node:http').ServerResponse>();
    let closed = 0;
    const hang = createServer((_req, res) => {
      open.add(res);
      res.on('close', () => closed++);
    });
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}/slow`;
      const wf = await createWorkflow(t, [{ type: 'http', url, timeout_ms: 60_000 }, { type: 'transform', expression: '1' }]);
      const ids = await Promise.all([1, 2, 3].map(() => run(t, wf)));
      await eventually(async () => open.size === 3);
      const res = await stopMany({ workflow_id: wf });
      expect(res.json()).toEqual({ stopped: 3 });
      await eventually(async () => closed === 3, 2_000);
      for (const id of ids) {
        const e = await get(t, id);
        expect(e.status).toBe('stopped');
        expect(e.steps.map((s: Json) => s.status)).toEqual(['stopped', 'pending']);
      }
    } finally {
      for (const res of open) res.destroy();
      await new Promise<void>((resolve) => hang.close(() => resolve()));
    }
  });
});
