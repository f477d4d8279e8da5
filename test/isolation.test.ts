import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// docs/api.md#identifiers: an id that belongs to another workspace is answered exactly
// like an id that does not exist (404, same body) on every route, and lists never
// show another workspace's items — no existence leaks across workspaces.

type Res = Awaited<ReturnType<TestServer['request']>>;

const MISSING_WORKFLOW = '0123456789abcdef01234567';
const MISSING_EXECUTION = '76543210fedcba9876543210';

describeEachBackend('workspace isolation', (backend) => {
  let t: TestServer;
  // Workspace B, the "other" one, seen from the Default workspace (A).
  let b: { workspaceId: string; apiKey: string };
  let bWorkflow: string;
  let bRunning: string; // a running execution of B
  let bDone: string; // a finished execution of B
  let aWorkflow: string;
  let aExecution: string;

  const req = (method: string, url: string, opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    t.request({ method, url, ...opts });
  const workflowBody = { name: 'Replaced', steps: [{ type: 'transform', expression: '1' }] };

  /** The request on the other workspace's id answers exactly as on a missing id. */
  const expectSameAsMissing = (other: Res, missing: Res) => {
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error_code).toBe('not_found');
    expect(typeof missing.json().error).toBe('string');
    expect(other.statusCode).toBe(404);
    expect(other.body).toBe(missing.body);
    expect(other.headers['content-type']).toBe(missing.headers['content-type']);
    expect(other.headers['www-authenticate']).toBe(missing.headers['www-authenticate']);
  };

  beforeAll(async () => {
    t = await startTestServer(backend);
    b = await t.createWorkspace('Other', 100);
    const created = await req('POST', '/api/v1/workflows', {
      key: b.apiKey,
      body: { name: 'Theirs', steps: [{ type: 'delay', name: 'wait', seconds: 60 }] },
    });
    expect(created.statusCode).toBe(201);
    bWorkflow = created.json().id;
    const quick = (await req('POST', '/api/v1/workflows', { key: b.apiKey, body: { name: 'Theirs quick', steps: [{ type: 'transform', expression: '1' }] } })).json().id as string;
    bRunning = (await req('POST', `/api/v1/workflows/${bWorkflow}/run-async`, { key: b.apiKey })).json().execution_id;
    bDone = (await req('POST', `/api/v1/workflows/${quick}/run-async`, { key: b.apiKey })).json().execution_id;
    await eventually(async () => (await req('GET', `/api/v1/executions/${bDone}`, { key: b.apiKey })).json().status === 'success');

    aWorkflow = (await req('POST', '/api/v1/workflows', { body: { name: 'Mine', steps: [{ type: 'delay', seconds: 60 }] } })).json().id;
    aExecution = (await req('POST', `/api/v1/workflows/${aWorkflow}/run-async`)).json().execution_id;
  });
  afterAll(() => t?.close());

  it('GET, PUT and DELETE of another workspace’s workflow answer like a missing one', async () => {
    expectSameAsMissing(await req('GET', `/api/v1/workflows/${bWorkflow}`), await req('GET', `/api/v1/workflows/${MISSING_WORKFLOW}`));
    expectSameAsMissing(
      await req('PUT', `/api/v1/workflows/${bWorkflow}`, { body: workflowBody }),
      await req('PUT', `/api/v1/workflows/${MISSING_WORKFLOW}`, { body: workflowBody }),
    );
    expectSameAsMissing(await req('DELETE', `/api/v1/workflows/${bWorkflow}`), await req('DELETE', `/api/v1/workflows/${MISSING_WORKFLOW}`));

    // Nothing happened to B's workflow or its running execution.
    const theirs = await req('GET', `/api/v1/workflows/${bWorkflow}`, { key: b.apiKey });
    expect(theirs.statusCode).toBe(200);
    expect(theirs.json()).toMatchObject({ id: bWorkflow, name: 'Theirs' });
    expect(theirs.json().steps).toHaveLength(1);
    expect((await req('GET', `/api/v1/executions/${bRunning}`, { key: b.apiKey })).json().status).toBe('running');
  });

  it('run-async on another workspace’s workflow answers like a missing one and charges no one', async () => {
    const ws = async (key?: string) => (await req('GET', '/api/v1/workspace', { key })).json().credits as number;
    const [aCredits, bCredits] = [await ws(), await ws(b.apiKey)];
    expectSameAsMissing(
      await req('POST', `/api/v1/workflows/${bWorkflow}/run-async`, { body: { input: 1 } }),
      await req('POST', `/api/v1/workflows/${MISSING_WORKFLOW}/run-async`, { body: { input: 1 } }),
    );
    expectSameAsMissing(
      await req('POST', `/api/v1/workflows/${bWorkflow}/run-async`, { headers: { 'idempotency-key': 'iso-1' } }),
      await req('POST', `/api/v1/workflows/${MISSING_WORKFLOW}/run-async`, { headers: { 'idempotency-key': 'iso-2' } }),
    );
    expect(await ws()).toBe(aCredits);
    expect(await ws(b.apiKey)).toBe(bCredits);
    const bList = (await req('GET', `/api/v1/executions?workflow_id=${bWorkflow}`, { key: b.apiKey })).json().executions as unknown[];
    expect(bList).toHaveLength(1);
  });

  it('GET and stop of another workspace’s execution answer like a missing one', async () => {
    for (const id of [bRunning, bDone]) {
      for (const query of ['', '?include_step_results=true', '?include_step_results=false']) {
        expectSameAsMissing(await req('GET', `/api/v1/executions/${id}${query}`), await req('GET', `/api/v1/executions/${MISSING_EXECUTION}${query}`));
      }
      expectSameAsMissing(await req('POST', `/api/v1/executions/${id}/stop`), await req('POST', `/api/v1/executions/${MISSING_EXECUTION}/stop`));
      expectSameAsMissing(
        await req('POST', `/api/v1/executions/${id}/stop`, { headers: { 'idempotency-key': `iso-stop-${id}` } }),
        await req('POST', `/api/v1/executions/${MISSING_EXECUTION}/stop`, { headers: { 'idempotency-key': `iso-stop-missing-${id}` } }),
      );
    }
    // B's running execution was not stopped (a finished one is not a 400 either: see above).
    expect((await req('GET', `/api/v1/executions/${bRunning}`, { key: b.apiKey })).json().status).toBe('running');
  });

  it('B cannot reach A’s ids either', async () => {
    expectSameAsMissing(await req('GET', `/api/v1/workflows/${aWorkflow}`, { key: b.apiKey }), await req('GET', `/api/v1/workflows/${MISSING_WORKFLOW}`, { key: b.apiKey }));
    expectSameAsMissing(await req('GET', `/api/v1/executions/${aExecution}`, { key: b.apiKey }), await req('GET', `/api/v1/executions/${MISSING_EXECUTION}`, { key: b.apiKey }));
    expectSameAsMissing(await req('POST', `/api/v1/executions/${aExecution}/stop`, { key: b.apiKey }), await req('POST', `/api/v1/executions/${MISSING_EXECUTION}/stop`, { key: b.apiKey }));
    expect((await req('GET', `/api/v1/executions/${aExecution}`)).json().status).toBe('running');
  });

  it('lists never show the other workspace’s items, with or without filters', async () => {
    const executions = async (query: string, key?: string) => {
      const res = await req('GET', `/api/v1/executions${query}`, { key });
      expect(res.statusCode).toBe(200);
      return (res.json().executions as Array<{ execution_id: string; workflow_id: string }>);
    };
    const aAll = await executions('?limit=100');
    expect(aAll.map((e) => e.execution_id)).toContain(aExecution);
    expect(aAll.map((e) => e.execution_id)).not.toContain(bRunning);
    expect(aAll.map((e) => e.execution_id)).not.toContain(bDone);
    expect(aAll.every((e) => e.workflow_id !== bWorkflow)).toBe(true);

    // Filtering by the other workspace's workflow id: an empty list, as for an unknown id.
    expect(await executions(`?workflow_id=${bWorkflow}`)).toEqual([]);
    expect(await executions(`?workflow_id=${bWorkflow}&status=running`)).toEqual([]);
    expect(await executions(`?workflow_id=${bWorkflow}&limit=100&after=ffffffffffffffffffffffff`)).toEqual([]);
    for (const status of ['running', 'success']) {
      const ids = (await executions(`?status=${status}&limit=100`)).map((e) => e.execution_id);
      expect(ids).not.toContain(bRunning);
      expect(ids).not.toContain(bDone);
    }
    // A cursor taken from the other workspace does not open a window onto it.
    const afterTheirs = (await executions(`?after=${bRunning}&limit=100`)).map((e) => e.execution_id);
    expect(afterTheirs).not.toContain(bDone);

    const bAll = (await executions('?limit=100', b.apiKey)).map((e) => e.execution_id);
    expect(bAll.sort()).toEqual([bRunning, bDone].sort());
    expect(await executions(`?workflow_id=${aWorkflow}`, b.apiKey)).toEqual([]);

    const workflows = async (key?: string) =>
      ((await req('GET', '/api/v1/workflows?limit=100', { key })).json().workflows as Array<{ id: string }>).map((w) => w.id);
    expect(await workflows()).toContain(aWorkflow);
    expect(await workflows()).not.toContain(bWorkflow);
    expect(await workflows(b.apiKey)).not.toContain(aWorkflow);
    expect(await workflows(b.apiKey)).toContain(bWorkflow);
  });
});
