import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#routes: GET /api/v1/openapi.json needs no key and is a valid OpenAPI 3.1
// document listing every route of the table.

/** The route table of docs/api.md ("Routes"), as OpenAPI paths: `GET /executions/:id?x` → ['get', '/api/v1/executions/{id}']. */
const DOCUMENTED_ROUTES: [string, string][] = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8')
  .split('\n')
  .flatMap((line) => {
    const match = /^\| `(GET|POST|PUT|DELETE|PATCH) (\/[^`?]*)[^`]*` \|/.exec(line);
    return match ? [[match[1]!.toLowerCase(), `${match[2]!.startsWith('/hooks/') ? '' : '/api/v1'}${match[2]!.replace(/:(\w+)/g, '{$1}')}`] as [string, string]] : [];
  });

type Operation = {
  parameters?: { name: string; in: string }[];
  responses?: Record<string, unknown>;
  security?: unknown[];
  requestBody?: unknown;
};
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; security?: unknown[]; components?: Record<string, unknown> };

describeEachBackend('OpenAPI document', (backend) => {
  let t: TestServer;
  let doc: Doc;
  beforeAll(async () => {
    t = await startTestServer(backend, { rateLimitPerMinute: 100 });
  });
  afterAll(() => t?.close());

  it('is served without a key, as JSON, and is OpenAPI 3.1', async () => {
    const res = await t.request({ method: 'GET', url: '/api/v1/openapi.json', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['x-request-id']).toBeTruthy();
    doc = res.json() as Doc;
    expect(doc.openapi).toMatch(/^3\.1\./);
    // A bad key does not matter on a public route.
    const withBadKey = await t.request({ method: 'GET', url: '/api/v1/openapi.json', key: 'nonsense' });
    expect(withBadKey.statusCode).toBe(200);
  });

  it('passes the OpenAPI schema validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toMatch(/^3\.1/);
  });

  it('lists every route of the docs/api.md table, and no others', async () => {
    expect(DOCUMENTED_ROUTES.length).toBeGreaterThan(10);
    for (const [method, path] of DOCUMENTED_ROUTES) {
      expect(doc.paths[path]?.[method], `${method.toUpperCase()} ${path}`).toBeDefined();
    }
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'put', 'delete', 'patch', 'head', 'options'].includes(m))
        .map((m) => `${m} ${path}`),
    );
    const extra = listed.filter((r) => !DOCUMENTED_ROUTES.some(([m, p]) => `${m} ${p}` === r));
    expect(extra).toEqual([]);
  });

  it('documents the auth, the id path parameter and the error responses', async () => {
    expect(doc.security).toEqual([{ bearer: [] }]);
    const schemes = (doc.components as { securitySchemes?: Record<string, { type: string; scheme: string }> }).securitySchemes;
    expect(schemes?.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const openapiOp = doc.paths['/api/v1/openapi.json']!.get!;
    expect(openapiOp.security).toEqual([]); // public
    for (const [method, path] of DOCUMENTED_ROUTES) {
      const op = doc.paths[path]![method]!;
      if (path.includes('{id}')) {
        expect(op.parameters?.some((p) => p.name === 'id' && p.in === 'path'), `${method} ${path} id`).toBe(true);
      }
      if (path === '/api/v1/openapi.json') continue;
      // Inbound webhook deliveries carry no API key: the token in the URL is the credential.
      if (path.startsWith('/hooks/')) {
        expect(op.security, `${method} ${path}`).toEqual([]);
        continue;
      }
      expect(Object.keys(op.responses ?? {}), `${method} ${path}`).toEqual(expect.arrayContaining(['401', '403', '429']));
    }
    expect(Object.keys(doc.paths['/api/v1/workflows']!.post!.responses!)).toEqual(expect.arrayContaining(['201', '400']));
    expect(Object.keys(doc.paths['/api/v1/workflows/{id}/run-async']!.post!.responses!)).toEqual(expect.arrayContaining(['202', '402', '404']));
    expect(doc.paths['/api/v1/workflows/{id}/run-async']!.post!.parameters?.some((p) => p.name.toLowerCase() === 'idempotency-key' && p.in === 'header')).toBe(true);
    expect(doc.paths['/api/v1/executions']!.get!.parameters?.map((p) => p.name).sort()).toEqual(['after', 'created_after', 'created_before', 'error_code', 'limit', 'status', 'trigger', 'workflow_id']);
  });
});
