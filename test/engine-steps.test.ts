import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Deadline } from '../src/engine/deadline.js';
import { ExpressionAborted, ExpressionError, ExpressionTimeout, evaluate } from '../src/engine/expressions.js';
import { Abandoned, runAttempt } from '../src/engine/run-step.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import type { ExpressionContext, StepContext, StepType } from '../src/engine/steps/step-type.js';
import { renderTemplates } from '../src/engine/template.js';
import { type Json, createWorkflow, run, get, finished } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { sampled } from './helpers/event-loop.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#steps: order, templates, `if`, the expression context, step errors,
// continue_on_error, and the bounds on untrusted JSONata (time, size, depth) — which
// must never stall the rest of the server.

async function stepRows(t: TestServer, id: string) {
  return t.server.deps.db.db.selectFrom('execution_steps').selectAll().where('execution_id', '=', id).orderBy('idx').execute();
}

describeEachBackend('engine: steps', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { leaseMs: 1500, pollIntervalMs: 100 });
  });
  afterAll(() => t?.close());

  it('runs steps strictly in order, each seeing the results of the earlier ones', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', name: 'a', expression: 'input.n + 1' },
      { type: 'transform', name: 'b', expression: 'steps[0] * 10' },
      { type: 'transform', name: 'c', expression: '{ "sum": steps[0] + steps[1], "seen": $count(steps) }' },
      { type: 'transform', name: 'd', expression: '$count(steps) & ":" & $string(steps[2].sum)' },
    ]);
    const id = await run(t, wf, { n: 4 });
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.error).toBeNull();
    expect(e.error_code).toBeNull();
    expect(e.error_step_index).toBeNull();
    expect(e.steps.map((s: Json) => s.result)).toEqual([5, 50, { sum: 55, seen: 2 }, '3:55']);
    expect(e.steps.map((s: Json) => [s.index, s.name, s.status, s.attempts])).toEqual([
      [0, 'a', 'completed', 1],
      [1, 'b', 'completed', 1],
      [2, 'c', 'completed', 1],
      [3, 'd', 'completed', 1],
    ]);
    // In the rows (milliseconds): each step starts only after the previous one completed.
    const rows = await stepRows(t, id);
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.started_at).not.toBeNull();
      expect(rows[i]!.started_at!).toBeGreaterThanOrEqual(rows[i - 1]!.completed_at!);
    }
  });

  it('evaluates a template that is exactly one {{ expr }} to its JSON type, mixed text to a string', async () => {
    // Unit level: the renderer itself, on nested objects and arrays.
    const context = { input: { n: 7, obj: { a: [1, 2] }, s: 'x', t: true, nothing: null } };
    const rendered = await renderTemplates(
      {
        number: '{{ input.n }}',
        spaced: '{{input.n * 2}}',
        object: '{{ input.obj }}',
        boolean: '{{ input.t }}',
        nil: '{{ input.nothing }}',
        missing: '{{ input.nope }}',
        mixed: 'n={{ input.n }}',
        mixedObject: 'obj: {{ input.obj }}',
        two: '{{ input.n }}{{ input.n }}',
        plain: 'no template',
        nested: { list: ['{{ input.n }}', 'v{{ input.s }}', 3, false, null] },
      },
      context,
      { deadline: new Deadline(1000) },
    );
    expect(rendered).toEqual({
      number: 7,
      spaced: 14,
      object: { a: [1, 2] },
      boolean: true,
      nil: null,
      missing: null,
      mixed: 'n=7',
      mixedObject: 'obj: {"a":[1,2]}',
      two: '77',
      plain: 'no template',
      nested: { list: [7, 'vx', 3, false, null] },
    });
  });

  it('hands a step type its fields rendered, except type, name, if and its own expression fields', async () => {
    let seen: Record<string, unknown> | undefined;
    const probe: StepType = {
      type: 'probe',
      schema: {} as StepType['schema'],
      defaultTimeoutMs: 1000,
      expressionFields: ['source'],
      async run(context: StepContext) {
        seen = context.fields;
        return { kind: 'completed', result: null };
      },
    };
    const def = {
      type: 'probe',
      name: '{{ input.n }}',
      if: '{{ input.n }}',
      source: '{{ input.n }}',
      count: '{{ input.n }}',
      label: 'n is {{ input.n }}',
      body: { deep: ['{{ steps[0] }}', '{{ execution.workflow_name }}!'] },
    } as unknown as StepDefinition;
    const context: ExpressionContext = {
      input: { n: 3 },
      steps: [{ k: 'v' }],
      execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' },
      workflow: { workflow_id: 'w', name: 'W' },
    };
    const controller = new AbortController();
    await runAttempt({ type: probe, def, context, stepKey: 'e:0', attempt: 1, wakeAt: null, signal: controller.signal, now: Date.now, services: { allowPrivateNetwork: false, smtpUrl: null } });
    expect(seen).toEqual({
      type: 'probe',
      name: '{{ input.n }}',
      if: '{{ input.n }}',
      source: '{{ input.n }}',
      count: 3,
      label: 'n is 3',
      body: { deep: [{ k: 'v' }, 'W!'] },
    });
  });

  it('templates in a delay step are evaluated against the context with their JSON type', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '0' },
      { type: 'delay', seconds: '{{ steps[0] }}' },
      { type: 'delay', until: '{{ input.when }}' },
    ]);
    const id = await run(t, wf, { when: '2020-01-01T00:00:00+00:00' });
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps[2].result).toEqual({ waited_until: '2020-01-01T00:00:00+00:00' });
  });

  it('skips a step whose `if` is falsy, leaving null in steps[i] for later steps', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '1' },
      { type: 'transform', if: 'input.go = false', expression: '"ran"' },
      { type: 'transform', if: "''", expression: '"ran"' },
      { type: 'transform', if: 'input.missing', expression: '"ran"' },
      { type: 'transform', if: '[]', expression: '"ran"' },
      { type: 'transform', if: 'steps[0] = 1 and input.go', expression: '"truthy ran"' },
      { type: 'transform', expression: '[$type(steps[1]), $type(steps[2]), $type(steps[3]), $type(steps[4]), steps[5], $count(steps)]' },
    ]);
    const id = await run(t, wf, { go: true });
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps.map((s: Json) => s.status)).toEqual(['completed', 'skipped', 'skipped', 'skipped', 'skipped', 'completed', 'completed']);
    for (const i of [1, 2, 3, 4]) {
      expect(e.steps[i].result).toBeNull();
      expect(e.steps[i].error).toBeNull();
      expect(e.steps[i].completed_at).not.toBeNull();
    }
    expect(e.steps[5].result).toBe('truthy ran');
    expect(e.steps[6].result).toEqual(['null', 'null', 'null', 'null', 'truthy ran', 6]);
  });

  it('gives expressions input, steps, execution {execution_id, workflow_id, workflow_name} and workflow {workflow_id, name}', async () => {
    const wf = await createWorkflow(
      t,
      [
        { type: 'transform', expression: '"first"' },
        { type: 'transform', expression: '{ "input": input, "steps": steps, "execution": execution, "workflow": workflow }' },
      ],
      'Context Workflow',
    );
    const input = { user: { name: 'Ada', tags: ['a', 'b'] }, n: 1.5 };
    const id = await run(t, wf, input);
    // The snapshot is taken at creation: renaming the workflow afterwards changes nothing.
    await t.request({
      method: 'PUT',
      url: `/api/v1/workflows/${wf}`,
      body: { name: 'Renamed', steps: [{ type: 'transform', expression: '"other"' }] },
    });
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.steps[1].result).toEqual({
      input,
      steps: ['first'],
      execution: { execution_id: id, workflow_id: wf, workflow_name: 'Context Workflow' },
      workflow: { workflow_id: wf, name: 'Context Workflow' },
    });
  });

  it('fails the step and the execution on $error(): expression_error, error string, error_step_index', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '"ok"' },
      { type: 'transform', name: 'boom', expression: '$error("custom failure x")' },
      { type: 'transform', expression: '"never"' },
    ]);
    const id = await run(t, wf);
    const e = await finished(t, id);
    expect(e.status).toBe('failed');
    expect(typeof e.error).toBe('string');
    expect(e.error).toContain('custom failure x');
    expect(e.error_code).toBe('expression_error');
    expect(e.error_step_index).toBe(1);
    expect(e.completed_at).not.toBeNull();
    expect(e.steps[0]).toMatchObject({ status: 'completed', result: 'ok' });
    expect(e.steps[1]).toMatchObject({ status: 'failed', result: null, error_code: 'expression_error', attempts: 1 });
    expect(e.steps[1].error).toContain('custom failure x');
    expect(e.steps[1].completed_at).not.toBeNull();
    expect(e.steps[2]).toMatchObject({ status: 'pending', result: null, error: null, attempts: 0, started_at: null, completed_at: null });
    // The list agrees.
    const list = await t.request({ method: 'GET', url: `/api/v1/executions?workflow_id=${wf}` });
    expect(list.json().executions.find((x: Json) => x.execution_id === id).status).toBe('failed');
  });

  it('fails with expression_error when an `if` predicate errors', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', if: '$error("bad predicate")', expression: '1' }]);
    const e = await finished(t, await run(t, wf));
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('expression_error');
    expect(e.error_step_index).toBe(0);
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'expression_error' });
  });

  it('continue_on_error: the execution goes on and succeeds; the failed step keeps its error and leaves null in steps[i]', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '1' },
      { type: 'transform', continue_on_error: true, expression: '$error("tolerated")' },
      { type: 'transform', expression: '[$type(steps[1]), steps[0] + 1]' },
      { type: 'transform', continue_on_error: true, expression: '$error("tolerated at the end")' },
    ]);
    const id = await run(t, wf);
    const e = await finished(t, id);
    expect(e.status).toBe('success');
    expect(e.error).toBeNull();
    expect(e.error_code).toBeNull();
    expect(e.error_step_index).toBeNull();
    expect(e.steps[1]).toMatchObject({ status: 'failed', result: null, error_code: 'expression_error' });
    expect(e.steps[1].error).toContain('tolerated');
    expect(e.steps[2]).toMatchObject({ status: 'completed', result: ['null', 2] });
    expect(e.steps[3]).toMatchObject({ status: 'failed', result: null, error_code: 'expression_error' });
    expect(e.steps[3].error).toContain('tolerated at the end');
  });

  it('fails a huge range fast with expression_error', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '$sum([1..100000000])' }]);
    const t0 = Date.now();
    const e = await finished(t, await run(t, wf));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('expression_error');
    expect(e.steps[0].error_code).toBe('expression_error');
  });

  it('fails a deep (non-tail) recursion fast with expression_error', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '($f := function($x){ 1 + $f($x) }; $f(1))' }]);
    const t0 = Date.now();
    const e = await finished(t, await run(t, wf));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('expression_error');
  });

  it('fails an infinite recursion within its time budget while the server keeps answering', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '($f := function($x){ $f($x) }; $f(1))' }]);
    const t0 = Date.now();
    const id = await run(t, wf);
    // Back-to-back requests while the expression runs: if evaluation blocked the event
    // loop, the request in flight would wait for the whole budget (1000 ms).
    let maxLatency = 0;
    let requests = 0;
    let e: Json;
    for (;;) {
      const start = Date.now();
      const ws = await t.request({ method: 'GET', url: '/api/v1/workspace' });
      expect(ws.statusCode).toBe(200);
      maxLatency = Math.max(maxLatency, Date.now() - start);
      requests++;
      e = await get(t, id);
      if (e.status !== 'running') break;
      expect(Date.now() - t0).toBeLessThan(5000);
      // inject() on SQLite can resolve in microtasks only: yield so the worker runs.
      await new Promise((r) => setTimeout(r, 10));
    }
    const elapsed = Date.now() - t0;
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('timeout');
    expect(e.steps[0].status).toBe('failed');
    expect(elapsed).toBeGreaterThanOrEqual(900); // it really ran for its budget…
    expect(elapsed).toBeLessThan(3000); // …and no longer
    expect(requests).toBeGreaterThan(5);
    expect(maxLatency).toBeLessThan(400);
  });

  it('respects a transform step’s timeout_ms (both a shorter and a longer budget than the default)', async () => {
    const loop = '($f := function($x){ $f($x) }; $f(1))';
    const short = await createWorkflow(t, [{ type: 'transform', timeout_ms: 300, expression: loop }]);
    const long = await createWorkflow(t, [{ type: 'transform', timeout_ms: 2000, expression: loop }]);
    const [a, b] = [await run(t, short), await run(t, long)];
    const [ea, eb] = [await finished(t, a), await finished(t, b)];
    for (const e of [ea, eb]) {
      expect(e.status).toBe('failed');
      expect(e.error_code).toBe('timeout');
      expect(e.steps[0].status).toBe('failed');
      expect(e.steps[0].attempts).toBe(1);
    }
    const [ra, rb] = [(await stepRows(t, a))[0]!, (await stepRows(t, b))[0]!];
    const took = (r: typeof ra) => r.completed_at! - r.started_at!;
    expect(took(ra)).toBeGreaterThanOrEqual(280);
    expect(took(ra)).toBeLessThan(900);
    expect(took(rb)).toBeGreaterThanOrEqual(1950);
    expect(took(rb)).toBeLessThan(2900);
  });
});

