import type { Kysely } from 'kysely';

// Executions record how they were started: `trigger_type` (api, schedule, webhook,
// retry, workflow) for filtering, `trigger` (the whole object, JSON) for display,
// `retry_of` (the execution a retry re-runs; unique, so that an execution is retried
// at most once whatever the race) and `depth` (how deep in a chain of sub-workflows).
// Existing executions were all started through run-async.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('executions')
    .addColumn('trigger_type', 'text', (c) => c.notNull().defaultTo('api'))
    .execute();
  await db.schema.alterTable('executions').addColumn('trigger', 'text').execute();
  await db.schema.alterTable('executions').addColumn('retry_of', 'text').execute();
  await db.schema.alterTable('executions').addColumn('depth', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.createIndex('executions_retry_of').unique().on('executions').column('retry_of').execute();
}
