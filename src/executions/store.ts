import type { ExecutionRow, ExecutionStepRow, Executor } from '../db/schema.js';
import { type PageParams, paginate } from '../db/paginate.js';
import { formatTimestamp } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';
import { type Runner, param, statement } from '../db/statements.js';
import type { ExecutionStatus } from './status.js';
import { triggerOf } from './trigger.js';
import { type WaitingForView, progressOf } from './waiting-for.js';

const LIST_COLUMNS = ['id', 'workflow_id', 'workflow_name', 'status', 'created_at', 'completed_at', 'trigger_type', 'trigger', 'retry_of'] as const;

type ListRow = Pick<ExecutionRow, (typeof LIST_COLUMNS)[number]>;

export function toListItem(row: ListRow) {
  const created = formatTimestamp(row.created_at)!;
  return {
    execution_id: row.id,
    workflow_id: row.workflow_id,
    workflow_name: row.workflow_name,
    status: row.status as ExecutionStatus,
    started_at: created,
    completed_at: formatTimestamp(row.completed_at),
    created_at: created,
    trigger: triggerOf(row),
    retry_of: row.retry_of,
  };
}

function parseJson(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}

export function toStepView(row: ExecutionStepRow) {
  return {
    index: row.idx,
    name: row.name,
    type: row.type,
    status: row.status,
    result: parseJson(row.result),
    error: row.error,
    error_code: row.error_code,
    attempts: row.attempts,
    reused: row.reused === 1,
    started_at: formatTimestamp(row.started_at),
    completed_at: formatTimestamp(row.completed_at),
    progress: progressOf(row),
    duration_ms: row.duration_ms ?? null,
  };
}

export function toExecutionView(row: ExecutionRow, steps?: ExecutionStepRow[], waitingFor: WaitingForView = null) {
  return {
    ...toListItem(row),
    waiting_for: waitingFor,
    input: parseJson(row.input),
    error: row.error,
    error_code: row.error_code,
    error_step_index: row.error_step_index,
    ...(steps ? { steps: steps.map(toStepView) } : {}),
  };
}

/** The hot read of polling clients (GET /executions/:id), as a declared statement. */
const executionById = statement<ExecutionRow>('executions:get', (db) =>
  db.selectFrom('executions').selectAll().where('workspace_id', '=', param('workspaceId')).where('id', '=', param('id')),
);

export async function readExecution(runner: Runner, workspaceId: string, id: string): Promise<ExecutionRow | undefined> {
  return (await runner.all(executionById, { workspaceId, id }))[0];
}

export async function findExecution(db: Executor, workspaceId: string, id: string): Promise<ExecutionRow | undefined> {
  return db
    .selectFrom('executions')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function findSteps(db: Executor, executionId: string): Promise<ExecutionStepRow[]> {
  return db.selectFrom('execution_steps').selectAll().where('execution_id', '=', executionId).orderBy('idx').execute();
}

/** Every step of the execution's snapshot, in order: its row where the step has
 * one, else `pending` (a step's row is written when it first changes). */
export async function stepsOf(db: Executor, execution: Pick<ExecutionRow, 'id' | 'version_id'>): Promise<ExecutionStepRow[]> {
  const [defs, rows] = await Promise.all([versionSteps(db, execution.version_id), findSteps(db, execution.id)]);
  const byIndex = new Map(rows.map((r) => [r.idx, r]));
  return defs.map(
    (def, idx) =>
      byIndex.get(idx) ?? {
        execution_id: execution.id, idx, name: def.name ?? null, type: def.type, status: 'pending', result: null, error: null, error_code: null,
        attempts: 0, interruptions: 0, phase: null, wake_at: null, started_at: null, completed_at: null, reused: 0, detail: null, duration_ms: null,
      },
  );
}

export interface ListFilter extends PageParams {
  workflow_id?: string;
  status?: ExecutionStatus;
  /** Any of these statuses (status=a,b). */
  statuses?: readonly ExecutionStatus[];
  /** created_at >= (epoch ms). */
  createdAfter?: number;
  /** created_at < (epoch ms). */
  createdBefore?: number;
  trigger?: string;
  errorCode?: string;
}

/** The smallest id made at or after `ms`: ids begin with their creation second, so
 * `created_at >= ms` implies `id >=` this, which bounds the walk of any id-ordered index. */
const firstIdOfSecond = (ms: number) => Math.max(0, Math.floor(ms / 1000)).toString(16).padStart(8, '0').slice(-8) + '0'.repeat(16);

export async function listExecutions(db: Executor, workspaceId: string, filter: ListFilter): Promise<ListRow[]> {
  let query = db.selectFrom('executions').select(LIST_COLUMNS).where('workspace_id', '=', workspaceId);
  if (filter.workflow_id !== undefined) query = query.where('workflow_id', '=', filter.workflow_id);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.statuses !== undefined) query = query.where('status', 'in', [...filter.statuses]);
  if (filter.trigger !== undefined) query = query.where('trigger_type', '=', filter.trigger);
  if (filter.errorCode !== undefined) query = query.where('error_code', '=', filter.errorCode);
  if (filter.createdAfter !== undefined) {
    query = query.where('created_at', '>=', filter.createdAfter).where('id', '>=', firstIdOfSecond(filter.createdAfter));
  }
  if (filter.createdBefore !== undefined) query = query.where('created_at', '<', filter.createdBefore);
  return paginate(query, 'id', filter).execute();
}
