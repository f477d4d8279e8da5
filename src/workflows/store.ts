import type { Executor, WorkflowRow } from '../db/schema.js';
import type { StepDefinition } from '../steps/index.js';
import { type PageParams, paginate } from '../db/paginate.js';
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import type { Workflow, WorkflowInput } from './schemas.js';

export interface StoredWorkflow extends WorkflowRow {
  steps: string;
  last_run_at: number | null;
}

export function toWorkflowView(row: StoredWorkflow): Workflow {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    steps: JSON.parse(row.steps) as StepDefinition[],
    created_by: row.created_by,
    created_at: formatTimestamp(row.created_at)!,
    updated_at: formatTimestamp(row.updated_at)!,
    last_run_at: formatTimestamp(row.last_run_at),
  };
}

function selectWorkflows(db: Executor, workspaceId: string) {
  return db
    .selectFrom('workflows as w')
    .innerJoin('workflow_versions as v', 'v.id', 'w.version_id')
    .selectAll('w')
    .select('v.steps')
    .select((eb) =>
      // The newest execution's created_at: one probe of the (workspace, workflow, id) index.
      eb
        .selectFrom('executions as e')
        .select('e.created_at')
        .whereRef('e.workspace_id', '=', 'w.workspace_id')
        .whereRef('e.workflow_id', '=', 'w.id')
        .orderBy('e.id', 'desc')
        .limit(1)
        .as('last_run_at'),
    )
    .where('w.workspace_id', '=', workspaceId);
}

export async function findWorkflow(db: Executor, workspaceId: string, id: string): Promise<StoredWorkflow | undefined> {
  return selectWorkflows(db, workspaceId).where('w.id', '=', id).executeTakeFirst();
}

export async function listWorkflows(db: Executor, workspaceId: string, page: PageParams): Promise<StoredWorkflow[]> {
  return paginate(selectWorkflows(db, workspaceId), 'w.id', page).execute();
}

async function insertVersion(db: Executor, workflowId: string, workspaceId: string, input: WorkflowInput, now: number) {
  const id = newId(now);
  await db
    .insertInto('workflow_versions')
    .values({ id, workflow_id: workflowId, workspace_id: workspaceId, name: input.name, steps: JSON.stringify(input.steps), created_at: now })
    .execute();
  return id;
}

/** Call inside a transaction: writes the workflow and its first version. */
export async function insertWorkflow(
  db: Executor,
  args: { workspaceId: string; input: WorkflowInput; createdBy: string | null; now: number },
): Promise<string> {
  const id = newId(args.now);
  const versionId = await insertVersion(db, id, args.workspaceId, args.input, args.now);
  await db
    .insertInto('workflows')
    .values({
      id,
      workspace_id: args.workspaceId,
      name: args.input.name,
      description: args.input.description ?? '',
      version_id: versionId,
      created_by: args.createdBy,
      created_at: args.now,
      updated_at: args.now,
    })
    .execute();
  return id;
}

/** Call inside a transaction: a new immutable version becomes current. Executions
 * already created keep the version they snapshotted. Returns false when not found. */
export async function replaceWorkflow(
  db: Executor,
  args: { workspaceId: string; id: string; input: WorkflowInput; now: number },
): Promise<boolean> {
  const exists = await db
    .selectFrom('workflows')
    .select('id')
    .where('workspace_id', '=', args.workspaceId)
    .where('id', '=', args.id)
    .executeTakeFirst();
  if (!exists) return false;
  const versionId = await insertVersion(db, args.id, args.workspaceId, args.input, args.now);
  await db
    .updateTable('workflows')
    .set({ name: args.input.name, description: args.input.description ?? '', version_id: versionId, updated_at: args.now })
    .where('workspace_id', '=', args.workspaceId)
    .where('id', '=', args.id)
    .execute();
  return true;
}

export async function deleteWorkflowRow(db: Executor, workspaceId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('workflows').where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
