import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, settle, startTestServer } from './helpers/server.js';

// The Executions API exactly as docs/api.md#execution and #routes describe it:
// every response shape, every query parameter, stop, failures, cursor pagination under
// concurrent inserts, and the snapshot a running execution keeps of its workflow.

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/;
const ID = /^[0-9a-f]{24}$/;
const MISSING_ID = '0123456789abcdef01234567';

const EXECUTION_KEYS = ['execution_id', 'workflow_id', 'status', 'started_at', 'completed_at', 'error', 'input', 'error_code', 'error_step_index', 'created_at', 'trigger', 'retry_of', 'waiting_for'];
// `workflow_name` is part of the hosted product's execution object; it may appear on the single view too.
const EXECUTION_OPTIONAL_KEYS = ['workflow_name'];
const LIST_ITEM_KEYS = ['execution_id', 'workflow_id', 'workflow_name', 'status', 'started_at', 'completed_at', 'created_at', 'trigger', 'retry_of'];
const STEP_KEYS = ['index', 'name', 'type', 'status', 'result', 'error', 'error_code', 'attempts', 'reused', 'started_at', 'completed_at', 'progress', 'duration_ms'];

type Json = Record<string, unknown>;

function expectExecutionShape(body: Json, withSteps: boolean) {
  for (const key of EXECUTION_KEYS) expect(body, `missing ${key}`).toHaveProperty(key);
  const allowed = new Set([...EXECUTION_KEYS, ...EXECUTION_OPTIONAL_KEYS, ...(withSteps ? ['steps'] : [])]);
  expect(Object.keys(body).filter((k) => !allowed.has(k))).toEqual([]);
  if (withSteps) expect(Array.isArray(body.steps)).toBe(true);
  else expect(body).not.toHaveProperty('steps');
  expect(body.execution_id).toMatch(ID);
  expect(body.workflow_id).toMatch(ID);
  expect(['running', 'success', 'failed', 'stopped']).toContain(body.status);
  expect(body.started_at).toMatch(TIMESTAMP);
  expect(body.created_at).toMatch(TIMESTAMP);
  if (body.completed_at !== null) expect(body.completed_at).toMatch(TIMESTAMP);
  expect(body.error === null || typeof body.error === 'string').toBe(true);
  expect(body.error_code === null || typeof body.error_code === 'string').toBe(true);
  expect(body.error_step_index === null || Number.isInteger(body.error_step_index)).toBe(true);
}

function expectStepShape(step: Json) {
  expect(Object.keys(step).sort()).toEqual([...STEP_KEYS].sort());
  expect(Number.isInteger(step.index)).toBe(true);
  expect(['pending', 'running', 'completed', 'failed', 'skipped', 'stopped']).toContain(step.status);
  expect(Number.isInteger(step.attempts)).toBe(true);
  for (const k of ['started_at', 'completed_at']) if (step[k] !== null) expect(step[k]).toMatch(TIMESTAMP);
}

function expectErrorBody(res: { statusCode: number; json(): Json }, status: number, code: string) {
  expect(res.statusCode).toBe(status);
  const body = res.json();
  expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
  expect(typeof body.error).toBe('string');
  expect((body.error as string).length).toBeGreaterThan(0);
  expect(body.error_code).toBe(code);
}

