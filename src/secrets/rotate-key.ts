import type { Db } from '../db/open.js';
import { decryptSecret, encryptSecret } from './cipher.js';
import { SecretKeyMismatchError, keyCheckValue, keyMatchesCheck, readKeyCheck } from './key-check.js';

// Key rotation: every secret of every workspace, and the check value, re-encrypted
// from the old key to the new one in ONE transaction — either the database is all
// under the new key or it is untouched. Servers must then restart with the new key
// (a server still holding the old one would fail to decrypt, and would refuse to
// start again with it).

export async function rotateSecretKey(handle: Db, oldKey: Buffer, newKey: Buffer): Promise<{ secrets: number }> {
  return handle.db.transaction().execute(async (tx) => {
    const check = await readKeyCheck(tx);
    if (check !== null && !keyMatchesCheck(oldKey, check)) {
      throw new SecretKeyMismatchError('the current key does not decrypt this database\'s secrets: give the key they were written with');
    }
    const rows = await tx.selectFrom('secrets').select(['workspace_id', 'name', 'value']).execute();
    for (const row of rows) {
      const plain = decryptSecret(oldKey, row.workspace_id, row.name, row.value);
      await tx
        .updateTable('secrets')
        .set({ value: encryptSecret(newKey, row.workspace_id, row.name, plain) })
        .where('workspace_id', '=', row.workspace_id)
        .where('name', '=', row.name)
        .execute();
    }
    await tx
      .insertInto('bootstrap')
      .values({ name: 'secret_key_check', value: keyCheckValue(newKey) })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value: keyCheckValue(newKey) }))
      .execute();
    return { secrets: rows.length };
  });
}
