import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppDeps } from '../deps.js';
import { invalid, notFound } from '../errors.js';
import { type StoredResponse, idempotentRequest } from '../idempotency/idempotency.js';
import { PageQuery } from '../http/pagination.js';
import { responses } from '../http/responses.js';
import { isId } from '../lib/ids.js';
import { Execution, ExecutionList, RetryAccepted, RunAccepted, RunBody, StopResult } from './schemas.js';
import { startExecution } from './start-execution.js';
import { stopExecution } from './stop-use-case.js';
import { TerminalCache } from './terminal-cache.js';
import { streamExecutionEvents } from './execution-events.js';
import { readExecutionJson } from './get-execution.js';
import { OpenStreamLimit } from './open-stream-limit.js';
import { listExecutions, toListItem } from './store.js';
import { listFilterOf, ListFilterQuery, RetryBody, StopManyBody, StopManyResult } from './list-filters.js';
import { retryExecution } from './retry-use-case.js';
import { retentionCutoff } from '../retention/prune.js';
import { stopManyExecutions } from './stop-many-use-case.js';
import { pageWithMore } from '../db/paginate.js';

const IdParams = Type.Object({ id: Type.String() });
const IdempotencyHeader = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ description: '1–256 printable ASCII characters; replayed for 24 hours' })),
});

/** Sends JSON that is already text (stored or cached), byte for byte. */
function sendJsonText(reply: FastifyReply, text: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').serializer((s: unknown) => s as string).send(text);
}

/** Sends a response exactly as stored, so a replay is byte-identical to the original. */
function sendStored(reply: FastifyReply, response: StoredResponse): FastifyReply {
  if (response.replayed) reply.header('X-Idempotent-Replayed', 'true').header('Idempotent-Replayed', 'true');
  return sendJsonText(reply.code(response.status), response.bodyText);
}

function runInput(body: { input?: unknown; inputs?: unknown }): unknown {
  if (body.input !== undefined && body.inputs !== undefined) {
    throw invalid('request body: give "input" or its alias "inputs", not both');
  }
  return body.input ?? body.inputs ?? null;
}

