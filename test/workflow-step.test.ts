import { afterAll, beforeAll, expect, it } from 'vitest';
import { createChildExecutions } from '../src/executions/child-executions.js';
import { describeEachBackend } from './helpers/backends.js';
import { type Json, createWorkflow, finished, get, run } from './helpers/api.js';
import { type TestServer, eventually, settle, startTestServer } from './helpers/server.js';

// The workflow step: a child execution through the one start path, a durable wait
// woken by the child's terminal transaction, child_failed / child_stopped, the depth
// bound, credits, and stops that cross from parent to child.

describeEachBackend('workflow step', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => t.close());

  const credits = async (key?: string) => (await t.request({ method: 'GET', url: '/api/v1/workspace', key })).json().credits as number;
  const waitingOn = (id: string) =>
    eventually(async () => {
      const e = await get(t, id);
      return e.steps[0].status === 'running' && e.steps[0].attempts > 0 ? e : null;
    });
  const childOf = async (parent: string): Promise<Json> =>
    eventually(async () => {
      const list = (await t.request({ method: 'GET', url: '/api/v1/executions?limit=100' })).json().executions as Json[];
      return list.find((e) => e.trigger.type === 'workflow' && e.trigger.execution_id === parent);
    });

  it('runs the child, waits for it without a worker, and returns its last result', async () => {
    const child = await createWorkflow(t, [{ type: 'delay', seconds: 0.3 }, { type: 'transform', expression: 'input.n * 2' }], 'child');
    const parent = await createWorkflow(t, [{ type: 'workflow', workflow_id: child, input: { n: '{{ input.n }}' } }, { type: 'transform', expression: 'steps[0].result + 1' }], 'parent');
    const before = await credits();
    const id = await run(t, parent, { n: 3 });
    const e = await finished(t, id);
    expect(e.status, JSON.stringify(e)).toBe('success');
    const result = e.steps[0].result;
    expect(result).toMatchObject({ status: 'success', result: 6 });
    expect(e.steps[1].result).toBe(7);
    const c = await get(t, result.execution_id);
    expect(c.trigger).toEqual({ type: 'workflow', execution_id: id, step_index: 0 });
    expect(c.input).toEqual({ n: 3 });
    expect(before - (await credits())).toBe(2); // the child cost a credit too
    const depth = await t.server.deps.db.db.selectFrom('executions').select('depth').where('id', '=', result.execution_id).executeTakeFirstOrThrow();
    expect(depth.depth).toBe(1);
  });

  it('without wait returns the child id at once', async () => {
    const child = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }], 'slow child');
    const parent = await createWorkflow(t, [{ type: 'workflow', workflow_id: child, wait: false }]);
    const e = await finished(t, await run(t, parent));
    expect(e.status).toBe('success');
    expect(Object.keys(e.steps[0].result)).toEqual(['execution_id']);
    expect((await get(t, e.steps[0].result.execution_id)).status).toBe('running');
  });

  it('a failed child fails the step with child_failed, a stopped one with child_stopped', async () => {
    const failing = await createWorkflow(t, [{ type: 'transform', expression: '$error("boom")' }], 'failing child');
    const e = await finished(t, await run(t, await createWorkflow(t, [{ type: 'workflow', workflow_id: failing }])));
    expect(e).toMatchObject({ status: 'failed', error_code: 'child_failed' });
    expect(e.steps[0].error).toContain('boom');

    const waitingChild = await createWorkflow(t, [{ type: 'approval' }], 'approval child');
    const parentId = await run(t, await createWorkflow(t, [{ type: 'workflow', workflow_id: waitingChild }]));
    const c = await childOf(parentId);
    await eventually(async () => (await get(t, c.execution_id)).waiting_for);
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${c.execution_id}/stop`, body: {} })).statusCode).toBe(200);
    const p = await finished(t, parentId);
    expect(p).toMatchObject({ status: 'failed', error_code: 'child_stopped' });
  });

  it('stopping the parent stops the child it waits for', async () => {
    const waitingChild = await createWorkflow(t, [{ type: 'approval' }], 'approval child 2');
    const parentId = await run(t, await createWorkflow(t, [{ type: 'workflow', workflow_id: waitingChild }]));
    const c = await childOf(parentId);
    await waitingOn(parentId);
    expect((await t.request({ method: 'POST', url: `/api/v1/executions/${parentId}/stop`, body: {} })).statusCode).toBe(200);
    expect((await get(t, parentId)).status).toBe('stopped');
    expect((await get(t, c.execution_id)).status).toBe('stopped'); // in the same transaction
  });

  it('parent stop racing the child’s end: nothing is left running, the parent never succeeds', async () => {
    const quick = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'quick child');
    const parent = await createWorkflow(t, [{ type: 'workflow', workflow_id: quick }, { type: 'delay', seconds: 3600 }]);
    for (let round = 0; round < 6; round++) {
      const id = await run(t, parent);
      await settle(round * 15);
      await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, body: {} });
      const p = await get(t, id);
      expect(p.status).toBe('stopped');
      const c = await eventually(async () => {
        const list = (await t.request({ method: 'GET', url: '/api/v1/executions?limit=100' })).json().executions as Json[];
        const found = list.find((e) => e.trigger.type === 'workflow' && e.trigger.execution_id === id);
        return found ? found : p.steps[0].status !== 'running' && p.steps[0].attempts === 0 ? { none: true } : null;
      }).catch(() => ({ none: true }));
      if (!('none' in c)) {
        const child = await finished(t, c.execution_id);
        expect(['success', 'stopped']).toContain(child.status);
      }
    }
  });

  it('nesting deeper than 10 fails with depth_exceeded', async () => {
    const self = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'recursive');
    const put = await t.request({ method: 'PUT', url: `/api/v1/workflows/${self}`, body: { name: 'recursive', steps: [{ type: 'workflow', workflow_id: self }] } });
    expect(put.statusCode, put.body).toBe(200);
    const top = await run(t, self);
    const e = await finished(t, top, 30_000);
    expect(e).toMatchObject({ status: 'failed', error_code: 'child_failed' });
    const rows = await t.server.deps.db.db.selectFrom('executions').select(['id', 'depth', 'status', 'error_code']).where('workflow_id', '=', self).orderBy('depth').execute();
    expect(rows).toHaveLength(11);
    expect(rows.at(-1)).toMatchObject({ depth: 10, status: 'failed', error_code: 'depth_exceeded' });
  });

  it('a child that cannot get a credit fails the step with insufficient_credits', async () => {
    const poor = await t.createWorkspace('poor', 1);
    const call = (method: string, url: string, body?: unknown) => t.request({ method, url, body, key: poor.apiKey });
    const child = (await call('POST', '/api/v1/workflows', { name: 'c', steps: [{ type: 'transform', expression: '1' }] })).json().id;
    const parent = (await call('POST', '/api/v1/workflows', { name: 'p', steps: [{ type: 'workflow', workflow_id: child }] })).json().id;
    const id = (await call('POST', `/api/v1/workflows/${parent}/run-async`, {})).json().execution_id;
    const e = await eventually(async () => {
      const r = (await call('GET', `/api/v1/executions/${id}`)).json();
      return r.status !== 'running' ? r : null;
    });
    expect(e).toMatchObject({ status: 'failed', error_code: 'insufficient_credits' });
  });

  it('starting the same child twice (a parent that crashed before its checkpoint) gives the same child', async () => {
    const child = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }], 'once');
    const parentId = await run(t, await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]));
    const children = createChildExecutions(t.server.deps);
    const args = { workspaceId: t.workspaceId, parentId, stepIndex: 0, itemIndex: null, workflowId: child, input: null };
    const before = await credits();
    const a = await children.start(args);
    const b = await children.start(args);
    expect(b).toBe(a);
    expect(before - (await credits())).toBe(1);
    expect(await children.start({ ...args, itemIndex: 1 })).not.toBe(a);
  });

  it('refuses a bad workflow_id when the workflow is written, naming the field', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'x', steps: [{ type: 'transform', expression: '1' }, { type: 'workflow', workflow_id: 'not-an-id' }] } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/^steps\[1\]\.workflow_id: /);
    const extra = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'x', steps: [{ type: 'workflow', workflow_id: '665f1a2b3c4d5e6f7a8b9c0d', wait: 'yes' }] } });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().error).toMatch(/^steps\[0\]\.wait/);
  });
});
