import { type Kysely, sql } from 'kysely';

// Fair claiming takes each active workspace's oldest due executions separately, so
// one workspace's backlog cannot starve another's: this index answers "workspace W's
// due executions, oldest first" with one range scan.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('executions_due_by_workspace')
    .on('executions')
    .columns(['workspace_id', 'available_at'])
    .where(sql.ref('status'), '=', 'running')
    .execute();
}
