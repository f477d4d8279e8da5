import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { responses } from '../http/responses.js';
import { isId } from '../lib/ids.js';
import { redeliver, listDeliveries } from './delivery-store.js';
import { createEndpoint, deleteEndpoint, findEndpoint, listEndpoints, toEndpointView, updateEndpoint } from './endpoint-store.js';
import {
  CreateEndpointBody,
  CreatedWebhookEndpoint,
  DeletedWebhookEndpoint,
  Delivery,
  DeliveryList,
  UpdateEndpointBody,
  WebhookEndpoint,
  WebhookEndpointList,
} from './schemas.js';

// Webhook endpoints are workspace configuration like workflows: read with
// workflows:read, changed with workflows:write. Deliveries are part of an execution:
// listed with executions:read, re-sent with workflows:execute (like a stop).

const IdParams = Type.Object({ id: Type.String() });

export function registerNotificationRoutes(app: FastifyInstance, deps: AppDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db.db;
  const endpointId = (id: string) => {
    if (!isId(id)) throw notFound('Webhook endpoint');
    return id;
  };

  typed.post(
    '/api/v1/webhook-endpoints',
    {
      config: { scope: 'workflows:write' },
      schema: {
        summary: 'Register a webhook endpoint (its signing secret is shown only here)',
        body: CreateEndpointBody,
        response: responses({ 201: CreatedWebhookEndpoint }, ['invalid_request', 'insufficient_scope', 'not_found']),
      },
    },
    async (request, reply) => {
      const created = await createEndpoint(db, {
        workspaceId: request.auth.workspaceId,
        url: request.body.url,
        events: request.body.events,
        workflowId: request.body.workflow_id ?? null,
        now: deps.clock.now(),
      });
      return reply.code(201).send(created);
    },
  );

  typed.get(
    '/api/v1/webhook-endpoints',
    { config: { scope: 'workflows:read' }, schema: { summary: 'List webhook endpoints', response: responses({ 200: WebhookEndpointList }, ['insufficient_scope']) } },
    async (request) => ({ endpoints: await listEndpoints(db, request.auth.workspaceId), has_more: false }),
  );

  typed.get(
    '/api/v1/webhook-endpoints/:id',
    {
      config: { scope: 'workflows:read' },
      schema: { summary: 'Get a webhook endpoint', params: IdParams, response: responses({ 200: WebhookEndpoint }, ['insufficient_scope', 'not_found']) },
    },
    async (request) => toEndpointView(await findEndpoint(db, request.auth.workspaceId, endpointId(request.params.id))),
  );

  typed.patch(
    '/api/v1/webhook-endpoints/:id',
    {
      config: { scope: 'workflows:write' },
      schema: {
        summary: 'Change a webhook endpoint’s url, events or enabled flag',
        params: IdParams,
        body: UpdateEndpointBody,
        response: responses({ 200: WebhookEndpoint }, ['invalid_request', 'insufficient_scope', 'not_found']),
      },
    },
    async (request) => updateEndpoint(db, { workspaceId: request.auth.workspaceId, id: endpointId(request.params.id), ...request.body }),
  );

  typed.delete(
    '/api/v1/webhook-endpoints/:id',
    {
      config: { scope: 'workflows:write' },
      schema: { summary: 'Delete a webhook endpoint', params: IdParams, response: responses({ 200: DeletedWebhookEndpoint }, ['insufficient_scope', 'not_found']) },
    },
    async (request) => deleteEndpoint(db, request.auth.workspaceId, endpointId(request.params.id)),
  );

  typed.get(
    '/api/v1/executions/:id/deliveries',
    {
      config: { scope: 'executions:read' },
      schema: { summary: 'The notifications of an execution', params: IdParams, response: responses({ 200: DeliveryList }, ['insufficient_scope', 'not_found']) },
    },
    async (request) => {
      if (!isId(request.params.id)) throw notFound('Execution');
      return { deliveries: await listDeliveries(db, request.auth.workspaceId, request.params.id), has_more: false };
    },
  );

  typed.post(
    '/api/v1/deliveries/:id/redeliver',
    {
      config: { scope: 'workflows:execute' },
      schema: { summary: 'Send a delivery again now', params: IdParams, response: responses({ 202: Delivery }, ['insufficient_scope', 'not_found']) },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Delivery');
      const delivery = await redeliver(db, { workspaceId: request.auth.workspaceId, id: request.params.id, now: deps.clock.now() });
      return reply.code(202).send(delivery);
    },
  );
}
