import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#conventions and #errors: the HTTP shell. Every error is exactly `{ error, error_code }` (no stack,
// nothing else), every response has an X-Request-Id, bodies are JSON of at most 1 MiB
// and 64 levels, an empty body is `{}`, malformed path ids are 404s and malformed
// query parameters 400s that name the parameter.

const ERROR_CODES = new Set([
  'invalid_request',
  'execution_not_running',
  'unauthorized',
  'insufficient_credits',
  'insufficient_scope',
  'not_found',
  'idempotency_key_in_use',
  'payload_too_large',
  'unsupported_media_type',
  'idempotency_key_reused',
  'rate_limited',
  'concurrent_execution_limit',
  'internal_error',
]);

const requestIds = new Set<string>();

function expectRequestId(res: LightMyRequestResponse): void {
  const id = res.headers['x-request-id'];
  expect(typeof id, `X-Request-Id on ${res.statusCode} ${res.body.slice(0, 100)}`).toBe('string');
  expect((id as string).length).toBeGreaterThan(0);
  expect(requestIds.has(id as string), 'request ids are unique').toBe(false);
  requestIds.add(id as string);
  // Hygiene headers travel with the request id on every answer, errors included.
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['x-content-type-options']).toBe('nosniff');
}

function expectError(res: LightMyRequestResponse, status: number, code: string): string {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  const body = JSON.parse(res.body) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
  expect(body.error_code).toBe(code);
  expect(ERROR_CODES.has(code)).toBe(true);
  expect(typeof body.error).toBe('string');
  const message = body.error as string;
  expect(message.length).toBeGreaterThan(0);
  expect(message).not.toMatch(/\n\s+at /); // no stack trace
  expect(message).not.toMatch(/node_modules|\/src\/|\.ts:\d+|\.js:\d+/);
  expectRequestId(res);
  return message;
}

const ZERO_ID = '000000000000000000000000';

