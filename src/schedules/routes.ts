import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { pageWithMore } from '../db/paginate.js';
import { notFound } from '../errors.js';
import { PageQuery } from '../http/pagination.js';
import { responses } from '../http/responses.js';
import { isId } from '../lib/ids.js';
import { DeletedSchedule, Schedule, ScheduleInput, ScheduleList, SchedulePatch } from './schemas.js';
import { createSchedule, deleteSchedule, updateSchedule } from './schedule-use-cases.js';
import { findSchedule, listSchedules, toScheduleView } from './store.js';

// Schedules are part of a workflow's definition: read with workflows:read, changed
// with workflows:write.

const IdParams = Type.Object({ id: Type.String() });

function scheduleId(id: string): string {
  if (!isId(id)) throw notFound('Schedule');
  return id;
}

export function registerScheduleRoutes(app: FastifyInstance, deps: AppDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  const db = deps.db.db;

  typed.post(
    '/api/v1/workflows/:id/schedules',
    {
      config: { scope: 'workflows:write' },
      schema: { summary: 'Create a cron schedule for a workflow', params: IdParams, body: ScheduleInput, response: responses({ 201: Schedule }, ['invalid_request', 'insufficient_scope', 'not_found']) },
    },
    async (request, reply) => {
      if (!isId(request.params.id)) throw notFound('Workflow');
      const schedule = await createSchedule(deps, { workspaceId: request.auth.workspaceId, workflowId: request.params.id, input: request.body });
      return reply.code(201).send(schedule);
    },
  );

  typed.get(
    '/api/v1/schedules',
    {
      config: { scope: 'workflows:read' },
      schema: {
        summary: 'List schedules, newest first',
        querystring: Type.Object({ ...PageQuery, workflow_id: Type.Optional(Type.String({ pattern: '^[0-9a-f]{24}$' })) }),
        response: responses({ 200: ScheduleList }, ['invalid_request', 'insufficient_scope']),
      },
    },
    async (request) => {
      const page = await pageWithMore(request.query, (p) => listSchedules(db, request.auth.workspaceId, { ...request.query, ...p }));
      return { schedules: page.items.map(toScheduleView), has_more: page.hasMore };
    },
  );

  typed.get(
    '/api/v1/schedules/:id',
    { config: { scope: 'workflows:read' }, schema: { summary: 'Get a schedule', params: IdParams, response: responses({ 200: Schedule }, ['insufficient_scope', 'not_found']) } },
    async (request) => {
      const row = await findSchedule(db, request.auth.workspaceId, scheduleId(request.params.id));
      if (!row) throw notFound('Schedule');
      return toScheduleView(row);
    },
  );

  typed.patch(
    '/api/v1/schedules/:id',
    {
      config: { scope: 'workflows:write' },
      schema: { summary: 'Change a schedule (takes effect from its next tick)', params: IdParams, body: SchedulePatch, response: responses({ 200: Schedule }, ['invalid_request', 'insufficient_scope', 'not_found']) },
    },
    async (request) => updateSchedule(deps, { workspaceId: request.auth.workspaceId, id: scheduleId(request.params.id), patch: request.body }),
  );

  typed.delete(
    '/api/v1/schedules/:id',
    { config: { scope: 'workflows:write' }, schema: { summary: 'Delete a schedule', params: IdParams, response: responses({ 200: DeletedSchedule }, ['insufficient_scope', 'not_found']) } },
    async (request) => deleteSchedule(deps, { workspaceId: request.auth.workspaceId, id: scheduleId(request.params.id) }),
  );
}
