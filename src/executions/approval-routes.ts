import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { type StoredResponse, idempotentRequest } from '../idempotency/idempotency.js';
import { responses } from '../http/responses.js';
import { isId } from '../lib/ids.js';
import { type Decision, decideApproval } from './decide-approval.js';
import { StepResult } from './schemas.js';

// The approve and reject routes of an approval step (decide-approval.ts).

const Params = Type.Object({ id: Type.String(), index: Type.Integer({ minimum: 0, maximum: 99 }) });
const Headers = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ description: '1–256 printable ASCII characters; replayed for 24 hours' })) });
const Comment = Type.Optional(Type.Union([Type.String({ maxLength: 10_000 }), Type.Null()]));
const ApproveBody = Type.Union([Type.Object({ data: Type.Optional(Type.Unknown()), comment: Comment }, { additionalProperties: false }), Type.Null()]);
const RejectBody = Type.Union([Type.Object({ comment: Comment }, { additionalProperties: false }), Type.Null()]);

function sendStored(reply: FastifyReply, response: StoredResponse): FastifyReply {
  if (response.replayed) reply.header('X-Idempotent-Replayed', 'true').header('Idempotent-Replayed', 'true');
  return reply.code(response.status).type('application/json; charset=utf-8').serializer((s: unknown) => s as string).send(response.bodyText);
}

export function registerApprovalRoutes(app: FastifyInstance, deps: AppDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const errors = ['invalid_request', 'step_not_waiting', 'insufficient_scope', 'not_found', 'idempotency_key_reused'] as const;
  for (const verb of ['approve', 'reject'] as const) {
    typed.post(
      `/api/v1/executions/:id/steps/:index/${verb}`,
      {
        config: { scope: 'workflows:execute' },
        schema: {
          summary: verb === 'approve' ? 'Approve a waiting approval step' : 'Reject a waiting approval step',
          params: Params,
          headers: Headers,
          body: verb === 'approve' ? ApproveBody : RejectBody,
          response: responses({ 200: StepResult }, errors),
        },
      },
      async (request, reply) => {
        if (!isId(request.params.id)) throw notFound('Execution');
        const body = (request.body ?? {}) as { data?: unknown; comment?: string | null };
        const decision: Decision = verb === 'approve' ? { approved: true, data: body.data ?? null, comment: body.comment ?? null } : { approved: false, comment: body.comment ?? null };
        const idempotency = idempotentRequest(request.auth.workspaceId, request.headers['idempotency-key'], request);
        const response = await decideApproval(deps, { auth: request.auth, executionId: request.params.id, index: request.params.index, decision, idempotency });
        return sendStored(reply, response);
      },
    );
  }
}
