import type { Selectable } from 'kysely';
import { type PageParams, paginate } from '../db/paginate.js';
import type { Executor, WebhookTable } from '../db/schema.js';
import { formatTimestamp } from '../lib/time.js';
import type { SignatureSettings, Webhook } from './schemas.js';

export type WebhookRow = Selectable<WebhookTable>;

export function signatureOf(row: Pick<WebhookRow, 'signature'>): SignatureSettings | null {
  return row.signature === null ? null : (JSON.parse(row.signature) as SignatureSettings);
}

/** The webhook as the API shows it; `token` only in the response that created it. */
export function toWebhookView(row: WebhookRow, baseUrl: string, token?: string): Webhook {
  const signature = signatureOf(row);
  return {
    webhook_id: row.id,
    workflow_id: row.workflow_id,
    name: row.name,
    url: `${baseUrl}/hooks/${token ?? row.token_prefix}`,
    mode: row.mode as Webhook['mode'],
    sync_timeout_seconds: row.sync_timeout_seconds,
    signature:
      signature === null
        ? null
        : signature.type === 'hmac_sha256'
          ? { type: 'hmac_sha256', header: signature.header, prefix: signature.prefix ?? '', encoding: signature.encoding }
          : { type: signature.type },
    dedupe_header: row.dedupe_header,
    created_at: formatTimestamp(row.created_at)!,
    last_received_at: formatTimestamp(row.last_received_at),
  };
}

export async function findWebhook(db: Executor, workspaceId: string, id: string): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhooks').selectAll().where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
}

export async function findWebhookByTokenHash(db: Executor, tokenHash: string): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhooks').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

export async function listWebhooks(db: Executor, workspaceId: string, filter: PageParams & { workflow_id?: string }): Promise<WebhookRow[]> {
  let query = db.selectFrom('webhooks').selectAll().where('workspace_id', '=', workspaceId);
  if (filter.workflow_id !== undefined) query = query.where('workflow_id', '=', filter.workflow_id);
  return paginate(query, 'id', filter).execute();
}

export async function deleteWebhookRow(db: Executor, workspaceId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhooks').where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Part of deleting a workflow: its webhooks go with it (their URLs then answer 404). */
export async function deleteWebhooksOfWorkflow(db: Executor, workspaceId: string, workflowId: string): Promise<void> {
  await db.deleteFrom('webhooks').where('workspace_id', '=', workspaceId).where('workflow_id', '=', workflowId).execute();
}

export async function markReceived(db: Executor, id: string, now: number): Promise<void> {
  await db.updateTable('webhooks').set({ last_received_at: now }).where('id', '=', id).execute();
}
