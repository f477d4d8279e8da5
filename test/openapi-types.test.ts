import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// The OpenAPI document is usable by the tools people point at it: named component
// schemas referenced from the paths, an operationId per route, each route's scope in
// its security, enums as enums, the event stream as text/event-stream — and
// openapi-typescript turns it into types that a small client type-checks against (so
// a regression in the document fails here).

type Op = { operationId?: string; security?: Array<Record<string, string[]>>; responses: Record<string, { content?: Record<string, { schema: unknown }> }> };

const SMALL_CLIENT = `
import type { components, paths } from './api.js';

type Workflow = components['schemas']['Workflow'];
type Execution = components['schemas']['Execution'];
type ErrorBody = components['schemas']['Error'];

export function describeWorkflow(w: Workflow): string {
  const id: string = w.id;
  const created: string = w.created_at;
  return id + created + w.steps.length;
}

export function isDone(e: Execution): boolean {
  // An enum: a status outside it does not type-check.
  // @ts-expect-error 'done' is not an execution status
  const wrong: Execution['status'] = 'done';
  void wrong;
  return e.status === 'success' || e.status === 'failed' || e.status === 'stopped';
}

export function code(e: ErrorBody): string {
  // @ts-expect-error not an error code
  const bogus: ErrorBody['error_code'] = 'no_such_code';
  void bogus;
  return e.error_code === 'insufficient_credits' ? 'add credits' : e.error;
}

type ListQuery = NonNullable<paths['/api/v1/executions']['get']['parameters']['query']>;
export const query: ListQuery = { status: 'running', limit: 10 };

type ListBody = paths['/api/v1/executions']['get']['responses'][200]['content']['application/json'];
export function firstId(page: ListBody): string | undefined {
  const more: boolean = page.has_more;
  void more;
  return page.executions[0]?.execution_id;
}

type Accepted = paths['/api/v1/workflows/{id}/run-async']['post']['responses'][202]['content']['application/json'];
export const accepted = (a: Accepted): string => a.execution_id;
`;

describeEachBackend('OpenAPI document for generators', (backend) => {
  let t: TestServer;
  let doc: { paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, unknown> } };
  beforeAll(async () => {
    t = await startTestServer(backend);
    doc = (await t.request({ method: 'GET', url: '/api/v1/openapi.json', key: null })).json();
  });
  afterAll(() => t?.close());

  it('names its schemas, one operationId and the scope per route, and the stream’s media type', () => {
    for (const name of ['Workflow', 'WorkflowInput', 'WorkflowList', 'Execution', 'ExecutionList', 'ExecutionListItem', 'StepResult', 'Error', 'RunAccepted', 'StopResult', 'Workspace', 'Trigger']) {
      expect(doc.components.schemas[name], name).toBeDefined();
    }
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z0-9]+$/);
        expect(ids.has(op.operationId!), op.operationId).toBe(false);
        ids.add(op.operationId!);
        // Keyless: the document itself, and inbound webhooks (their URL's token is the credential).
        if (path === '/api/v1/openapi.json' || path.startsWith('/hooks/')) expect(op.security).toEqual([]);
        else expect(op.security?.[0]?.bearer?.[0], `${method} ${path}`).toMatch(/^[a-z]+:[a-z]+$/);
      }
    }
    expect(doc.paths['/api/v1/workflows']!.get!.responses['200']!.content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/WorkflowList' });
    expect(doc.paths['/api/v1/workflows/{id}']!.delete!.security).toEqual([{ bearer: ['workflows:delete'] }]);
    expect(Object.keys(doc.paths['/api/v1/executions/{id}/events']!.get!.responses['200']!.content!)).toEqual(['text/event-stream']);
    expect(JSON.stringify(doc)).not.toContain('"const"');
  });

  it('generates TypeScript types (openapi-typescript) that a small client type-checks against', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skipflow-openapi-'));
    writeFileSync(join(dir, 'api.ts'), astToString(await openapiTS(doc as never)));
    writeFileSync(join(dir, 'client.ts'), SMALL_CLIENT);
    const program = ts.createProgram([join(dir, 'client.ts')], {
      strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
  });
});
