import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { pageWithMore } from '../db/paginate.js';
import { notFound } from '../errors.js';
import { TerminalCache } from '../executions/terminal-cache.js';
import { BODY_LIMIT_BYTES } from '../http/body-parser.js';
import { PageQuery } from '../http/pagination.js';
import { responses } from '../http/responses.js';
import { isId } from '../lib/ids.js';
import { RunAccepted } from '../executions/schemas.js';
import { receiveWebhook } from './receive-webhook.js';
import { DeletedWebhook, SyncResult, Webhook, WebhookInput, WebhookList } from './schemas.js';
import { findWebhook, listWebhooks, toWebhookView } from './store.js';
import { createWebhook, deleteWebhook, publicBaseUrl } from './webhook-use-cases.js';

// Webhooks are managed with workflows:read / workflows:write. Deliveries arrive on
// POST /hooks/:token, outside /api/v1 and without an API key (the token is the
// credential, the signature the proof); that route lives in its own plugin scope
// whose only body parser keeps the raw bytes, which the signature is computed over.

const IdParams = Type.Object({ id: Type.String() });

function webhookId(id: string): string {
  if (!isId(id)) throw notFound('Webhook');
  return id;
}

export async function registerWebhookRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db.db;
  const base = publicBaseUrl(deps.config);

  typed.post(
    '/api/v1/workflows/:id/webhooks',
    {
      config: { scope: 'workflows:write' },
      schema: { summary: 'Create an inbound webhook for a workflow (its URL is shown once)', params: IdParams, body: WebhookInput, response: responses({ 201: Webhook }, ['invalid_request', 'insufficient_scope', 'not_found']) },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Workflow');
      return reply.code(201).send(await createWebhook(deps, { workspaceId: request.auth.workspaceId, workflowId: request.params.id, input: request.body }));
    },
  );

  typed.get(
    '/api/v1/webhooks',
    {
      config: { scope: 'workflows:read' },
      schema: {
        summary: 'List inbound webhooks, newest first',
        querystring: Type.Object({ ...PageQuery, workflow_id: Type.Optional(Type.String({ pattern: '^[0-9a-f]{24}$' })) }),
        response: responses({ 200: WebhookList }, ['invalid_request', 'insufficient_scope']),
      },
    },
    async (request) => {
      const page = await pageWithMore(request.query, (p) => listWebhooks(db, request.auth.workspaceId, { ...request.query, ...p }));
      return { webhooks: page.items.map((row) => toWebhookView(row, base)), has_more: page.hasMore };
    },
  );

  typed.get(
    '/api/v1/webhooks/:id',
    { config: { scope: 'workflows:read' }, schema: { summary: 'Get an inbound webhook', params: IdParams, response: responses({ 200: Webhook }, ['insufficient_scope', 'not_found']) } },
    async (request) => {
      const row = await findWebhook(db, request.auth.workspaceId, webhookId(request.params.id));
      if (!row) throw notFound('Webhook');
      return toWebhookView(row, base);
    },
  );

  typed.delete(
    '/api/v1/webhooks/:id',
    { config: { scope: 'workflows:write' }, schema: { summary: 'Delete an inbound webhook (its URL then answers 404)', params: IdParams, response: responses({ 200: DeletedWebhook }, ['insufficient_scope', 'not_found']) } },
    async (request) => deleteWebhook(deps, { workspaceId: request.auth.workspaceId, id: webhookId(request.params.id) }),
  );

  const cache = new TerminalCache();
  await app.register(async (hooks) => {
    hooks.removeAllContentTypeParsers();
    hooks.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request, body, done) => done(null, body));
    hooks.withTypeProvider<TypeBoxTypeProvider>().post(
      '/hooks/:token',
      {
        config: { scope: 'public' },
        schema: {
          summary: 'Deliver to an inbound webhook (no API key: the token in the URL, and the signature when one is configured)',
          security: [],
          params: Type.Object({ token: Type.String() }),
          response: responses({ 200: SyncResult, 202: RunAccepted }, ['invalid_signature', 'invalid_request', 'not_found', 'payload_too_large', 'unsupported_media_type', 'concurrent_execution_limit', 'insufficient_credits']),
        },
      },
      async (request, reply) => {
        const answer = await receiveWebhook(deps, cache, request.params.token, request, reply);
        if (answer.replayed) reply.header('X-Idempotent-Replayed', 'true').header('Idempotent-Replayed', 'true');
        return reply.code(answer.status).type('application/json; charset=utf-8').serializer((s: unknown) => s as string).send(answer.bodyText);
      },
    );
  });
}
