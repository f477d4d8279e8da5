import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { PageQuery } from '../http/pagination.js';
import { responses } from '../http/responses.js';
import { validatorCompiler } from '../http/validation.js';
import { isId } from '../lib/ids.js';
import { createWorkflow, deleteWorkflow, replaceWorkflowById } from './workflow-use-cases.js';
import { DeletedWorkflow, Workflow, WorkflowInput, WorkflowList } from './schemas.js';
import { findWorkflow, listWorkflows, toWorkflowView } from './store.js';
import { pageWithMore } from '../db/paginate.js';
import { validateWorkflowInput } from './validate-workflow.js';

// The body schema (WorkflowInput, a union of step types) documents and types the
// request; validation goes step by step so an error names `steps[2].expression`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const workflowValidator: FastifySchemaCompiler<any> = (route) =>
  route.httpPart === 'body'
    ? (data: unknown) => {
        try {
          return { value: validateWorkflowInput(data) };
        } catch (error) {
          return { error: error as Error };
        }
      }
    : validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);

const IdParams = Type.Object({ id: Type.String({ description: 'workflow id' }) });

function workflowId(id: string): string {
  if (!isId(id)) throw notFound('Workflow');
  return id;
}

export function registerWorkflowRoutes(app: FastifyInstance, deps: AppDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db.db;

  typed.post(
    '/api/v1/workflows',
    {
      config: { scope: 'workflows:write' },
      validatorCompiler: workflowValidator,
      schema: { operationId: 'createWorkflow', summary: 'Create a workflow', body: WorkflowInput, response: responses({ 201: Workflow }, ['invalid_request', 'insufficient_scope']) },
    },
    async (request, reply) => {
      const workflow = await createWorkflow(deps, { auth: request.auth, input: request.body });
      return reply.code(201).send(workflow);
    },
  );

  typed.get(
    '/api/v1/workflows',
    {
      config: { scope: 'workflows:read' },
      schema: { operationId: 'listWorkflows', summary: 'List workflows, newest first', querystring: Type.Object(PageQuery), response: responses({ 200: WorkflowList }, ['invalid_request', 'insufficient_scope']) },
    },
    async (request) => {
      const page = await pageWithMore(request.query, (p) => listWorkflows(db, request.auth.workspaceId, p));
      return { workflows: page.items.map(toWorkflowView), has_more: page.hasMore };
    },
  );

  typed.get(
    '/api/v1/workflows/:id',
    {
      config: { scope: 'workflows:read' },
      schema: { operationId: 'getWorkflow', summary: 'Get a workflow', params: IdParams, response: responses({ 200: Workflow }, ['not_found', 'insufficient_scope']) },
    },
    async (request) => {
      const row = await findWorkflow(db, request.auth.workspaceId, workflowId(request.params.id));
      if (!row) throw notFound('Workflow');
      return toWorkflowView(row);
    },
  );

  typed.put(
    '/api/v1/workflows/:id',
    {
      config: { scope: 'workflows:write' },
      validatorCompiler: workflowValidator,
      schema: { operationId: 'replaceWorkflow', summary: 'Replace a workflow’s name, description and steps', params: IdParams, body: WorkflowInput, response: responses({ 200: Workflow }, ['invalid_request', 'not_found', 'insufficient_scope']) },
    },
    async (request) =>
      replaceWorkflowById(deps, { auth: request.auth, id: workflowId(request.params.id), input: request.body }),
  );

  typed.delete(
    '/api/v1/workflows/:id',
    {
      config: { scope: 'workflows:delete' },
      schema: { operationId: 'deleteWorkflow', summary: 'Delete a workflow (stops its running executions; they stay readable)', params: IdParams, response: responses({ 200: DeletedWorkflow }, ['not_found', 'insufficient_scope']) },
    },
    async (request) => deleteWorkflow(deps, { auth: request.auth, id: workflowId(request.params.id) }),
  );
}