export function registerExecutionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const finished = new TerminalCache();
  const streams = new OpenStreamLimit(deps.config.maxOpenStreamsPerWorkspace);

  typed.post(
    '/api/v1/workflows/:id/run-async',
    {
      config: { scope: 'workflows:execute' },
      schema: {
        operationId: 'runWorkflowAsync',
        summary: 'Run a workflow asynchronously (costs 1 credit)',
        params: IdParams,
        headers: IdempotencyHeader,
        body: RunBody,
        response: responses({ 202: RunAccepted }, ['invalid_request', 'insufficient_scope', 'not_found', 'idempotency_key_reused', 'concurrent_execution_limit', 'insufficient_credits']),
      },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Workflow');
      const input = runInput(request.body);
      const idempotency = idempotentRequest(request.auth.workspaceId, request.headers['idempotency-key'], request);
      const response = await startExecution(deps, {
        workspaceId: request.auth.workspaceId,
        workflowId: request.params.id,
        input,
        trigger: { type: 'api', key_id: request.auth.keyId },
        idempotency,
      });
      return sendStored(reply, response);
    },
  );

  typed.get(
    '/api/v1/executions',
    {
      config: { scope: 'executions:read' },
      schema: {
        operationId: 'listExecutions',
        summary: 'List executions, newest first',
        querystring: Type.Object({
          ...PageQuery,
          workflow_id: Type.Optional(Type.String({ pattern: '^[0-9a-f]{24}$' })),
          ...ListFilterQuery,
        }),
        response: responses({ 200: ExecutionList }, ['invalid_request', 'insufficient_scope']),
      },
    },
    async (request) => {
      const filter = listFilterOf(request.query);
      // Only the page's bounds come from pageWithMore: the filters are the parsed ones.
      const page = await pageWithMore(request.query, ({ limit, after }) => listExecutions(deps.db.db, request.auth.workspaceId, { ...filter, limit, after }));
      return { executions: page.items.map(toListItem), has_more: page.hasMore };
    },
  );

  typed.get(
    '/api/v1/executions/:id',
    {
      config: { scope: 'executions:read' },
      schema: {
        operationId: 'getExecution',
        summary: 'Get an execution (step results with include_step_results=true)',
        params: IdParams,
        querystring: Type.Object({
          include_step_results: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
          wait: Type.Optional(
            Type.Integer({ minimum: 0, maximum: 60, description: 'long poll: answer as soon as the execution ends, or after this many seconds' }),
          ),
        }),
        response: responses({ 200: Execution }, ['invalid_request', 'insufficient_scope', 'not_found']),
      },
    },
    async (request, reply) => {
      const withSteps = request.query.include_step_results === 'true';
      const waits = (request.query.wait ?? 0) > 0;
      const release = waits ? streams.acquire(request.auth.workspaceId, 'long poll') : null;
      try {
        const body = await readExecutionJson(deps, finished, {
          workspaceId: request.auth.workspaceId,
          id: request.params.id,
          withSteps,
          waitSeconds: request.query.wait,
          // Retention may have deleted what finished before its cutoff: not served from the cache.
          prunedBefore: deps.config.retentionDays > 0 ? retentionCutoff(deps.clock.now(), deps.config.retentionDays) : undefined,
        });
        return sendJsonText(reply, body);
      } finally {
        release?.();
      }
    },
  );

  typed.get(
    '/api/v1/executions/:id/events',
    {
      config: { scope: 'executions:read' },
      schema: {
        operationId: 'streamExecutionEvents',
        summary: 'Server-Sent Events: the execution’s step and status changes until it ends',
        produces: ['text/event-stream'],
        params: IdParams,
        response: responses(
          { 200: Type.String({ description: 'text/event-stream: `event: execution` and `event: step` frames, JSON data' }) },
          ['insufficient_scope', 'not_found'],
        ),
      },
    },
    async (request, reply) => {
      const release = streams.acquire(request.auth.workspaceId, 'stream');
      try {
        const lastEventId = request.headers['last-event-id'];
        await streamExecutionEvents(deps, reply, { workspaceId: request.auth.workspaceId, id: request.params.id, lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined });
      } finally {
        release();
      }
    },
  );

  typed.post(
    '/api/v1/executions/:id/stop',
    {
      config: { scope: 'workflows:execute' },
      schema: {
        operationId: 'stopExecution',
        summary: 'Stop a running execution',
        params: IdParams,
        headers: IdempotencyHeader,
        response: responses({ 200: StopResult }, ['execution_not_running', 'insufficient_scope', 'not_found', 'idempotency_key_reused']),
      },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Execution');
      const idempotency = idempotentRequest(request.auth.workspaceId, request.headers['idempotency-key'], request);
      const response = await stopExecution(deps, { auth: request.auth, executionId: request.params.id, idempotency });
      return sendStored(reply, response);
    },
  );

  typed.post(
    '/api/v1/executions/:id/retry',
    {
      config: { scope: 'workflows:execute' },
      schema: {
        summary: 'Retry a failed or stopped execution, from its failed step or from the start (costs 1 credit)',
        params: IdParams,
        headers: IdempotencyHeader,
        body: RetryBody,
        response: responses({ 202: RetryAccepted }, [
          'invalid_request', 'execution_not_retryable', 'insufficient_scope', 'not_found', 'idempotency_key_reused', 'already_retried', 'concurrent_execution_limit', 'insufficient_credits',
        ]),
      },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Execution');
      const idempotency = idempotentRequest(request.auth.workspaceId, request.headers['idempotency-key'], request);
      const response = await retryExecution(deps, { auth: request.auth, executionId: request.params.id, from: request.body.from ?? 'failed_step', idempotency });
      return sendStored(reply, response);
    },
  );

  typed.post(
    '/api/v1/executions/stop',
    {
      config: { scope: 'workflows:execute' },
      schema: {
        summary: 'Stop every running execution of the workspace (of one workflow, created before a time)',
        body: StopManyBody,
        response: responses({ 200: StopManyResult }, ['invalid_request', 'insufficient_scope']),
      },
    },
    async (request) => {
      const filter = listFilterOf({ created_before: request.body.created_before });
      const stopped = await stopManyExecutions(deps, { workspaceId: request.auth.workspaceId, workflowId: request.body.workflow_id, createdBefore: filter.createdBefore });
      return { stopped };
    },
  );
}
