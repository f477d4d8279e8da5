import { type Kysely, sql } from 'kysely';

// Secrets of a workspace, encrypted at rest (src/secrets/cipher.ts): one row per
// name, the value as `v1.` + base64(iv | tag | ciphertext). The check value that
// tells whether the configured key is the one the secrets were written with lives in
// `bootstrap` (name `secret_key_check`), so it needs no table of its own.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('secrets')
    .addColumn('workspace_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('name', 'varchar(64)', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('secrets_pk', ['workspace_id', 'name'])
    .execute();
  // What a waiting step waits for (an approval's message, a child execution) and a
  // for_each's progress: JSON, null for every other step.
  await db.schema.alterTable('execution_steps').addColumn('detail', 'text').execute();
  // A for_each step's items, each checkpointed as it completes (or starts waiting for
  // its child), so that a crash never runs a completed item again.
  await db.schema
    .createTable('execution_step_items')
    .addColumn('execution_id', 'varchar(24)', (c) => c.notNull())
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('item_index', 'integer', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('detail', 'text')
    .addPrimaryKeyConstraint('execution_step_items_pk', ['execution_id', 'idx', 'item_index'])
    .execute();
  await sql`update api_keys set scopes = ${PREVIOUS_ALL_SCOPES + ',secrets:read,secrets:write'} where scopes = ${PREVIOUS_ALL_SCOPES}`.execute(db);
}

/** Keys that had every scope before secrets existed get the two secrets scopes too:
 * "every scope" keeps meaning every scope. */
export const PREVIOUS_ALL_SCOPES = 'workflows:read,workflows:write,workflows:delete,workflows:execute,executions:read,workspace:read';
