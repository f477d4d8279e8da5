import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepResultText } from '../src/engine/execution-result-budget.js';
import { MAX_RESPONSE_JSON_DEPTH, nestsDeeperThan, readResponseBody } from '../src/engine/net/response-body.js';
import { MAX_RESULT_DEPTH, storableResult } from '../src/engine/step-result.js';
import { type Json, createWorkflow, finished, run as start } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// No property of a step's result may crash the worker: a result is stored only when
// it is bounded in size and depth and serializable at all, and otherwise its step
// fails once, cleanly, with result_too_large or result_not_storable. An http response
// nested too deep is kept as its text. An execution's stored results have a total
// bound, which is what bounds a GET with include_step_results.


const LIMITS = { maxBytes: 1024 * 1024, maxDepth: MAX_RESULT_DEPTH };
const deepArray = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

describe('storableResult', () => {
  it('writes exactly what JSON.stringify writes, for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), (value) => {
        const stored = storableResult(value, LIMITS);
        expect(stored.ok && stored.text).toBe(JSON.stringify(value));
      }),
      { numRuns: 300, seed: Number(process.env.SKIPFLOW_FC_SEED ?? 11) },
    );
  });

  it('and for what JavaScript adds: toJSON, undefined, functions, non-finite numbers, boxed values, sparse arrays', () => {
    const odd = {
      when: new Date(0),
      gone: undefined,
      fn: () => 1,
      list: [undefined, () => 2, Number.NaN, Infinity, -0, 1e21, , 'x'], // eslint-disable-line no-sparse-arrays
      boxed: [new Number(3), new String('s'), new Boolean(false)],
      nested: { toJSON: (key: string) => ({ key }) },
      text: 'é \u0000 \ud800 "quoted" \\',
    };
    expect(storableResult(odd, LIMITS)).toEqual({ ok: true, text: JSON.stringify(odd), bytes: Buffer.byteLength(JSON.stringify(odd)) });
    expect(storableResult(undefined, LIMITS)).toMatchObject({ ok: true, text: 'null' });
    expect(storableResult(() => 1, LIMITS)).toMatchObject({ ok: true, text: 'null' });
  });

  it('refuses a value nested 100,000 levels deep without overflowing the stack', () => {
    const stored = storableResult(JSON.parse(deepArray(100_000)), LIMITS);
    expect(stored.ok).toBe(false);
    expect(!stored.ok && stored.failure).toMatchObject({ code: 'result_not_storable', retryable: false });
    expect(!stored.ok && stored.failure.message).toMatch(/nests deeper than 128 levels/);
  });

  it('stores exactly MAX_RESULT_DEPTH levels and refuses one more', () => {
    expect(storableResult(JSON.parse(deepArray(MAX_RESULT_DEPTH)), LIMITS).ok).toBe(true);
    expect(storableResult(JSON.parse(deepArray(MAX_RESULT_DEPTH + 1)), LIMITS).ok).toBe(false);
  });

  it('refuses cycles, BigInts and a throwing toJSON with result_not_storable', () => {
    const cyclic: Json = { a: 1 };
    cyclic.self = { back: cyclic };
    const shared = { x: 1 };
    expect(storableResult({ one: shared, two: shared }, LIMITS).ok).toBe(true); // shared is not a cycle
    for (const [value, why] of [
      [cyclic, /cycle/],
      [{ n: 10n }, /BigInt/],
      [{ toJSON: () => { throw new Error('nope'); } }, /toJSON\(\) failed \(nope\)/],
    ] as const) {
      const stored = storableResult(value, LIMITS);
      expect(!stored.ok && stored.failure.code).toBe('result_not_storable');
      expect(!stored.ok && stored.failure.message).toMatch(why);
    }
  });

  it('refuses a result over maxBytes with result_too_large, counting UTF-8 bytes', () => {
    expect(storableResult('x'.repeat(1022), { maxBytes: 1024, maxDepth: 8 }).ok).toBe(true); // 1024 with the quotes
    expect(storableResult('x'.repeat(1023), { maxBytes: 1024, maxDepth: 8 })).toMatchObject({ ok: false, failure: { code: 'result_too_large' } });
    expect(storableResult('é'.repeat(600), { maxBytes: 1024, maxDepth: 8 }).ok).toBe(false); // 602 characters, 1202 bytes
    const big = Array.from({ length: 200_000 }, (_, i) => ({ i, pad: 'x'.repeat(40) })); // ~10 MB as JSON
    const stored = storableResult(big, LIMITS);
    expect(!stored.ok && stored.failure.message).toMatch(/larger than 1048576 bytes/);
  });
});

