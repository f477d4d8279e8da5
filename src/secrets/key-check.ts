import type { Db } from '../db/open.js';
import type { Executor } from '../db/schema.js';
import { SecretDecryptError, decryptSecret, encryptSecret } from './cipher.js';
import type { SecretKey } from './secret-key.js';

// A value encrypted under the key the first time a server starts with one, so that a
// later start with another key is caught at once — before any step finds that its
// secrets do not decrypt — and `serve` refuses to start with a message saying so.

const CHECK_ROW = 'secret_key_check';
const CHECK_SCOPE = 'skipflow';
const CHECK_NAME = 'key-check';
const CHECK_PLAIN = 'SkipFlow secret key check';

export class SecretKeyMismatchError extends Error {}

export async function readKeyCheck(db: Executor): Promise<string | null> {
  const row = await db.selectFrom('bootstrap').select('value').where('name', '=', CHECK_ROW).executeTakeFirst();
  return row?.value ?? null;
}

export function keyCheckValue(key: Buffer): string {
  return encryptSecret(key, CHECK_SCOPE, CHECK_NAME, CHECK_PLAIN);
}

export function keyMatchesCheck(key: Buffer, stored: string): boolean {
  try {
    return decryptSecret(key, CHECK_SCOPE, CHECK_NAME, stored) === CHECK_PLAIN;
  } catch (error) {
    if (error instanceof SecretDecryptError) return false;
    throw error;
  }
}

export async function writeKeyCheck(db: Executor, key: Buffer): Promise<void> {
  await db.updateTable('bootstrap').set({ value: keyCheckValue(key) }).where('name', '=', CHECK_ROW).execute();
}

/** At start: records the check value under a first key, or verifies the key against it. */
export async function verifySecretKey(handle: Db, key: SecretKey | null): Promise<void> {
  const db = handle.db;
  if (key === null) {
    if ((await readKeyCheck(db)) !== null) {
      throw new SecretKeyMismatchError(
        'this database holds secrets encrypted with a key, but no key is configured: set SKIPFLOW_SECRET_KEY to the key they were written with',
      );
    }
    return;
  }
  await db.insertInto('bootstrap').values({ name: CHECK_ROW, value: keyCheckValue(key.key) }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const stored = await readKeyCheck(db);
  if (stored === null || !keyMatchesCheck(key.key, stored)) {
    throw new SecretKeyMismatchError(
      `the secret key from ${key.source} cannot decrypt the secrets stored in this database (it is not the key they were written with); ` +
        'configure the original key, or re-encrypt with `skipflow secrets rotate-key`',
    );
  }
}