describe('engine: runAttempt (the step framework)', () => {
  const context: ExpressionContext = {
    input: null,
    steps: [],
    execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' },
    workflow: { workflow_id: 'w', name: 'W' },
  };

  it('ends a step that ignores its signal at timeout_ms with a retryable timeout', async () => {
    const stuck: StepType = {
      type: 'stuck',
      schema: {} as StepType['schema'],
      defaultTimeoutMs: 1000,
      expressionFields: [],
      run: () => new Promise(() => {}),
    };
    const t0 = Date.now();
    const error = await runAttempt({
      type: stuck,
      def: { type: 'stuck', timeout_ms: 150 } as unknown as StepDefinition,
      context,
      stepKey: 'e:0',
      attempt: 1,
      wakeAt: null,
      signal: new AbortController().signal,
      now: Date.now,
      services: { allowPrivateNetwork: false, smtpUrl: null },
    }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(Abandoned);
    expect(error).toMatchObject({ code: 'timeout', retryable: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(Date.now() - t0).toBeLessThan(800);
  });
});

describe('engine: expression evaluation never holds the event loop', () => {
  it('bounds an infinite loop by its budget, with the event loop free meanwhile', async () => {
    const { value, maxGap, ms } = await sampled(() => evaluate('($f := function($x){ $f($x) }; $f(1))', {}, { deadline: new Deadline(700) }));
    expect(value).toBeInstanceOf(ExpressionTimeout);
    expect(ms).toBeGreaterThanOrEqual(690);
    expect(ms).toBeLessThan(1500);
    expect(maxGap).toBeLessThan(150);
  });

  it('still evaluates a slow but finite expression correctly, keeping JSON types', async () => {
    const src = '($f := function($n, $acc){ $n = 0 ? $acc : $f($n - 1, $acc + 1) }; { "count": $f(150000, 0), "ctx": input.a, "list": [1, "two", null] })';
    const { value, maxGap } = await sampled(() => evaluate(src, { input: { a: { b: [true] } } }, { deadline: new Deadline(20_000) }));
    expect(value).toEqual({ count: 150000, ctx: { b: [true] }, list: [1, 'two', null] });
    expect(maxGap).toBeLessThan(150);
  });

  it('reports errors raised after the fast slice, and keeps many concurrent runaways bounded', async () => {
    const late = evaluate('($f := function($n){ $n = 0 ? $error("late failure") : $f($n - 1) }; $f(100000))', {}, { deadline: new Deadline(20_000) });
    await expect(late).rejects.toThrow(/late failure/);
    const t0 = Date.now();
    const all = await Promise.allSettled(Array.from({ length: 12 }, () => evaluate('($f := function($x){ $f($x) }; $f(1))', {}, { deadline: new Deadline(400) })));
    expect(all.every((r) => r.status === 'rejected' && r.reason instanceof ExpressionTimeout)).toBe(true);
    // Each had 400 ms of running time; waiting for a thread is not counted, so 12 on a
    // few threads take a few rounds — but they do run side by side.
    expect(Date.now() - t0).toBeLessThan(12 * 400);
  });

  it('abandons an evaluation at once when its signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const { value, ms } = await sampled(() => evaluate('($f := function($x){ $f($x) }; $f(1))', {}, { deadline: new Deadline(30_000), signal: controller.signal }));
    expect(value).toBeInstanceOf(ExpressionAborted);
    expect(ms).toBeLessThan(600);
    // The pool is usable afterwards.
    await expect(evaluate('($f := function($n){ $n = 0 ? "ok" : $f($n - 1) }; $f(50000))', {}, { deadline: new Deadline(10_000) })).resolves.toBe('ok');
  });
});
