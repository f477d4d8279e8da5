import { sql } from 'kysely';
import type { Db } from '../../src/db/open.js';
import type { ExecutionStepRow, Executor } from '../../src/db/schema.js';
import { stepsOf } from '../../src/executions/store.js';

// Reading and shaping engine rows in tests. A step's row is written when the step
// first changes, so "every step of an execution" is its snapshot merged with its rows
// (the same view the API serves).

/** Every step of each execution, in order (pending steps included). */
export async function stepRows(db: Executor, executionId: string): Promise<ExecutionStepRow[]> {
  const execution = await db.selectFrom('executions').select(['id', 'version_id']).where('id', '=', executionId).executeTakeFirstOrThrow();
  return stepsOf(db, execution);
}

/** Steps of many executions, ordered by execution id then index. */
export async function stepRowsOf(db: Executor, executionIds: readonly string[]): Promise<ExecutionStepRow[]> {
  const out: ExecutionStepRow[] = [];
  for (const id of [...executionIds].sort()) out.push(...(await stepRows(db, id)));
  return out;
}

/** How many executions are `running` (in one workspace, or in all). */
export async function runningExecutions(db: Executor, workspaceId?: string): Promise<number> {
  const row = await db
    .selectFrom('executions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'running')
    .$if(workspaceId !== undefined, (q) => q.where('workspace_id', '=', workspaceId!))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Writes step `idx` of an execution as a worker would have left it (tests of crashes). */
export async function putStep(handle: Db, executionId: string, idx: number, fields: Partial<ExecutionStepRow>): Promise<void> {
  const current = (await stepRows(handle.db, executionId))[idx]!;
  const row = { ...current, ...fields, execution_id: executionId, idx };
  await handle.db
    .insertInto('execution_steps')
    .values(row)
    .onConflict((oc) => oc.columns(['execution_id', 'idx']).doUpdateSet(fields))
    .execute();
}

export { sql };
