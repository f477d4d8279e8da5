import { type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { Db } from './open.js';
import * as m0001 from './migrations/0001-initial.js';
import * as m0002 from './migrations/0002-executions-workflow-status-index.js';
import * as m0003 from './migrations/0003-executions-due-by-workspace.js';
import * as m0004 from './migrations/0004-lean-hot-path.js';
import * as m0005 from './migrations/0005-execution-trigger.js';
import * as m0006 from './migrations/0006-triggers.js';
import * as m0007 from './migrations/0007-operations.js';
import * as m0008 from './migrations/0008-automation-steps.js';
import * as m0009 from './migrations/0009-unlimited-credits.js';

// A static list, not a directory scan: the build cannot lose a migration and the
// order is the one written here.
const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': m0001,
  '0002-executions-workflow-status-index': m0002,
  '0003-executions-due-by-workspace': m0003,
  '0004-lean-hot-path': m0004,
  '0005-execution-trigger': m0005,
  '0006-triggers': m0006,
  '0007-operations': m0007,
  '0008-automation-steps': m0008,
  '0009-unlimited-credits': m0009,
};

/** Every migration this build knows, in order: /readyz compares the applied ones with it. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(MIGRATIONS);

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/** Brings the schema up to date; returns the names applied by this call. Safe to run
 * from several processes at once (Kysely takes a migration lock). */
export async function migrate(handle: Db): Promise<string[]> {
  const migrator = new Migrator({ db: handle.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
