import type { AppDeps } from '../deps.js';
import { invalid, notFound } from '../errors.js';
import { newId } from '../lib/ids.js';
import { findWorkflow } from '../workflows/store.js';
import { checkCron, nextFireAfter } from './cron.js';
import { MAX_SCHEDULES_PER_WORKSPACE, type Schedule, type ScheduleInput, type SchedulePatch } from './schemas.js';
import { countSchedules, findSchedule, toScheduleView } from './store.js';

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

// Every edit recomputes the stored next fire time and bumps `version`: a process that
// read the schedule before the edit then fails its tick claim (it checks both), so no
// tick ever fires under an old definition. The signal wakes every process's
// scheduler to read the new earliest fire time.

export async function createSchedule(deps: Deps, args: { workspaceId: string; workflowId: string; input: ScheduleInput }): Promise<Schedule> {
  const { workspaceId, workflowId, input } = args;
  const spec = { cron: input.cron, timezone: input.timezone ?? 'UTC' };
  checkCron(spec);
  const enabled = input.enabled ?? true;
  const view = await deps.db.db.transaction().execute(async (trx) => {
    // Serialises creates per workspace, so concurrent ones cannot pass the limit together.
    await deps.db.lockInTransaction(trx, `schedules\n${workspaceId}`);
    if (!(await findWorkflow(trx, workspaceId, workflowId))) throw notFound('Workflow');
    if ((await countSchedules(trx, workspaceId)) >= MAX_SCHEDULES_PER_WORKSPACE) {
      throw invalid(`This workspace already has the maximum of ${MAX_SCHEDULES_PER_WORKSPACE} schedules; delete one first.`);
    }
    const now = deps.clock.now();
    const id = newId(now);
    await trx
      .insertInto('schedules')
      .values({
        id,
        workspace_id: workspaceId,
        workflow_id: workflowId,
        cron: spec.cron,
        timezone: spec.timezone,
        input: JSON.stringify(input.input ?? null),
        enabled: enabled ? 1 : 0,
        overlap: input.overlap ?? 'skip',
        catchup: input.catchup ?? 'latest',
        next_run_at: enabled ? nextFireAfter(spec, now) : null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    return toScheduleView((await findSchedule(trx, workspaceId, id))!);
  });
  deps.signals.workAvailable();
  return view;
}

export async function updateSchedule(deps: Deps, args: { workspaceId: string; id: string; patch: SchedulePatch }): Promise<Schedule> {
  const { workspaceId, id, patch } = args;
  const view = await deps.db.db.transaction().execute(async (trx) => {
    const row = await findSchedule(trx, workspaceId, id);
    if (!row) throw notFound('Schedule');
    const spec = { cron: patch.cron ?? row.cron, timezone: patch.timezone ?? row.timezone };
    checkCron(spec);
    const enabled = patch.enabled ?? row.enabled === 1;
    const now = deps.clock.now();
    const timing = patch.cron !== undefined || patch.timezone !== undefined || enabled !== (row.enabled === 1);
    const next = !enabled ? null : timing || row.next_run_at === null ? nextFireAfter(spec, now) : row.next_run_at;
    await trx
      .updateTable('schedules')
      .set((eb) => ({
        cron: spec.cron,
        timezone: spec.timezone,
        ...(patch.input !== undefined ? { input: JSON.stringify(patch.input) } : {}),
        enabled: enabled ? 1 : 0,
        overlap: patch.overlap ?? row.overlap,
        catchup: patch.catchup ?? row.catchup,
        next_run_at: next,
        version: eb('version', '+', 1),
        updated_at: now,
      }))
      .where('id', '=', id)
      .execute();
    return toScheduleView((await findSchedule(trx, workspaceId, id))!);
  });
  deps.signals.workAvailable();
  return view;
}

export async function deleteSchedule(deps: Deps, args: { workspaceId: string; id: string }) {
  await deps.db.db.transaction().execute(async (trx) => {
    const result = await trx.deleteFrom('schedules').where('workspace_id', '=', args.workspaceId).where('id', '=', args.id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound('Schedule');
    await trx.deleteFrom('schedule_ticks').where('schedule_id', '=', args.id).execute();
  });
  return { schedule_id: args.id, deleted: true as const };
}
