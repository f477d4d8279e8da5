import type { Kysely } from 'kysely';

// Lists filtered by both workflow_id and status had no index of their own: the
// planner walked one filter's index and checked the other, and PostgreSQL, which
// treats workspace_id and workflow_id as independent, could pick a bitmap scan plus a
// sort whose cost grows with the workflow's size. This index serves that filter in
// order, so its pages cost the same at any depth too.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('executions_workflow_status')
    .on('executions')
    .columns(['workspace_id', 'workflow_id', 'status', 'id'])
    .execute();
}
