import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorkflow } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#errors: a 400 says what would be right — the nearest known field for an
// unknown one, the allowed values of an enum, where run-async's input goes — and a
// workflow definition's every problem is reported at once.

describeEachBackend('validation messages', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t?.close());

  const post = (body: unknown) => t.request({ method: 'POST', url: '/api/v1/workflows', body });

  it('names an unknown field with the nearest known one', async () => {
    const res = await post({ name: 'w', steps: [{ type: 'transform', expression: '1', expresion: '1' }] });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'steps[0].expresion: unknown field; did you mean "expression"?', error_code: 'invalid_request' });
    const top = await post({ name: 'w', step: [], steps: [{ type: 'transform', expression: '1' }] });
    expect(top.json().error).toBe('step: unknown field; did you mean "steps"?');
  });

  it('reports every problem of a definition, each naming its field', async () => {
    const res = await post({
      name: 'w',
      steps: [
        { type: 'transform', expresion: '1' },
        { type: 'delay', seconds: -1 },
        { type: 'transform', expression: '(' },
        { type: 'nope' },
      ],
    });
    expect(res.statusCode).toBe(400);
    const error = res.json().error as string;
    expect(error).toMatch(/^5 problems: /);
    expect(error).toContain('steps[0].expression: expected required property');
    expect(error).toContain('steps[0].expresion: unknown field; did you mean "expression"?');
    expect(error).toContain('steps[1].seconds');
    expect(error).toContain('steps[2].expression');
    expect(error).toContain('steps[3].type: "nope" is not a step type');
    // Nothing was written.
    expect((await t.request({ method: 'GET', url: '/api/v1/workflows' })).json().workflows).toEqual([]);
  });

  it('lists the allowed values of an enum', async () => {
    const status = await t.request({ method: 'GET', url: '/api/v1/executions?status=done' });
    expect(status.statusCode).toBe(400);
    expect(status.json().error).toBe('status: must be one of running, success, failed, stopped (or several, comma-separated), got "done"');
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/run-async`, body: {} });
    const id = run.json().execution_id as string;
    const include = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=yes` });
    expect(include.statusCode).toBe(400);
    expect(include.json().error).toBe('include_step_results: must be one of true, false, got "yes"');
  });

  it('hints at { "input": … } when run-async gets other top-level fields', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/run-async`, body: { name: 'Ada' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/^name: unknown field.*send \{ "input": … \}/);
  });
});
