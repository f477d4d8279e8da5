import type { Kysely } from 'kysely';

// The engine's hot path writes fewer b-trees:
// - `executions_runnable` (due time alone) goes: claims probe each active workspace
//   through `executions_due_by_workspace`, which answers the same questions;
// - `workspaces.running_executions` goes: it was a second write on the busiest row of
//   the database in every start and every end of an execution (on PostgreSQL, a row
//   lock every writer queued behind). The concurrency cap now counts the workspace's
//   running executions under a lock of its row, only where a cap is set.
// - `executions.interruptions` counts the takeovers of the execution's current step
//   (a claim of a lease that its holder let lapse): it works for every step, also
//   one that is not marked `running` before it runs.
// Step rows are now written when a step starts (or ends), not as `pending`
// placeholders at run-async; existing placeholders stay valid.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('executions_runnable').execute();
  await db.schema.alterTable('workspaces').dropColumn('running_executions').execute();
  await db.schema.alterTable('executions').addColumn('interruptions', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}
