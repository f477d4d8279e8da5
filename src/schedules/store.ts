import { paginate, type PageParams } from '../db/paginate.js';
import type { Executor, ScheduleTable } from '../db/schema.js';
import type { Selectable } from 'kysely';
import { formatTimestamp } from '../lib/time.js';
import { fireTimesAfter } from './cron.js';
import type { Schedule } from './schemas.js';

export type ScheduleRow = Selectable<ScheduleTable>;

export function toScheduleView(row: ScheduleRow): Schedule {
  const spec = { cron: row.cron, timezone: row.timezone };
  const next = row.enabled && row.next_run_at !== null ? row.next_run_at : null;
  const upcoming = next === null ? [] : [next, ...fireTimesAfter(spec, next, 4)];
  return {
    schedule_id: row.id,
    workflow_id: row.workflow_id,
    cron: row.cron,
    timezone: row.timezone,
    input: JSON.parse(row.input) as unknown,
    enabled: row.enabled === 1,
    overlap: row.overlap as Schedule['overlap'],
    catchup: row.catchup as Schedule['catchup'],
    next_run_at: formatTimestamp(next),
    upcoming: upcoming.map((t) => formatTimestamp(t)!),
    last_run_at: formatTimestamp(row.last_run_at),
    last_execution_id: row.last_execution_id,
    last_error: row.last_error,
    created_at: formatTimestamp(row.created_at)!,
    updated_at: formatTimestamp(row.updated_at)!,
  };
}

export async function findSchedule(db: Executor, workspaceId: string, id: string): Promise<ScheduleRow | undefined> {
  return db.selectFrom('schedules').selectAll().where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
}

export async function listSchedules(db: Executor, workspaceId: string, filter: PageParams & { workflow_id?: string }): Promise<ScheduleRow[]> {
  let query = db.selectFrom('schedules').selectAll().where('workspace_id', '=', workspaceId);
  if (filter.workflow_id !== undefined) query = query.where('workflow_id', '=', filter.workflow_id);
  return paginate(query, 'id', filter).execute();
}

export async function countSchedules(db: Executor, workspaceId: string): Promise<number> {
  const row = await db.selectFrom('schedules').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', workspaceId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Part of deleting a workflow: its schedules go with it. */
export async function deleteSchedulesOfWorkflow(db: Executor, workspaceId: string, workflowId: string): Promise<void> {
  await db.deleteFrom('schedules').where('workspace_id', '=', workspaceId).where('workflow_id', '=', workflowId).execute();
}
