import type { AuthContext } from '../api-keys/key-verifier.js';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { stopRunningExecutions } from '../executions/transitions.js';
import type { Workflow, WorkflowInput } from './schemas.js';
import { deleteSchedulesOfWorkflow } from '../schedules/store.js';
import { deleteWebhooksOfWorkflow } from '../webhooks/store.js';
import { deleteWorkflowRow, findWorkflow, insertWorkflow, replaceWorkflow, toWorkflowView } from './store.js';

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

export async function createWorkflow(deps: Deps, args: { auth: AuthContext; input: WorkflowInput }): Promise<Workflow> {
  const { workspaceId, keyId } = args.auth;
  return deps.db.db.transaction().execute(async (trx) => {
    const id = await insertWorkflow(trx, { workspaceId, input: args.input, createdBy: keyId, now: deps.clock.now() });
    return toWorkflowView((await findWorkflow(trx, workspaceId, id))!);
  });
}

export async function replaceWorkflowById(
  deps: Deps,
  args: { auth: AuthContext; id: string; input: WorkflowInput },
): Promise<Workflow> {
  const { workspaceId } = args.auth;
  return deps.db.db.transaction().execute(async (trx) => {
    const found = await replaceWorkflow(trx, { workspaceId, id: args.id, input: args.input, now: deps.clock.now() });
    if (!found) throw notFound('Workflow');
    return toWorkflowView((await findWorkflow(trx, workspaceId, args.id))!);
  });
}

/** Deletes the workflow and, in the same transaction, stops its running executions
 * (docs/api.md#workflow: they are `stopped` before the response returns, and stay readable). */
export async function deleteWorkflow(deps: Deps, args: { auth: AuthContext; id: string }) {
  const { workspaceId } = args.auth;
  const { name, stopped } = await deps.db.db.transaction().execute(async (trx) => {
    const row = await findWorkflow(trx, workspaceId, args.id);
    if (!row) throw notFound('Workflow');
    const stoppedIds = await stopRunningExecutions(deps.db, trx, { workspaceId, workflowId: args.id, now: deps.clock.now() });
    await deleteWorkflowRow(trx, workspaceId, args.id);
    await deleteSchedulesOfWorkflow(trx, workspaceId, args.id);
    await deleteWebhooksOfWorkflow(trx, workspaceId, args.id);
    return { name: row.name, stopped: stoppedIds };
  });
  for (const id of stopped) deps.signals.stopRequested(id);
  return { id: args.id, name, deleted: true as const };
}
