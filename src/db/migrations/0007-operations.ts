import { type Kysely, sql } from 'kysely';

// Operating executions:
// - `webhook_endpoints` and `webhook_deliveries`: completion notifications through a
//   transactional outbox (a delivery row is written with the execution's final status);
//   deliveries are claimed like executions (lease owner, fencing token, due time).
// - `execution_steps.reused`: a retry's copied steps (1) versus steps it ran (0).
// - List filters: one index per filterable column, each ending in `id`, so that a page
//   of "this workspace, this trigger / error code, newest first" is read in index order.
// - Retention: finished executions by completion time, for the pruner.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    // The signing secret, as given to the user once (whsec_…): it must be readable to
    // sign, so it is not hashed. See docs/notifications.md.
    .addColumn('secret', 'text', (c) => c.notNull())
    /** Comma-separated event names. */
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('workflow_id', 'varchar(24)')
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_endpoints_workspace').on('webhook_endpoints').columns(['workspace_id', 'id']).execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('execution_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('endpoint_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('event', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('delivered_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // Claims: due at available_at (the next attempt, or a claimed one's lease expiry).
    .addColumn('available_at', 'bigint')
    .addColumn('lease_owner', 'varchar(64)')
    .addColumn('lease_token', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('webhook_deliveries_execution').on('webhook_deliveries').columns(['execution_id', 'id']).execute();
  await db.schema
    .createIndex('webhook_deliveries_due')
    .on('webhook_deliveries')
    .columns(['available_at'])
    .where(sql.ref('status'), '=', 'pending')
    .execute();

  await db.schema.alterTable('execution_steps').addColumn('reused', 'integer', (c) => c.notNull().defaultTo(0)).execute();

  await db.schema.createIndex('executions_trigger').on('executions').columns(['workspace_id', 'trigger_type', 'id']).execute();
  await db.schema.createIndex('executions_error_code').on('executions').columns(['workspace_id', 'error_code', 'id']).execute();
  await db.schema
    .createIndex('executions_completed')
    .on('executions')
    .columns(['completed_at'])
    .where(sql.ref('completed_at'), 'is not', null)
    .execute();
}
