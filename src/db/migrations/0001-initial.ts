import { type Kysely, sql } from 'kysely';

// Frozen once shipped: later changes get a new numbered migration.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('workspaces')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('credits', 'bigint', (c) => c.notNull().check(sql`credits >= 0`))
    .addColumn('max_concurrent_executions', 'integer')
    .addColumn('running_executions', 'integer', (c) => c.notNull().defaultTo(0).check(sql`running_executions >= 0`))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull().references('workspaces.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('expires_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('api_keys_workspace').on('api_keys').columns(['workspace_id', 'id']).execute();

  await db.schema
    .createTable('workflows')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull().references('workspaces.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('version_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('created_by', 'varchar(24)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('workflows_workspace').on('workflows').columns(['workspace_id', 'id']).execute();

  // Versions outlive their workflow: executions of a deleted workflow stay readable.
  await db.schema
    .createTable('workflow_versions')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workflow_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('steps', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('executions')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('workflow_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('version_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('workflow_name', 'text', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('input', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('error_step_index', 'integer')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('completed_at', 'bigint')
    .addColumn('current_step', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('available_at', 'bigint')
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('lease_token', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // Every list query is "this workspace, maybe filtered, id below the cursor, newest
  // first": each filter combination has an index that serves it in order, so a page
  // costs the same at any depth and any table size.
  await db.schema.createIndex('executions_workspace').on('executions').columns(['workspace_id', 'id']).execute();
  await db.schema
    .createIndex('executions_workflow')
    .on('executions')
    .columns(['workspace_id', 'workflow_id', 'id'])
    .execute();
  await db.schema
    .createIndex('executions_status')
    .on('executions')
    .columns(['workspace_id', 'status', 'id'])
    .execute();
  // The claim query: runnable executions by due time. Partial, so terminal rows cost nothing.
  await db.schema
    .createIndex('executions_runnable')
    .on('executions')
    .columns(['available_at'])
    .where(sql.ref('status'), '=', 'running')
    .execute();

  await db.schema
    .createTable('execution_steps')
    .addColumn('execution_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('error', 'text')
    .addColumn('error_code', 'varchar(64)')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('interruptions', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('phase', 'varchar(16)')
    .addColumn('wake_at', 'bigint')
    .addColumn('started_at', 'bigint')
    .addColumn('completed_at', 'bigint')
    .addPrimaryKeyConstraint('execution_steps_pk', ['execution_id', 'idx'])
    .execute();

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('key', 'varchar(256)', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(64)', (c) => c.notNull())
    .addColumn('status_code', 'integer', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['workspace_id', 'key'])
    .execute();
  await db.schema.createIndex('idempotency_keys_expiry').on('idempotency_keys').columns(['expires_at']).execute();

  await db.schema
    .createTable('rate_windows')
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_windows_pk', ['workspace_id', 'window_start'])
    .execute();

  // One-time facts such as "the Default workspace was created": the primary key makes
  // the first writer the only one, however many processes start at once.
  await db.schema
    .createTable('bootstrap')
    .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}
