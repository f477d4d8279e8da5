import type { Kysely } from 'kysely';

// Frozen once shipped.
// - workspaces.credits_unlimited: a workspace with unlimited credits (the API shows
//   `credits: null`): nothing is debited and a start is never refused for credits.
//   A flag beside the balance, not a nullable balance: SQLite cannot relax a NOT
//   NULL/CHECK column without rebuilding the table, and the balance survives a switch
//   back to metered credits.
// - execution_steps.duration_ms: the run time of a step's last attempt, measured by
//   the worker (timestamps have seconds precision); null before it ran.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('workspaces').addColumn('credits_unlimited', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('execution_steps').addColumn('duration_ms', 'integer').execute();
}
