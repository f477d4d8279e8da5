import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

describeEachBackend('a workflow runs end to end', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t.close());

  it('creates, runs and polls a workflow to success', async () => {
    const created = await t.request({
      method: 'POST',
      url: '/api/v1/workflows',
      body: { name: 'Greeting', steps: [{ type: 'transform', expression: "'Hello ' & input.name" }] },
    });
    expect(created.statusCode).toBe(201);
    const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${created.json().id}/run-async`, body: { input: { name: 'Ada' } } });
    expect(run.statusCode).toBe(202);
    const id = run.json().execution_id as string;
    const done: { steps: Array<{ result: unknown }> } = await eventually(async () => {
      const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` });
      return res.json().status === 'success' ? res.json() : null;
    });
    expect(done.steps[0]?.result).toBe('Hello Ada');
  });
});
