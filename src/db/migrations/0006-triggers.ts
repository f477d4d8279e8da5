import type { Kysely } from 'kysely';

// Triggers: cron schedules and inbound webhooks.
// - `schedules.next_run_at` is the stored fire time of the next tick (null while
//   disabled); `version` is bumped by every edit. A tick is claimed by a guarded update
//   of both, in the transaction that creates its execution, so an edit made meanwhile
//   makes the claim fail instead of firing under the old definition.
// - `schedule_ticks` backs that claim with a unique key per (schedule, tick): even a
//   claim that slipped past the guard could not start a tick twice.
// - `webhooks.token_hash` is the SHA-256 of the URL's secret token (looked up on every
//   delivery); the token itself is never stored.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('schedules')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('workflow_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('cron', 'text', (c) => c.notNull())
    .addColumn('timezone', 'text', (c) => c.notNull())
    .addColumn('input', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('overlap', 'text', (c) => c.notNull())
    .addColumn('catchup', 'text', (c) => c.notNull())
    .addColumn('next_run_at', 'bigint')
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('last_run_at', 'bigint')
    .addColumn('last_execution_id', 'varchar(24)')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('schedules_workspace').on('schedules').columns(['workspace_id', 'id']).execute();
  await db.schema.createIndex('schedules_workflow').on('schedules').columns(['workflow_id']).execute();
  await db.schema.createIndex('schedules_due').on('schedules').columns(['next_run_at']).execute();

  await db.schema
    .createTable('schedule_ticks')
    .addColumn('schedule_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('scheduled_for', 'bigint', (c) => c.notNull())
    .addColumn('execution_id', 'varchar(24)', (c) => c.notNull())
    .addPrimaryKeyConstraint('schedule_ticks_pkey', ['schedule_id', 'scheduled_for'])
    .execute();

  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'varchar(24)', (c) => c.primaryKey())
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('workflow_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('token_prefix', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('sync_timeout_seconds', 'integer', (c) => c.notNull())
    .addColumn('signature', 'text')
    .addColumn('dedupe_header', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_received_at', 'bigint')
    .execute();
  await db.schema.createIndex('webhooks_workspace').on('webhooks').columns(['workspace_id', 'id']).execute();
  await db.schema.createIndex('webhooks_workflow').on('webhooks').columns(['workflow_id']).execute();
}
