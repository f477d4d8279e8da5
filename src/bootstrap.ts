import { ALL_SCOPES_KEY_NAME, createWorkspaceWithKey } from './workspaces/create-workspace.js';
import type { Db } from './db/open.js';
import type { Clock } from './lib/time.js';

// First start on an empty database creates the `Default` workspace with 1000 credits
// and one all-scope key. The `bootstrap` row's primary key makes this happen exactly
// once even when several processes start together: only the process whose INSERT
// wins creates the workspace, and only it gets the secret to print.

export const DEFAULT_WORKSPACE_CREDITS = 1000;

export async function bootstrapDefaultWorkspace(db: Db, clock: Clock) {
  return db.db.transaction().execute(async (trx) => {
    const claimed = await trx
      .insertInto('bootstrap')
      .values({ name: 'default_workspace', value: String(clock.now()) })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    if (Number(claimed.numInsertedOrUpdatedRows ?? 0n) === 0) return null;
    const existing = await trx.selectFrom('workspaces').select('id').limit(1).executeTakeFirst();
    if (existing) return null;
    return createWorkspaceWithKey(trx, { name: 'Default', credits: DEFAULT_WORKSPACE_CREDITS, now: clock.now(), keyName: ALL_SCOPES_KEY_NAME });
  });
}