describeEachBackend('HTTP errors and request handling', (backend) => {
  let t: TestServer;
  let workflowId: string;
  let executionId: string;

  beforeAll(async () => {
    t = await startTestServer(backend);
    const wf = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'w', steps: [{ type: 'delay', seconds: 3600 }] } });
    expect(wf.statusCode).toBe(201);
    workflowId = wf.json().id;
    const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async` });
    expect(run.statusCode).toBe(202);
    executionId = run.json().execution_id;
  });
  afterAll(() => t?.close());

  describe('routing', () => {
    it('an unknown route is 404 not_found', async () => {
      for (const url of ['/api/v1/nope', '/api/v1/workflows/abc/def', '/nope', '/api/v2/workflows', '/api/v1/workflows/x/run-async/more']) {
        expectError(await t.request({ method: 'GET', url }), 404, 'not_found');
      }
      expectError(await t.request({ method: 'POST', url: '/api/v1/nope', body: {} }), 404, 'not_found');
    });

    it('an unknown route without a key is 401 (401 comes first)', async () => {
      const res = await t.request({ method: 'GET', url: '/api/v1/nope', key: null });
      expectError(res, 401, 'unauthorized');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it('an unknown method on a known path is 404, like any unknown route', async () => {
      const cases: [string, string][] = [
        ['PATCH', '/api/v1/workflows'],
        ['DELETE', '/api/v1/workflows'],
        ['PUT', '/api/v1/workflows'],
        ['PATCH', `/api/v1/workflows/${workflowId}`],
        ['POST', `/api/v1/workflows/${workflowId}`],
        ['GET', `/api/v1/workflows/${workflowId}/run-async`],
        ['DELETE', `/api/v1/executions/${executionId}`],
        ['GET', `/api/v1/executions/${executionId}/stop`],
        ['POST', '/api/v1/workspace'],
        ['POST', '/api/v1/executions'],
      ];
      for (const [method, url] of cases) {
        const res = await t.request({ method, url });
        expect(res.statusCode, `${method} ${url}`).toBe(404);
        expectError(res, 404, 'not_found');
      }
      // And nothing was touched.
      expect((await t.request({ method: 'GET', url: `/api/v1/workflows/${workflowId}` })).statusCode).toBe(200);
    });

    it('a malformed id in the path is 404, never 400 or 500', async () => {
      const bad = ['abc', 'ZZZZZZZZZZZZZZZZZZZZZZZZ', ZERO_ID.toUpperCase().replace(/0/g, 'A'), `${ZERO_ID}0`, ZERO_ID.slice(1), 'a'.repeat(600), '%20', "1'%20OR%20'1'='1", '..%2F..'];
      for (const id of bad) {
        const cases: [string, string, unknown][] = [
          ['GET', `/api/v1/workflows/${id}`, undefined],
          ['PUT', `/api/v1/workflows/${id}`, { name: 'x', steps: [{ type: 'transform', expression: '1' }] }],
          ['DELETE', `/api/v1/workflows/${id}`, undefined],
          ['POST', `/api/v1/workflows/${id}/run-async`, {}],
          ['GET', `/api/v1/executions/${id}`, undefined],
          ['GET', `/api/v1/executions/${id}?include_step_results=true`, undefined],
          ['POST', `/api/v1/executions/${id}/stop`, {}],
        ];
        for (const [method, url, body] of cases) {
          const res = await t.request({ method, url, body });
          expect(res.statusCode, `${method} ${url.slice(0, 80)}`).toBe(404);
          expectError(res, 404, 'not_found');
        }
      }
    });

    it('a well-formed unknown id is 404', async () => {
      expectError(await t.request({ method: 'GET', url: `/api/v1/workflows/${ZERO_ID}` }), 404, 'not_found');
      expectError(await t.request({ method: 'GET', url: `/api/v1/executions/${ZERO_ID}` }), 404, 'not_found');
      expectError(await t.request({ method: 'POST', url: `/api/v1/executions/${ZERO_ID}/stop` }), 404, 'not_found');
      expectError(await t.request({ method: 'POST', url: `/api/v1/workflows/${ZERO_ID}/run-async` }), 404, 'not_found');
    });
  });

  describe('request bodies', () => {
    it('malformed JSON is 400 invalid_request', async () => {
      for (const body of ['{', '{"name": }', 'nul', '{"a":1}}', "{'a':1}", '[1,]']) {
        expectError(await t.request({ method: 'POST', url: '/api/v1/workflows', body }), 400, 'invalid_request');
        expectError(await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body }), 400, 'invalid_request');
      }
    });

    it('a body over 1 MiB is 413 payload_too_large', async () => {
      const big = JSON.stringify({ name: 'big', description: 'x'.repeat(1024 * 1024), steps: [{ type: 'transform', expression: '1' }] });
      expectError(await t.request({ method: 'POST', url: '/api/v1/workflows', body: big }), 413, 'payload_too_large');
      const bigInput = JSON.stringify({ input: 'y'.repeat(1024 * 1024 + 10) });
      expectError(await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: bigInput }), 413, 'payload_too_large');
      // A body just under the limit is read (and then judged on its content).
      const under = JSON.stringify({ input: 'z'.repeat(1024 * 1024 - 100) });
      expect(Buffer.byteLength(under)).toBeLessThan(1024 * 1024);
      const ok = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: under });
      expect(ok.statusCode).toBe(202);
      await t.request({ method: 'POST', url: `/api/v1/executions/${ok.json().execution_id}/stop` });
    });

    it('a body that is not JSON is 415 unsupported_media_type', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
        const res = await t.request({
          method: 'POST',
          url: '/api/v1/workflows',
          body: JSON.stringify({ name: 'x', steps: [{ type: 'transform', expression: '1' }] }),
          headers: { 'content-type': type },
        });
        expectError(res, 415, 'unsupported_media_type');
      }
      const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: 'input=1', headers: { 'content-type': 'text/plain' } });
      expectError(run, 415, 'unsupported_media_type');
    });

    it('JSON with a charset or a +json type is accepted', async () => {
      for (const type of ['application/json; charset=utf-8', 'application/JSON', 'application/vnd.api+json']) {
        const res = await t.request({
          method: 'POST',
          url: '/api/v1/workflows',
          body: JSON.stringify({ name: type, steps: [{ type: 'transform', expression: '1' }] }),
          headers: { 'content-type': type },
        });
        expect(res.statusCode, `${type}: ${res.body}`).toBe(201);
      }
    });

    it('JSON nested deeper than 64 levels is 400; 64 levels is fine', async () => {
      // {"input": [[…]]}: the outer object is level 1.
      const nested = (arrays: number) => `{"input":${'['.repeat(arrays)}${']'.repeat(arrays)}}`;
      const tooDeep = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: nested(64) });
      expectError(tooDeep, 400, 'invalid_request');
      const veryDeep = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: nested(100_000) });
      expectError(veryDeep, 400, 'invalid_request');
      const ok = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: nested(63) });
      expect(ok.statusCode, ok.body).toBe(202);
      await t.request({ method: 'POST', url: `/api/v1/executions/${ok.json().execution_id}/stop` });
    });

    it('an empty body with Content-Type: application/json is {} (run-async and stop work)', async () => {
      const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, headers: { 'content-type': 'application/json' } });
      expect(run.statusCode, run.body).toBe(202);
      expectRequestId(run);
      const id = run.json().execution_id as string;
      const got = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=false` });
      expect(got.json().input).toBeNull();
      const stop = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
      expect(stop.statusCode, stop.body).toBe(200);
      expect(stop.json()).toEqual({ execution_id: id, status: 'stopped' });
    });

    it('an empty body is {} whatever its Content-Type, and also without one', async () => {
      for (const headers of [{ 'content-type': 'text/plain' }, {}] as Record<string, string>[]) {
        const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, headers });
        expect(run.statusCode, run.body).toBe(202);
        await t.request({ method: 'POST', url: `/api/v1/executions/${run.json().execution_id}/stop`, headers });
      }
    });

    it('a run-async body that is not an object, or has both input and inputs, is 400', async () => {
      for (const body of ['[1]', '"x"', '5', 'null', '{"input":1,"inputs":2}', '{"other":1}']) {
        expectError(await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body }), 400, 'invalid_request');
      }
    });
  });

  describe('query parameters', () => {
    it('limit out of range or not an integer is 400 naming limit', async () => {
      for (const path of ['/api/v1/workflows', '/api/v1/executions']) {
        for (const limit of ['0', '101', 'abc', '-1', '1.5', '1e2', '0x10', '']) {
          const res = await t.request({ method: 'GET', url: `${path}?limit=${limit}` });
          expect(res.statusCode, `${path}?limit=${limit}`).toBe(400);
          const message = expectError(res, 400, 'invalid_request');
          expect(message, `${path}?limit=${limit}`).toContain('limit');
        }
        expect((await t.request({ method: 'GET', url: `${path}?limit=1` })).statusCode).toBe(200);
        expect((await t.request({ method: 'GET', url: `${path}?limit=100` })).statusCode).toBe(200);
      }
    });

    it('a malformed after is 400 naming after', async () => {
      for (const path of ['/api/v1/workflows', '/api/v1/executions']) {
        for (const after of ['abc', ZERO_ID.toUpperCase().replace(/0/g, 'F'), `${ZERO_ID}0`, 'zzzzzzzzzzzzzzzzzzzzzzzz']) {
          const message = expectError(await t.request({ method: 'GET', url: `${path}?after=${after}` }), 400, 'invalid_request');
          expect(message).toContain('after');
        }
        expect((await t.request({ method: 'GET', url: `${path}?after=${ZERO_ID}` })).statusCode).toBe(200);
      }
    });

    it('an unknown status or a malformed workflow_id filter is 400', async () => {
      expect(expectError(await t.request({ method: 'GET', url: '/api/v1/executions?status=done' }), 400, 'invalid_request')).toContain('status');
      expect(expectError(await t.request({ method: 'GET', url: '/api/v1/executions?workflow_id=abc' }), 400, 'invalid_request')).toContain('workflow_id');
      for (const status of ['running', 'success', 'failed', 'stopped']) {
        expect((await t.request({ method: 'GET', url: `/api/v1/executions?status=${status}` })).statusCode).toBe(200);
      }
    });

    it('include_step_results accepts true and false only', async () => {
      for (const value of ['true', 'false']) {
        expect((await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}?include_step_results=${value}` })).statusCode).toBe(200);
      }
      const message = expectError(await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}?include_step_results=yes` }), 400, 'invalid_request');
      expect(message).toContain('include_step_results');
    });
  });

  describe('X-Request-Id', () => {
    it('is on successes, client errors and framework errors alike', async () => {
      const responses = [
        await t.request({ method: 'GET', url: '/api/v1/workflows' }),
        await t.request({ method: 'GET', url: '/api/v1/workspace' }),
        await t.request({ method: 'GET', url: '/api/v1/openapi.json', key: null }),
        await t.request({ method: 'GET', url: '/api/v1/executions' }),
        await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}?include_step_results=true` }),
      ];
      for (const res of responses) {
        expect(res.statusCode).toBe(200);
        expectRequestId(res);
      }
      // A URL the router cannot even decode.
      const badUrl = await t.request({ method: 'GET', url: '/api/v1/workflows/%E0%A4%A' });
      expect([400, 404]).toContain(badUrl.statusCode);
      expectError(badUrl, badUrl.statusCode, badUrl.statusCode === 404 ? 'not_found' : 'invalid_request');
    });

    it('ignores a client-supplied X-Request-Id (the server makes its own)', async () => {
      const res = await t.request({ method: 'GET', url: '/api/v1/workflows', headers: { 'x-request-id': 'client-chosen' } });
      expect(res.headers['x-request-id']).not.toBe('client-chosen');
      expectRequestId(res);
    });
  });
});

describeEachBackend('500 internal_error', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t?.close());

  it('a failure inside the server answers {error, error_code: internal_error} with no stack and no driver message', async () => {
    // Warm the key cache, then break the schema under the running server.
    expect((await t.request({ method: 'GET', url: '/api/v1/workflows' })).statusCode).toBe(200);
    await sql`ALTER TABLE workflow_versions RENAME TO workflow_versions_gone`.execute(t.server.deps.db.db);
    try {
      const res = await t.request({ method: 'GET', url: '/api/v1/workflows' });
      const message = expectError(res, 500, 'internal_error');
      expect(message).not.toMatch(/workflow_versions|no such table|does not exist|relation|SQLITE/i);
      expect(message).toContain(res.headers['x-request-id'] as string);
    } finally {
      await sql`ALTER TABLE workflow_versions_gone RENAME TO workflow_versions`.execute(t.server.deps.db.db);
    }
  });
});
