import { createApiKey } from '../api-keys/store.js';
import { SCOPES } from '../api-keys/scopes.js';
import type { Executor } from '../db/schema.js';
import { insertWorkspace } from './store.js';

export const ALL_SCOPES_KEY_NAME = 'all scopes';

/** A new workspace and one key with every scope (incl. workflows:delete). Call in a transaction. */
export async function createWorkspaceWithKey(db: Executor, args: { name: string; credits: number; now: number; keyName?: string }) {
  const workspace = await insertWorkspace(db, { name: args.name, credits: args.credits, now: args.now });
  const key = await createApiKey(db, { workspaceId: workspace.id, scopes: SCOPES, name: args.keyName ?? ALL_SCOPES_KEY_NAME, now: args.now });
  return {
    workspace_id: workspace.id,
    name: workspace.name,
    credits: workspace.credits,
    api_key: key.secret,
    key_id: key.row.id,
    scopes: [...SCOPES],
  };
}