describeEachBackend('Executions API', (backend) => {
  let t: TestServer;
  let quickWf: string; // one transform step
  let slowWf: string; // delay 60 s, then a transform
  let failWf: string; // transform, $error("boom"), transform

  const createWorkflow = async (name: string, steps: unknown[]) => {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name, steps } });
    expect(res.statusCode).toBe(201);
    return res.json().id as string;
  };
  const runAsync = (workflowId: string, body?: unknown) =>
    t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, ...(body !== undefined ? { body } : {}) });
  const start = async (workflowId: string, body?: unknown) => {
    const res = await runAsync(workflowId, body);
    expect(res.statusCode).toBe(202);
    return res.json().execution_id as string;
  };
  const getExecution = (id: string, query = '') => t.request({ method: 'GET', url: `/api/v1/executions/${id}${query}` });
  const waitForStatus = (id: string, status: string) =>
    eventually(async () => {
      const res = await getExecution(id, '?include_step_results=true');
      return res.json().status === status ? (res.json() as Json) : null;
    });

  beforeAll(async () => {
    t = await startTestServer(backend);
    quickWf = await createWorkflow('Quick', [{ type: 'transform', name: 'echo', expression: 'input' }]);
    slowWf = await createWorkflow('Slow', [
      { type: 'delay', name: 'wait', seconds: 60 },
      { type: 'transform', name: 'after', expression: '"done"' },
    ]);
    failWf = await createWorkflow('Failing', [
      { type: 'transform', name: 'first', expression: '1 + 1' },
      { type: 'transform', name: 'explode', expression: '$error("boom")' },
      { type: 'transform', name: 'never', expression: '"unreachable"' },
    ]);
  });
  afterAll(() => t?.close());

  describe('run-async', () => {
    it('answers 202 with exactly {execution_id, workflow_id, status: "running", created_at}', async () => {
      const res = await runAsync(slowWf, { input: { a: 1 } });
      expect(res.statusCode).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['created_at', 'execution_id', 'status', 'workflow_id']);
      expect(body.execution_id).toMatch(ID);
      expect(body.workflow_id).toBe(slowWf);
      expect(body.status).toBe('running');
      expect(body.created_at).toMatch(TIMESTAMP);
      // The same run, read back: created_at and started_at are the acceptance time.
      const got = (await getExecution(body.execution_id)).json();
      expect(got.created_at).toBe(body.created_at);
      expect(got.started_at).toBe(body.created_at);
      expect(got.status).toBe('running');
    });

    it('takes {input}, its alias {inputs}, or no body at all (input null)', async () => {
      const withInput = await start(quickWf, { input: { name: 'Ada', n: [1, 2] } });
      const withAlias = await start(quickWf, { inputs: ['x', 2] });
      const noBody = await start(quickWf);
      const emptyObject = await start(quickWf, {});
      const explicitNull = await start(quickWf, { input: null });
      const scalar = await start(quickWf, { input: 42 });
      expect((await getExecution(withInput)).json().input).toEqual({ name: 'Ada', n: [1, 2] });
      expect((await getExecution(withAlias)).json().input).toEqual(['x', 2]);
      expect((await getExecution(noBody)).json().input).toBeNull();
      expect((await getExecution(emptyObject)).json().input).toBeNull();
      expect((await getExecution(explicitNull)).json().input).toBeNull();
      expect((await getExecution(scalar)).json().input).toBe(42);
      // The input reaches the steps.
      const done = await waitForStatus(withAlias, 'success');
      expect((done.steps as Json[])[0]!.result).toEqual(['x', 2]);
    });

    it('rejects a body with both input and inputs, or a body that is not an object, with 400', async () => {
      const before = (await t.request({ method: 'GET', url: '/api/v1/workspace' })).json().credits;
      expectErrorBody(await runAsync(quickWf, { input: 1, inputs: 2 }), 400, 'invalid_request');
      expectErrorBody(await runAsync(quickWf, [1]), 400, 'invalid_request');
      expectErrorBody(await runAsync(quickWf, '"x"'), 400, 'invalid_request');
      expectErrorBody(await runAsync(quickWf, '42'), 400, 'invalid_request');
      expectErrorBody(await runAsync(quickWf, 'null'), 400, 'invalid_request');
      expectErrorBody(await runAsync(quickWf, '{"input":'), 400, 'invalid_request');
      // Nothing was started or charged.
      expect((await t.request({ method: 'GET', url: '/api/v1/workspace' })).json().credits).toBe(before);
    });

    it('answers 404 for an unknown or malformed workflow id', async () => {
      expectErrorBody(await runAsync(MISSING_ID, { input: 1 }), 404, 'not_found');
      expectErrorBody(await runAsync('not-an-id', { input: 1 }), 404, 'not_found');
    });
  });

  describe('get an execution', () => {
    it('omits steps by default and with include_step_results=false; lists them with =true', async () => {
      const id = await start(slowWf, { input: { k: 'v' } });
      await eventually(async () => {
        const steps = (await getExecution(id, '?include_step_results=true')).json().steps as Json[];
        return steps[0]!.status === 'running';
      });

      const plain = await getExecution(id);
      expect(plain.statusCode).toBe(200);
      expectExecutionShape(plain.json(), false);
      expect(plain.json()).toMatchObject({ execution_id: id, workflow_id: slowWf, status: 'running', completed_at: null, error: null, error_code: null, error_step_index: null, input: { k: 'v' } });

      const explicitFalse = await getExecution(id, '?include_step_results=false');
      expect(explicitFalse.statusCode).toBe(200);
      expectExecutionShape(explicitFalse.json(), false);

      const full = await getExecution(id, '?include_step_results=true');
      expect(full.statusCode).toBe(200);
      const body = full.json();
      expectExecutionShape(body, true);
      const steps = body.steps as Json[];
      expect(steps).toHaveLength(2);
      steps.forEach(expectStepShape);
      expect(steps.map((s) => s.index)).toEqual([0, 1]);
      expect(steps[0]).toMatchObject({ name: 'wait', type: 'delay', status: 'running', result: null, error: null, error_code: null, attempts: 1, completed_at: null });
      expect(steps[0]!.started_at).toMatch(TIMESTAMP);
      expect(steps[1]).toMatchObject({ name: 'after', type: 'transform', status: 'pending', result: null, attempts: 0, started_at: null, completed_at: null });
    });

    it('records how it was started: trigger {type: "api", key_id} of the calling key, retry_of null, on GET and list', async () => {
      const id = await start(quickWf, { input: 1 });
      const keys = await t.server.deps.db.db.selectFrom('api_keys').select(['id']).where('workspace_id', '=', t.workspaceId).execute();
      expect(keys).toHaveLength(1);
      const keyId = keys[0]!.id;
      const got = (await getExecution(id)).json();
      expect(got.trigger).toEqual({ type: 'api', key_id: keyId });
      expect(got.retry_of).toBeNull();
      const listed = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${quickWf}&limit=100` })).json().executions as Json[];
      expect(listed.find((e) => e.execution_id === id)).toMatchObject({ trigger: { type: 'api', key_id: keyId }, retry_of: null });
    });

    it('shows a finished execution with its step results', async () => {
      const id = await start(quickWf, { input: { hello: 'world' } });
      const done = await waitForStatus(id, 'success');
      expectExecutionShape(done, true);
      expect(done.completed_at).toMatch(TIMESTAMP);
      expect(done.error).toBeNull();
      const [step] = done.steps as Json[];
      expectStepShape(step!);
      expect(step).toMatchObject({ index: 0, name: 'echo', type: 'transform', status: 'completed', result: { hello: 'world' }, error: null, error_code: null, attempts: 1 });
      expect(step!.completed_at).toMatch(TIMESTAMP);
    });

    it('rejects include_step_results other than true/false with 400', async () => {
      const id = await start(quickWf);
      for (const value of ['maybe', 'TRUE', '1', '']) {
        expectErrorBody(await getExecution(id, `?include_step_results=${value}`), 400, 'invalid_request');
      }
    });

    it('answers 404 for an unknown or malformed execution id', async () => {
      const missing = await getExecution(MISSING_ID);
      expectErrorBody(missing, 404, 'not_found');
      expectErrorBody(await getExecution(MISSING_ID, '?include_step_results=true'), 404, 'not_found');
      expectErrorBody(await getExecution('xyz'), 404, 'not_found');
      expectErrorBody(await getExecution('0123456789ABCDEF01234567'), 404, 'not_found');
    });
  });

  describe('a failing workflow', () => {
    it('ends failed with error (a string), error_code and error_step_index; later steps stay pending', async () => {
      const id = await start(failWf, { input: null });
      const done = await waitForStatus(id, 'failed');
      expectExecutionShape(done, true);
      expect(typeof done.error).toBe('string');
      expect(done.error).toContain('boom');
      expect(done.error_code).toBe('expression_error');
      expect(done.error_step_index).toBe(1);
      expect(done.completed_at).toMatch(TIMESTAMP);
      const steps = done.steps as Json[];
      steps.forEach(expectStepShape);
      expect(steps.map((s) => s.status)).toEqual(['completed', 'failed', 'pending']);
      expect(steps[0]!.result).toBe(2);
      expect(steps[1]).toMatchObject({ error_code: 'expression_error', result: null });
      expect(typeof steps[1]!.error).toBe('string');
      // The light view carries the same error fields.
      const plain = (await getExecution(id)).json();
      expect(plain).toMatchObject({ status: 'failed', error: done.error, error_code: 'expression_error', error_step_index: 1 });
      // And a failed execution cannot be stopped.
      expectErrorBody(await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` }), 400, 'execution_not_running');
    });
  });

  describe('stop', () => {
    it('answers exactly {execution_id, status: "stopped"} and every later read says stopped', async () => {
      const id = await start(slowWf);
      await eventually(async () => ((await getExecution(id, '?include_step_results=true')).json().steps as Json[])[0]!.status === 'running');
      const res = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toStrictEqual({ execution_id: id, status: 'stopped' });

      const check = async () => {
        const plain = (await getExecution(id)).json();
        expect(plain.status).toBe('stopped');
        expect(plain.completed_at).toMatch(TIMESTAMP);
        const full = (await getExecution(id, '?include_step_results=true')).json();
        expect(full.status).toBe('stopped');
        expect(full.completed_at).toBe(plain.completed_at);
        const steps = full.steps as Json[];
        expect(steps.map((s) => s.status)).toEqual(['stopped', 'pending']);
        expect(steps[0]!.error_code).toBe('stopped');
        const list = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${slowWf}&limit=100` })).json().executions as Json[];
        expect(list.find((e) => e.execution_id === id)).toMatchObject({ status: 'stopped', completed_at: plain.completed_at });
        const stoppedList = (await t.request({ method: 'GET', url: '/api/v1/executions?status=stopped&limit=100' })).json().executions as Json[];
        expect(stoppedList.map((e) => e.execution_id)).toContain(id);
        const runningList = (await t.request({ method: 'GET', url: '/api/v1/executions?status=running&limit=100' })).json().executions as Json[];
        expect(runningList.map((e) => e.execution_id)).not.toContain(id);
      };
      await check();
      // The worker that held it must not resurrect or overwrite it afterwards.
      await settle(300);
      await check();
    });

    it('stops an execution whose step is in flight, keeping completed steps', async () => {
      const wf = await createWorkflow('Two-phase', [
        { type: 'transform', name: 'kept', expression: '"kept"' },
        { type: 'delay', name: 'wait', seconds: 60 },
        { type: 'transform', name: 'never', expression: '"never"' },
      ]);
      const id = await start(wf);
      await eventually(async () => ((await getExecution(id, '?include_step_results=true')).json().steps as Json[])[1]!.status === 'running');
      expect((await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` })).statusCode).toBe(200);
      const steps = (await getExecution(id, '?include_step_results=true')).json().steps as Json[];
      expect(steps.map((s) => s.status)).toEqual(['completed', 'stopped', 'pending']);
      expect(steps[0]!.result).toBe('kept');
    });

    it('answers 400 execution_not_running on a finished or already stopped execution', async () => {
      const done = await start(quickWf);
      await waitForStatus(done, 'success');
      expectErrorBody(await t.request({ method: 'POST', url: `/api/v1/executions/${done}/stop` }), 400, 'execution_not_running');
      expect((await getExecution(done)).json().status).toBe('success');

      const running = await start(slowWf);
      expect((await t.request({ method: 'POST', url: `/api/v1/executions/${running}/stop` })).statusCode).toBe(200);
      expectErrorBody(await t.request({ method: 'POST', url: `/api/v1/executions/${running}/stop` }), 400, 'execution_not_running');
    });

    it('answers 404 for an unknown or malformed execution id', async () => {
      expectErrorBody(await t.request({ method: 'POST', url: `/api/v1/executions/${MISSING_ID}/stop` }), 404, 'not_found');
      expectErrorBody(await t.request({ method: 'POST', url: '/api/v1/executions/nope/stop' }), 404, 'not_found');
    });
  });

  describe('list', () => {
    let listWf: string;
    let otherWf: string;
    let listIds: string[]; // newest first
    let otherIds: string[];

    beforeAll(async () => {
      listWf = await createWorkflow('Listed', [{ type: 'delay', seconds: 60 }]);
      otherWf = await createWorkflow('Other listed', [{ type: 'transform', expression: '1' }]);
      listIds = [];
      for (let i = 0; i < 25; i++) listIds.unshift(await start(listWf, { input: i }));
      otherIds = [];
      for (let i = 0; i < 3; i++) otherIds.unshift(await start(otherWf));
      for (const id of otherIds) await waitForStatus(id, 'success');
    });

    it('answers {executions: [...]} with exactly the list item fields, newest first, 20 by default', async () => {
      const res = await t.request({ method: 'GET', url: '/api/v1/executions' });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(Object.keys(body)).toEqual(['executions', 'has_more']);
      const items = body.executions as Json[];
      expect(items).toHaveLength(20);
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual([...LIST_ITEM_KEYS].sort());
        expect(item.execution_id).toMatch(ID);
        expect(item.workflow_id).toMatch(ID);
        expect(typeof item.workflow_name).toBe('string');
        expect(item.started_at).toMatch(TIMESTAMP);
        expect(item.created_at).toMatch(TIMESTAMP);
        if (item.completed_at !== null) expect(item.completed_at).toMatch(TIMESTAMP);
      }
      const ids = items.map((i) => i.execution_id as string);
      expect(ids).toEqual([...ids].sort().reverse());
      expect(new Set(ids).size).toBe(ids.length);
      // The newest are the three "Other listed" runs, then the listWf runs.
      expect(ids.slice(0, 3)).toEqual(otherIds);
      expect(ids.slice(3, 20)).toEqual(listIds.slice(0, 17));
      expect(items[0]).toMatchObject({ workflow_id: otherWf, workflow_name: 'Other listed', status: 'success' });
      expect(items[0]!.completed_at).toMatch(TIMESTAMP);
      expect(items[3]).toMatchObject({ workflow_id: listWf, workflow_name: 'Listed', status: 'running', completed_at: null });
    });

    it('filters by workflow_id and by status', async () => {
      const byWf = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&limit=100` })).json().executions as Json[];
      expect(byWf.map((e) => e.execution_id)).toEqual(listIds);
      expect(byWf.every((e) => e.workflow_id === listWf)).toBe(true);

      const byOther = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${otherWf}` })).json().executions as Json[];
      expect(byOther.map((e) => e.execution_id)).toEqual(otherIds);

      const none = await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${MISSING_ID}` });
      expect(none.statusCode).toBe(200);
      expect(none.json()).toEqual({ executions: [], has_more: false });

      const success = (await t.request({ method: 'GET', url: '/api/v1/executions?status=success&limit=100' })).json().executions as Json[];
      expect(success.length).toBeGreaterThanOrEqual(3);
      expect(success.every((e) => e.status === 'success')).toBe(true);
      for (const id of otherIds) expect(success.map((e) => e.execution_id)).toContain(id);

      const both = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&status=running&limit=10` })).json().executions as Json[];
      expect(both.map((e) => e.execution_id)).toEqual(listIds.slice(0, 10));
      const bothNone = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&status=success` })).json().executions as Json[];
      expect(bothNone).toEqual([]);

      for (const status of ['running', 'success', 'failed', 'stopped']) {
        expect((await t.request({ method: 'GET', url: `/api/v1/executions?status=${status}` })).statusCode).toBe(200);
      }
    });

    it('honours limit 1–100 and after, and rejects bad query parameters with 400', async () => {
      const one = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&limit=1` })).json().executions as Json[];
      expect(one.map((e) => e.execution_id)).toEqual([listIds[0]]);
      const hundred = await t.request({ method: 'GET', url: '/api/v1/executions?limit=100' });
      expect(hundred.statusCode).toBe(200);
      expect((hundred.json().executions as Json[]).length).toBeGreaterThanOrEqual(28);
      const after = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&limit=5&after=${listIds[4]}` })).json().executions as Json[];
      expect(after.map((e) => e.execution_id)).toEqual(listIds.slice(5, 10));
      const afterLast = (await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${listWf}&after=${listIds.at(-1)}` })).json();
      expect(afterLast).toEqual({ executions: [], has_more: false });

      for (const query of [
        'limit=0', 'limit=101', 'limit=-1', 'limit=abc', 'limit=10abc',
        'after=xyz', 'after=0123456789ABCDEF01234567', 'after=',
        'status=done', 'status=RUNNING', 'status=',
        'workflow_id=nope', 'workflow_id=0123456789ABCDEF01234567', 'workflow_id=',
      ]) {
        const res = await t.request({ method: 'GET', url: `/api/v1/executions?${query}` });
        expect({ query, status: res.statusCode }).toEqual({ query, status: 400 });
        expectErrorBody(res, 400, 'invalid_request');
      }
    });

    // Only a plain decimal integer is a limit: "1.5", "true" or "0x10" are bad query
    // parameters (docs/api.md#lists → 400), not silently coerced to 1, 1 or 16.
    it('rejects a limit that is not a plain decimal integer with 400', async () => {
      for (const query of ['limit=1.5', 'limit=true', 'limit=0x10', 'limit=1e1']) {
        const res = await t.request({ method: 'GET', url: `/api/v1/executions?${query}` });
        expect({ query, status: res.statusCode }).toEqual({ query, status: 400 });
        expectErrorBody(res, 400, 'invalid_request');
      }
    });

    it('walks every item exactly once while other executions are being inserted', async () => {
      const wf = await createWorkflow('Paged', [{ type: 'delay', seconds: 60 }]);
      const originals: string[] = [];
      for (let i = 0; i < 60; i++) originals.push(await start(wf));

      const inserted: string[] = [];
      const inserter = (async () => {
        for (let i = 0; i < 20; i++) {
          inserted.push(await start(wf));
          await new Promise((r) => setImmediate(r));
        }
      })();
      const walk = async (filter: string) => {
        const seen: string[] = [];
        let after: string | undefined;
        for (let page = 0; page < 100; page++) {
          const res = await t.request({ method: 'GET', url: `/api/v1/executions?limit=7${filter}${after ? `&after=${after}` : ''}` });
          expect(res.statusCode).toBe(200);
          const items = res.json().executions as Json[];
          expect(items.length).toBeLessThanOrEqual(7);
          if (items.length === 0) break;
          seen.push(...items.map((e) => e.execution_id as string));
          after = items.at(-1)!.execution_id as string;
          await new Promise((r) => setImmediate(r));
        }
        return seen;
      };
      const [seenByWf, seenAll] = await Promise.all([walk(`&workflow_id=${wf}`), walk(''), inserter]);
      expect(inserted).toHaveLength(20);

      for (const seen of [seenByWf, seenAll]) {
        expect(new Set(seen).size).toBe(seen.length); // nothing repeated
        for (const id of originals) expect(seen.filter((s) => s === id)).toHaveLength(1); // nothing skipped
        expect(seen).toEqual([...seen].sort().reverse()); // strictly newest first
      }
      // The unfiltered walk also saw every older execution of the other workflows.
      for (const id of [...listIds, ...otherIds]) expect(seenAll).toContain(id);
    });
  });

  describe('snapshot', () => {
    it('a running execution keeps the step list it was created with when the workflow is replaced', async () => {
      const wf = await createWorkflow('Versioned', [
        { type: 'delay', name: 'pause', seconds: 1 },
        { type: 'transform', name: 'old', expression: '"v1"' },
      ]);
      const id = await start(wf);
      await eventually(async () => ((await getExecution(id, '?include_step_results=true')).json().steps as Json[])[0]!.status === 'running');

      const put = await t.request({
        method: 'PUT',
        url: `/api/v1/workflows/${wf}`,
        body: { name: 'Versioned v2', steps: [{ type: 'transform', name: 'new', expression: '"v2"' }] },
      });
      expect(put.statusCode).toBe(200);

      const during = (await getExecution(id, '?include_step_results=true')).json();
      expect((during.steps as Json[]).map((s) => [s.name, s.type])).toEqual([['pause', 'delay'], ['old', 'transform']]);

      const done = await waitForStatus(id, 'success');
      const steps = done.steps as Json[];
      expect(steps.map((s) => [s.name, s.type, s.status])).toEqual([['pause', 'delay', 'completed'], ['old', 'transform', 'completed']]);
      expect(steps[1]!.result).toBe('v1');

      // A run started after the PUT uses the new steps.
      const fresh = await start(wf);
      const freshDone = await waitForStatus(fresh, 'success');
      expect((freshDone.steps as Json[]).map((s) => [s.name, s.result])).toEqual([['new', 'v2']]);
    });
  });
});
