import type { ApiKeyRow, Executor } from '../db/schema.js';
import { newId } from '../lib/ids.js';
import { DAY_MS, formatTimestamp } from '../lib/time.js';
import type { Scope } from './scopes.js';
import { displayPrefix, generateSecret, hashSecret } from './secret.js';

export interface CreatedKey {
  row: ApiKeyRow;
  /** The secret, shown once and never stored. */
  secret: string;
}

export async function createApiKey(
  db: Executor,
  input: { workspaceId: string; scopes: readonly Scope[]; name?: string; expiresInDays?: number; now: number },
): Promise<CreatedKey> {
  const secret = generateSecret();
  const row: ApiKeyRow = {
    id: newId(input.now),
    workspace_id: input.workspaceId,
    name: input.name ?? 'default',
    prefix: displayPrefix(secret),
    secret_hash: hashSecret(secret),
    scopes: input.scopes.join(','),
    created_at: input.now,
    last_used_at: null,
    expires_at: input.expiresInDays === undefined ? null : input.now + input.expiresInDays * DAY_MS,
    revoked_at: null,
  };
  await db.insertInto('api_keys').values(row).execute();
  return { row, secret };
}

export async function findKeyByHash(db: Executor, secretHash: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('secret_hash', '=', secretHash).executeTakeFirst();
}

export async function listApiKeys(db: Executor, workspaceId: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().where('workspace_id', '=', workspaceId).orderBy('id', 'desc').execute();
}

/** Revokes a key; returns false for an unknown key. Revoking twice keeps the first time. */
export async function revokeApiKey(db: Executor, keyId: string, now: number): Promise<boolean> {
  const key = await db.selectFrom('api_keys').select(['id', 'revoked_at']).where('id', '=', keyId).executeTakeFirst();
  if (!key) return false;
  if (key.revoked_at === null) {
    await db.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', keyId).execute();
  }
  return true;
}

export async function touchLastUsed(db: Executor, keyIds: readonly string[], now: number): Promise<void> {
  if (keyIds.length === 0) return;
  await db.updateTable('api_keys').set({ last_used_at: now }).where('id', 'in', keyIds).execute();
}

export function toKeyListItem(row: ApiKeyRow) {
  return {
    key_id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes.split(','),
    created_at: formatTimestamp(row.created_at),
    last_used_at: formatTimestamp(row.last_used_at),
    expires_at: formatTimestamp(row.expires_at),
    revoked_at: formatTimestamp(row.revoked_at),
  };
}
