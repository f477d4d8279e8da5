import type { Db } from '../db/open.js';
import { StepFailure } from '../engine/step-errors.js';
import { SecretDecryptError } from './cipher.js';
import type { SecretKey } from './secret-key.js';
import { readSecretValues } from './store.js';

// How the engine reads the secrets a step names, just before each attempt (so a
// secret replaced between two attempts is used from the next one). A name the
// workspace does not have fails the step with `secret_not_found`, not retried: no
// later attempt would find it either.

export interface SecretSource {
  /** The plain values of `names`, every one of them, or a StepFailure. */
  resolve(workspaceId: string, names: readonly string[]): Promise<Map<string, string>>;
}

export function createSecretSource(db: Db, key: SecretKey | null): SecretSource {
  return {
    async resolve(workspaceId, names) {
      if (names.length === 0) return new Map();
      if (key === null) {
        throw new StepFailure('secret_not_found', `secrets.${names[0]}: secrets are not configured on this server (the operator must set SKIPFLOW_SECRET_KEY).`);
      }
      let values: Map<string, string>;
      try {
        values = await readSecretValues(db.db, key.key, workspaceId, names);
      } catch (error) {
        if (error instanceof SecretDecryptError) {
          throw new StepFailure('secret_not_found', `A secret this step uses cannot be decrypted with the key from ${key.source}; it was written under another key.`);
        }
        throw error;
      }
      const missing = names.find((name) => !values.has(name));
      if (missing !== undefined) {
        throw new StepFailure('secret_not_found', `secrets.${missing}: this workspace has no secret named "${missing}"; create it with PUT /api/v1/secrets/${missing}.`);
      }
      return values;
    },
  };
}
