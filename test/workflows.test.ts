import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../src/api-keys/scopes.js';
import { hashSecret } from '../src/api-keys/secret.js';
import { createApiKey, findKeyByHash } from '../src/api-keys/store.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, settle, startTestServer } from './helpers/server.js';

// docs/api.md#workflow and #routes: the object, cursor pagination, full
// replace with execution snapshots, delete (stops running executions, keeps them
// readable), write-time validation naming the field, and workspace isolation.

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/;
const ID = /^[0-9a-f]{24}$/;

const transform = (expression = '1') => ({ type: 'transform', expression });

function expectError(res: LightMyRequestResponse, status: number, code: string): string {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
  expect(body.error_code).toBe(code);
  return body.error as string;
}

describeEachBackend('workflows', (backend) => {
  let t: TestServer;
  let keyId: string;

  beforeAll(async () => {
    t = await startTestServer(backend);
    keyId = (await findKeyByHash(t.server.deps.db.db, hashSecret(t.apiKey)))!.id;
  });
  afterAll(() => t?.close());

  const create = (body: unknown, key?: string) => t.request({ method: 'POST', url: '/api/v1/workflows', body, key });
  const getExecution = (id: string) => t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` });

  describe('create and get', () => {
    it('POST returns 201 with the full workflow object', async () => {
      const before = Date.now();
      const res = await create({ name: 'Welcome', steps: [{ type: 'transform', name: 'greeting', expression: "'Hello ' & input.name" }] });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      const wf = res.json();
      expect(Object.keys(wf).sort()).toEqual(['created_at', 'created_by', 'description', 'id', 'last_run_at', 'name', 'steps', 'updated_at']);
      expect(wf.id).toMatch(ID);
      expect(wf.name).toBe('Welcome');
      expect(wf.description).toBe('');
      expect(wf.steps).toEqual([{ type: 'transform', name: 'greeting', expression: "'Hello ' & input.name" }]);
      expect(wf.created_by).toBe(keyId);
      expect(wf.created_at).toMatch(TIMESTAMP);
      expect(wf.updated_at).toMatch(TIMESTAMP);
      expect(wf.updated_at).toBe(wf.created_at);
      expect(wf.last_run_at).toBeNull();
      const created = Date.parse(wf.created_at);
      expect(created).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(created).toBeLessThanOrEqual(Date.now());

      const got = await t.request({ method: 'GET', url: `/api/v1/workflows/${wf.id}` });
      expect(got.statusCode).toBe(200);
      expect(got.json()).toEqual(wf);
    });

    it('keeps a description and the steps exactly as written', async () => {
      const steps = [
        { type: 'transform', name: 'a', expression: '$sum(input.values)', if: 'input.go', timeout_ms: 500, retry: { max_attempts: 3, backoff_ms: 10 }, continue_on_error: true },
        { type: 'delay', seconds: 0 },
        { type: 'delay', seconds: '{{ input.wait }}' },
        { type: 'delay', until: '2026-01-15T10:30:00+00:00' },
      ];
      const res = await create({ name: 'n', description: 'Sends a welcome email', steps });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().description).toBe('Sends a welcome email');
      expect(res.json().steps).toEqual(steps);
    });

    it('a name of exactly 200 characters and 100 steps are accepted', async () => {
      const res = await create({ name: 'n'.repeat(200), steps: Array.from({ length: 100 }, () => transform()) });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().steps).toHaveLength(100);
    });
  });

  describe('list', () => {
    it('is newest first and a cursor walk returns every workflow exactly once', async () => {
      const ws = await t.createWorkspace('paging');
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await create({ name: `wf ${i}`, steps: [transform()] }, ws.apiKey);
        expect(res.statusCode).toBe(201);
        ids.push(res.json().id);
      }
      const all = await t.request({ method: 'GET', url: '/api/v1/workflows', key: ws.apiKey });
      expect(all.statusCode).toBe(200);
      expect(Object.keys(all.json())).toEqual(['workflows', 'has_more']);
      expect(all.json().workflows.map((w: { id: string }) => w.id)).toEqual([...ids].reverse());
      // The list returns the same objects as GET.
      const one = await t.request({ method: 'GET', url: `/api/v1/workflows/${ids[3]}`, key: ws.apiKey });
      expect(all.json().workflows[3]).toEqual(one.json());

      const walked: string[] = [];
      const pageSizes: number[] = [];
      const more: boolean[] = [];
      let after: string | undefined;
      for (let guard = 0; guard < 10; guard++) {
        const res = await t.request({ method: 'GET', url: `/api/v1/workflows?limit=3${after ? `&after=${after}` : ''}`, key: ws.apiKey });
        expect(res.statusCode).toBe(200);
        const page = res.json().workflows as { id: string }[];
        pageSizes.push(page.length);
        more.push(res.json().has_more);
        if (page.length === 0) break;
        walked.push(...page.map((w) => w.id));
        after = page[page.length - 1]!.id;
      }
      expect(pageSizes).toEqual([3, 3, 1, 0]);
      expect(more).toEqual([true, true, false, false]); // has_more: a next page exists
      expect(walked).toEqual([...ids].reverse());
    });

    it('a page is stable when workflows are created during the walk', async () => {
      const ws = await t.createWorkspace('paging2');
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await create({ name: `w${i}`, steps: [transform()] }, ws.apiKey)).json().id);
      const first = (await t.request({ method: 'GET', url: '/api/v1/workflows?limit=2', key: ws.apiKey })).json().workflows as { id: string }[];
      await create({ name: 'late', steps: [transform()] }, ws.apiKey);
      const second = (await t.request({ method: 'GET', url: `/api/v1/workflows?limit=2&after=${first[1]!.id}`, key: ws.apiKey })).json()
        .workflows as { id: string }[];
      expect([...first, ...second].map((w) => w.id)).toEqual([...ids].reverse());
    });

    it('the default page is 20', async () => {
      const ws = await t.createWorkspace('default page');
      for (let i = 0; i < 22; i++) await create({ name: `w${i}`, steps: [transform()] }, ws.apiKey);
      const res = await t.request({ method: 'GET', url: '/api/v1/workflows', key: ws.apiKey });
      expect(res.json().workflows).toHaveLength(20);
    });
  });

  describe('replace (PUT)', () => {
    it('replaces name, description and steps, bumps updated_at, keeps id/created_*', async () => {
      const created = (await create({ name: 'v1', description: 'first', steps: [transform('1')] })).json();
      await settle(1100); // timestamps have seconds precision
      const res = await t.request({ method: 'PUT', url: `/api/v1/workflows/${created.id}`, body: { name: 'v2', steps: [transform('2'), transform('3')] } });
      expect(res.statusCode, res.body).toBe(200);
      const wf = res.json();
      expect(wf.id).toBe(created.id);
      expect(wf.name).toBe('v2');
      expect(wf.description).toBe(''); // full replace: an omitted description is ""
      expect(wf.steps).toEqual([transform('2'), transform('3')]);
      expect(wf.created_at).toBe(created.created_at);
      expect(wf.created_by).toBe(created.created_by);
      expect(wf.updated_at).toMatch(TIMESTAMP);
      expect(Date.parse(wf.updated_at)).toBeGreaterThan(Date.parse(created.updated_at));
      expect((await t.request({ method: 'GET', url: `/api/v1/workflows/${created.id}` })).json()).toEqual(wf);
    });

    it('an execution created before the PUT keeps running the old steps (snapshot)', async () => {
      const wf = (await create({ name: 'snap', steps: [{ type: 'delay', seconds: 3600 }] })).json();
      const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async`, body: { input: 1 } });
      expect(run.statusCode).toBe(202);
      const oldId = run.json().execution_id as string;
      const put = await t.request({ method: 'PUT', url: `/api/v1/workflows/${wf.id}`, body: { name: 'snap v2', steps: [transform('input + 1'), transform('steps[0] * 10')] } });
      expect(put.statusCode).toBe(200);

      const old = (await getExecution(oldId)).json();
      expect(old.steps.map((s: { type: string }) => s.type)).toEqual(['delay']);
      expect(old.status).toBe('running');

      const fresh = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async`, body: { input: 1 } });
      const done = await eventually(async () => {
        const e = (await getExecution(fresh.json().execution_id)).json();
        return e.status === 'success' ? e : null;
      });
      expect(done.steps.map((s: { type: string }) => s.type)).toEqual(['transform', 'transform']);
      expect(done.steps[1].result).toBe(20);
      // Still the old snapshot after the new one ran.
      expect((await getExecution(oldId)).json().steps).toHaveLength(1);
      await t.request({ method: 'POST', url: `/api/v1/executions/${oldId}/stop` });
    });

    it('validates like POST and 404s an unknown id', async () => {
      const wf = (await create({ name: 'x', steps: [transform()] })).json();
      const bad = await t.request({ method: 'PUT', url: `/api/v1/workflows/${wf.id}`, body: { name: 'x', steps: [{ type: 'nope' }] } });
      expect(expectError(bad, 400, 'invalid_request')).toContain('steps[0].type');
      const missing = await t.request({ method: 'PUT', url: '/api/v1/workflows/000000000000000000000000', body: { name: 'x', steps: [transform()] } });
      expectError(missing, 404, 'not_found');
      // The failed PUT changed nothing.
      expect((await t.request({ method: 'GET', url: `/api/v1/workflows/${wf.id}` })).json()).toEqual(wf);
    });
  });

  describe('delete', () => {
    it('needs workflows:delete', async () => {
      const wf = (await create({ name: 'keep me', steps: [transform()] })).json();
      const noDelete = await createApiKey(t.server.deps.db.db, { workspaceId: t.workspaceId, scopes: SCOPES.filter((s) => s !== 'workflows:delete'), now: Date.now() });
      const res = await t.request({ method: 'DELETE', url: `/api/v1/workflows/${wf.id}`, key: noDelete.secret });
      expect(expectError(res, 403, 'insufficient_scope')).toContain('workflows:delete');
      expect((await t.request({ method: 'GET', url: `/api/v1/workflows/${wf.id}` })).statusCode).toBe(200);
    });

    it('returns {id, name, deleted: true}; the workflow is then 404; its executions stay readable', async () => {
      const wf = (await create({ name: 'short lived', steps: [transform('42')] })).json();
      const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async` });
      const executionId = run.json().execution_id as string;
      await eventually(async () => (await getExecution(executionId)).json().status === 'success');

      const del = await t.request({ method: 'DELETE', url: `/api/v1/workflows/${wf.id}` });
      expect(del.statusCode, del.body).toBe(200);
      expect(del.json()).toEqual({ id: wf.id, name: 'short lived', deleted: true });

      expectError(await t.request({ method: 'GET', url: `/api/v1/workflows/${wf.id}` }), 404, 'not_found');
      expectError(await t.request({ method: 'DELETE', url: `/api/v1/workflows/${wf.id}` }), 404, 'not_found');
      expectError(await t.request({ method: 'PUT', url: `/api/v1/workflows/${wf.id}`, body: { name: 'x', steps: [transform()] } }), 404, 'not_found');
      expectError(await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async` }), 404, 'not_found');
      const list = (await t.request({ method: 'GET', url: '/api/v1/workflows?limit=100' })).json().workflows as { id: string }[];
      expect(list.map((w) => w.id)).not.toContain(wf.id);

      const execution = await getExecution(executionId);
      expect(execution.statusCode).toBe(200);
      expect(execution.json().status).toBe('success');
      expect(execution.json().workflow_id).toBe(wf.id);
      expect(execution.json().steps[0].result).toBe(42);
      const listed = await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${wf.id}` });
      expect(listed.json().executions.map((e: { execution_id: string }) => e.execution_id)).toEqual([executionId]);
    });

    it('stops the workflow’s running executions before it responds', async () => {
      const wf = (await create({ name: 'sleeper', steps: [{ type: 'delay', seconds: 3600 }, transform()] })).json();
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push((await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async` })).json().execution_id);
      // Let the worker take the first one into its delay.
      await eventually(async () => (await getExecution(ids[0]!)).json().steps[0].status === 'running');
      const other = (await create({ name: 'bystander', steps: [{ type: 'delay', seconds: 3600 }] })).json();
      const bystander = (await t.request({ method: 'POST', url: `/api/v1/workflows/${other.id}/run-async` })).json().execution_id as string;

      const del = await t.request({ method: 'DELETE', url: `/api/v1/workflows/${wf.id}` });
      expect(del.statusCode).toBe(200);
      for (const id of ids) {
        const e = (await getExecution(id)).json();
        expect(e.status).toBe('stopped');
        expect(e.completed_at).toMatch(TIMESTAMP);
        expect(e.steps[1].status).toBe('pending');
      }
      const first = (await getExecution(ids[0]!)).json();
      expect(first.steps[0].status).toBe('stopped');
      // Another workflow's execution is untouched.
      expect((await getExecution(bystander)).json().status).toBe('running');
      const ws = (await t.request({ method: 'GET', url: '/api/v1/workspace' })).json();
      expect(ws.workspace_id).toBe(t.workspaceId);
      await t.request({ method: 'POST', url: `/api/v1/executions/${bystander}/stop` });
    });
  });

  describe('last_run_at', () => {
    it('is null until a run, then the created_at of the newest execution', async () => {
      const wf = (await create({ name: 'runs', steps: [transform()] })).json();
      expect(wf.last_run_at).toBeNull();
      const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async` });
      expect(run.statusCode).toBe(202);
      const got = (await t.request({ method: 'GET', url: `/api/v1/workflows/${wf.id}` })).json();
      expect(got.last_run_at).toMatch(TIMESTAMP);
      expect(got.last_run_at).toBe(run.json().created_at);
      const listed = (await t.request({ method: 'GET', url: '/api/v1/workflows?limit=100' })).json().workflows.find((w: { id: string }) => w.id === wf.id);
      expect(listed.last_run_at).toBe(run.json().created_at);
    });
  });

  describe('write-time validation (400 naming the field)', () => {
    const cases: { title: string; body: unknown; field: string }[] = [
      { title: 'unknown step type', body: { name: 'x', steps: [{ type: 'teleport' }] }, field: 'steps[0].type' },
      { title: 'missing step type', body: { name: 'x', steps: [{ expression: '1' }] }, field: 'steps[0].type' },
      { title: 'missing expression', body: { name: 'x', steps: [transform(), { type: 'transform' }] }, field: 'steps[1].expression' },
      { title: 'JSONata that does not compile', body: { name: 'x', steps: [transform('1 +')] }, field: 'steps[0].expression' },
      { title: 'JSONata `if` that does not compile', body: { name: 'x', steps: [{ ...transform(), if: '(((' }] }, field: 'steps[0].if' },
      { title: 'a template that does not compile in delay seconds', body: { name: 'x', steps: [{ type: 'delay', seconds: '{{ 1 + }}' }] }, field: 'steps[0].seconds' },
      { title: 'a template that does not compile in delay until', body: { name: 'x', steps: [transform(), { type: 'delay', until: '{{ $now( }}' }] }, field: 'steps[1].until' },
      { title: 'delay with neither seconds nor until', body: { name: 'x', steps: [{ type: 'delay' }] }, field: 'steps[0].seconds' },
      { title: 'delay seconds out of range', body: { name: 'x', steps: [{ type: 'delay', seconds: 31_536_001 }] }, field: 'steps[0].seconds' },
      { title: 'delay until that is not a timestamp', body: { name: 'x', steps: [{ type: 'delay', until: 'tomorrow' }] }, field: 'steps[0].until' },
      { title: 'unknown step field', body: { name: 'x', steps: [{ ...transform(), colour: 'red' }] }, field: 'colour' },
      { title: 'retry out of range', body: { name: 'x', steps: [{ ...transform(), retry: { max_attempts: 11 } }] }, field: 'steps[0].retry.max_attempts' },
      { title: 'name too long', body: { name: 'n'.repeat(201), steps: [transform()] }, field: 'name' },
      { title: 'empty name', body: { name: '', steps: [transform()] }, field: 'name' },
      { title: 'missing name', body: { steps: [transform()] }, field: 'name' },
      { title: 'step name too long', body: { name: 'x', steps: [{ ...transform(), name: 's'.repeat(201) }] }, field: 'steps[0].name' },
      { title: 'description not a string', body: { name: 'x', description: null, steps: [transform()] }, field: 'description' },
      { title: '0 steps', body: { name: 'x', steps: [] }, field: 'steps' },
      { title: '101 steps', body: { name: 'x', steps: Array.from({ length: 101 }, () => transform()) }, field: 'steps' },
      { title: 'steps not an array', body: { name: 'x', steps: {} }, field: 'steps' },
      { title: 'unknown top-level field', body: { name: 'x', steps: [transform()], owner: 'me' }, field: 'owner' },
      { title: 'body not an object', body: [1, 2], field: 'body' },
    ];
    for (const c of cases) {
      it(c.title, async () => {
        const res = await create(c.body);
        const message = expectError(res, 400, 'invalid_request');
        expect(message).toContain(c.field);
      });
    }

    it('nothing is stored by a rejected write', async () => {
      const ws = await t.createWorkspace('rejected writes');
      for (const c of cases) await create(c.body, ws.apiKey);
      expect((await t.request({ method: 'GET', url: '/api/v1/workflows', key: ws.apiKey })).json().workflows).toEqual([]);
    });
  });

  describe('workspace isolation', () => {
    it('another workspace’s workflow is 404 on get, put, delete and run-async, and absent from lists', async () => {
      const mine = (await create({ name: 'mine', steps: [transform()] })).json();
      const other = await t.createWorkspace('intruder');
      const as = (method: string, url: string, body?: unknown) => t.request({ method, url, key: other.apiKey, body });
      expectError(await as('GET', `/api/v1/workflows/${mine.id}`), 404, 'not_found');
      expectError(await as('PUT', `/api/v1/workflows/${mine.id}`, { name: 'hijacked', steps: [transform()] }), 404, 'not_found');
      expectError(await as('DELETE', `/api/v1/workflows/${mine.id}`), 404, 'not_found');
      expectError(await as('POST', `/api/v1/workflows/${mine.id}/run-async`, {}), 404, 'not_found');
      expect((await as('GET', '/api/v1/workflows')).json().workflows).toEqual([]);
      // Untouched, and not run.
      const after = (await t.request({ method: 'GET', url: `/api/v1/workflows/${mine.id}` })).json();
      expect(after).toEqual(mine);
      const otherWs = (await as('GET', '/api/v1/workspace')).json();
      expect(otherWs.credits).toBe(1000);
    });
  });
});
