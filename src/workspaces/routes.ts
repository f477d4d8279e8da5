import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { responses } from '../http/responses.js';
import { findWorkspace, toWorkspaceView } from './store.js';

export const Workspace = Type.Object(
  {
    workspace_id: Type.String(),
    name: Type.String(),
    credits: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null: unlimited (nothing is debited, never 402)' }),
    max_concurrent_executions: Type.Union([Type.Integer(), Type.Null()]),
    created_at: Type.String(),
  },
  { title: 'Workspace' },
);

export function registerWorkspaceRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/api/v1/workspace',
    {
      config: { scope: 'workspace:read' },
      schema: { operationId: 'getWorkspace', summary: 'The caller’s workspace: credits and limits', response: responses({ 200: Workspace }, ['insufficient_scope']) },
    },
    async (request) => {
      const row = await findWorkspace(deps.db.db, request.auth.workspaceId);
      if (!row) throw notFound('Workspace');
      return toWorkspaceView(row);
    },
  );
}
