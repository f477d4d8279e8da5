import type { Db } from '../db/open.js';
import type { Executor } from '../db/schema.js';
import { ApiError, invalid } from '../errors.js';
import { DAY_MS } from '../lib/time.js';
import { fingerprint } from './fingerprint.js';

// Idempotency keys (docs/api.md#idempotency) on run-async and stop. The response of a success is
// stored in the same transaction as its effect, so "the execution exists" and "the
// key is recorded" are one fact. Errors are never stored: the key stays free.
// Concurrent duplicates: on SQLite transactions are serial, so the second sees the
// first's record. On PostgreSQL every transaction that carries a key first takes a
// transaction-scoped advisory lock on (workspace, key): a duplicate waits there until
// the first commits or rolls back, and then (read committed: each statement sees what
// was committed before it) finds the record and replays it. Without that lock a
// duplicate would run beside the first and fail on whatever the first used up — the
// last credit (402), the last concurrency slot (429), the running state of the
// execution it stops (400) — instead of getting the replay. The unique violation on
// the key's primary key stays as the backstop (retried once).

export const RETENTION_MS = DAY_MS;
const KEY_PATTERN = /^[\x21-\x7e]{1,256}$/;

export interface IdempotentRequest {
  workspaceId: string;
  key: string;
  fingerprint: string;
}

export interface StoredResponse {
  status: number;
  bodyText: string;
  replayed: boolean;
}

export const reusedKey = () =>
  new ApiError(
    'idempotency_key_reused',
    'This Idempotency-Key was already used for a different request (method, path or body). Use a new key for a new request.',
  );

/** Reads the Idempotency-Key header; null when absent, 400 when malformed. */
export function idempotentRequest(
  workspaceId: string,
  header: string | string[] | undefined,
  request: { method: string; url: string; body: unknown },
): IdempotentRequest | null {
  if (header === undefined) return null;
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined || !KEY_PATTERN.test(key)) {
    throw invalid('Idempotency-Key must be 1–256 printable ASCII characters (0x21–0x7E), without spaces.');
  }
  return { workspaceId, key, fingerprint: fingerprint(request.method, request.url, request.body) };
}

/** Serialises the transactions that carry the same key (PostgreSQL; SQLite runs one
 * write transaction at a time already). Call first in the transaction, before
 * anything the first request may change. Released at commit or rollback. */
export async function lockKey(db: Db, trx: Executor, request: IdempotentRequest): Promise<void> {
  await db.lockInTransaction(trx, `idempotency\n${request.workspaceId}\n${request.key}`);
}

/** Returns the stored response to replay, or null when the key is free. Throws 422
 * when the key was used for a different request. */
export async function findReplay(db: Executor, request: IdempotentRequest, now: number): Promise<StoredResponse | null> {
  const row = await db
    .selectFrom('idempotency_keys')
    .select(['fingerprint', 'status_code', 'body', 'expires_at'])
    .where('workspace_id', '=', request.workspaceId)
    .where('key', '=', request.key)
    .executeTakeFirst();
  if (!row || row.expires_at <= now) return null;
  if (row.fingerprint !== request.fingerprint) throw reusedKey();
  return { status: row.status_code, bodyText: row.body, replayed: true };
}

export async function saveResponse(
  db: Executor,
  request: IdempotentRequest,
  response: { status: number; bodyText: string },
  now: number,
): Promise<void> {
  // An expired record of the same key may still be there (purging is periodic).
  await db
    .deleteFrom('idempotency_keys')
    .where('workspace_id', '=', request.workspaceId)
    .where('key', '=', request.key)
    .where('expires_at', '<=', now)
    .execute();
  await db
    .insertInto('idempotency_keys')
    .values({
      workspace_id: request.workspaceId,
      key: request.key,
      fingerprint: request.fingerprint,
      status_code: response.status,
      body: response.bodyText,
      created_at: now,
      expires_at: now + RETENTION_MS,
    })
    .execute();
}

/** Runs `attempt` and, if it lost a race on an idempotency key (unique violation),
 * runs it once more: the second run finds the winner's record and replays it. */
export async function retryOnKeyConflict<T>(db: Db, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (!db.isUniqueViolation(error)) throw error;
    return attempt();
  }
}

export async function purgeExpiredKeys(db: Executor, now: number): Promise<number> {
  const result = await db.deleteFrom('idempotency_keys').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
