import type { Executor } from '../db/schema.js';
import { formatTimestamp } from '../lib/time.js';
import { decryptSecret, encryptSecret } from './cipher.js';

// A workspace's secrets: written encrypted, listed by name, read back (decrypted)
// only by the engine, just before a step's attempt. No function here returns a
// value to the API.

export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_SECRET_BYTES = 64 * 1024;

export interface SecretView {
  name: string;
  created_at: string;
  updated_at: string;
}

const view = (row: { name: string; created_at: number; updated_at: number }): SecretView => ({
  name: row.name,
  created_at: formatTimestamp(row.created_at)!,
  updated_at: formatTimestamp(row.updated_at)!,
});

/** Creates or replaces a secret (a fresh IV every time); keeps its created_at. */
export async function putSecret(db: Executor, key: Buffer, args: { workspaceId: string; name: string; value: string; now: number }): Promise<SecretView> {
  const value = encryptSecret(key, args.workspaceId, args.name, args.value);
  const row = await db
    .insertInto('secrets')
    .values({ workspace_id: args.workspaceId, name: args.name, value, created_at: args.now, updated_at: args.now })
    .onConflict((oc) => oc.columns(['workspace_id', 'name']).doUpdateSet({ value, updated_at: args.now }))
    .returning(['name', 'created_at', 'updated_at'])
    .executeTakeFirstOrThrow();
  return view({ name: row.name, created_at: Number(row.created_at), updated_at: Number(row.updated_at) });
}

export async function listSecrets(db: Executor, workspaceId: string): Promise<SecretView[]> {
  const rows = await db.selectFrom('secrets').select(['name', 'created_at', 'updated_at']).where('workspace_id', '=', workspaceId).orderBy('name').execute();
  return rows.map((r) => view({ name: r.name, created_at: Number(r.created_at), updated_at: Number(r.updated_at) }));
}

export async function deleteSecret(db: Executor, workspaceId: string, name: string): Promise<boolean> {
  const rows = await db.deleteFrom('secrets').where('workspace_id', '=', workspaceId).where('name', '=', name).returning('name').execute();
  return rows.length > 0;
}

/** The plain values of `names` that exist in the workspace (decrypted). */
export async function readSecretValues(db: Executor, key: Buffer, workspaceId: string, names: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (names.length === 0) return out;
  const rows = await db.selectFrom('secrets').select(['name', 'value']).where('workspace_id', '=', workspaceId).where('name', 'in', [...names]).execute();
  for (const row of rows) out.set(row.name, decryptSecret(key, workspaceId, row.name, row.value));
  return out;
}