describe('the execution total', () => {
  it('counts what was stored before the claim and what this claim stores', () => {
    const claim = { steps: [{ status: 'completed' as const, result: '"' + 'a'.repeat(998) + '"' }, { status: 'pending' as const, result: null }] };
    const bounds = { maxResultBytes: 1500, maxExecutionResultBytes: 2500 };
    expect(stepResultText(claim, 'b'.repeat(898), bounds)).toMatchObject({ ok: true, bytes: 900 });
    const over = stepResultText(claim, 'c'.repeat(700), bounds); // 1000 + 900 + 702 > 2500
    expect(over).toMatchObject({ ok: false, failure: { code: 'result_too_large' } });
    expect(!over.ok && over.failure.message).toMatch(/this execution's stored results over 2500 bytes as JSON \(1900 bytes are stored already\)/);
    expect(stepResultText(claim, 'd'.repeat(598), bounds).ok).toBe(true); // exactly 2500
  });
});

describe('http response bodies', () => {
  it('finds nesting depth in one pass, ignoring brackets inside strings', () => {
    expect(nestsDeeperThan(deepArray(64), 64)).toBe(false);
    expect(nestsDeeperThan(deepArray(65), 64)).toBe(true);
    expect(nestsDeeperThan(JSON.stringify({ s: '[[[[[[[[[[ \\" {{{{{{' }), 2)).toBe(false);
    expect(nestsDeeperThan(JSON.stringify([['"\\\\'], [[1]]]), 2)).toBe(true);
  });

  it('keeps a JSON body nested deeper than 64 levels as its text', async () => {
    const text = deepArray(100_000);
    async function* stream() {
      yield Buffer.from(text);
    }
    const body = Object.assign(stream(), { destroy: () => {} });
    expect(await readResponseBody(body, 'application/json')).toEqual({ body: text, truncated: false });
    const shallow = Object.assign((async function* () { yield Buffer.from(deepArray(MAX_RESPONSE_JSON_DEPTH)); })(), { destroy: () => {} });
    expect((await readResponseBody(shallow, 'application/json')).body).toEqual(JSON.parse(deepArray(MAX_RESPONSE_JSON_DEPTH)));
  });
});

describeEachBackend('step results in a running server', (backend) => {
  let t: TestServer;
  let target: { port: number; requests: () => number; close(): Promise<void> };
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true, maxResultBytes: 300_000, maxExecutionResultBytes: 700_000 });
    let requests = 0;
    const deep = deepArray(100_000); // 200 KB, under the 256 KiB body bound
    const server = createServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(deep);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    target = {
      port: (server.address() as AddressInfo).port,
      requests: () => requests,
      close: async () => {
        server.closeAllConnections();
        server.close();
      },
    };
  });
  afterAll(async () => {
    await target?.close();
    await t?.close();
  });

  async function run(steps: unknown[]): Promise<Json> {
    return finished(t, await start(t, await createWorkflow(t, steps, 'results'), { port: target.port }), 20_000);
  }

  it('an http response nested 100,000 levels deep: the step completes once, the body kept as text', async () => {
    const e = await run([
      { type: 'http', url: 'http://127.0.0.1:{{ input.port }}/deep', retry: { max_attempts: 3, backoff_ms: 10 } },
      { type: 'transform', expression: '$type(steps[0].body)' },
    ]);
    expect(e.status, JSON.stringify(e).slice(0, 300)).toBe('success');
    expect(target.requests()).toBe(1);
    expect(e.steps[0].attempts).toBe(1);
    expect(e.steps[0].result.body).toBe(deepArray(100_000));
    expect(e.steps[1].result).toBe('string');
  });

  it('a transform result over SKIPFLOW_MAX_RESULT_BYTES fails its step once with result_too_large', async () => {
    const e = await run([{ type: 'transform', expression: '$pad("", 300000, "x")', retry: { max_attempts: 3, backoff_ms: 10 } }]);
    expect(e).toMatchObject({ status: 'failed', error_code: 'result_too_large', error_step_index: 0 });
    expect(e.error).toMatch(/larger than 300000 bytes/);
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'result_too_large', attempts: 1, result: null });
  });

  it('a transform result nested deeper than 128 levels fails with result_not_storable', async () => {
    const e = await run([{ type: 'transform', expression: '$reduce([1..130], function($acc, $i) { {\"a\": $acc} }, 1)', timeout_ms: 5000 }]);
    expect(e.steps[0].error_code, e.steps[0].error).toBe('result_not_storable');
    expect(e).toMatchObject({ status: 'failed', error_code: 'result_not_storable' });
  });

  it('with continue_on_error the execution goes on and the refused result is null', async () => {
    const e = await run([
      { type: 'transform', expression: '$pad("", 300000, "x")', continue_on_error: true },
      { type: 'transform', expression: 'steps[0] = null' },
    ]);
    expect(e.status).toBe('success');
    expect(e.steps.map((s: Json) => s.status)).toEqual(['failed', 'completed']);
    expect(e.steps[1].result).toBe(true);
  });

  it('bounds a GET with step results: the execution total stops the step that would pass it', async () => {
    const steps = Array.from({ length: 5 }, () => ({ type: 'transform', expression: '$pad("", 200000, "x")' }));
    const e = await run(steps);
    // 3 × 200,002 bytes fit in 700,000; the fourth would not.
    expect(e).toMatchObject({ status: 'failed', error_code: 'result_too_large', error_step_index: 3 });
    expect(e.error).toMatch(/over 700000 bytes as JSON \(600006 bytes are stored already\)/);
    const res = await t.request({ method: 'GET', url: `/api/v1/executions/${e.execution_id}?include_step_results=true` });
    expect(res.body.length).toBeGreaterThan(600_000);
    expect(res.body.length).toBeLessThan(700_000 + 4096);
  });
});
