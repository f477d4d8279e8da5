import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { newId } from '../lib/ids.js';
import { findWorkflow } from '../workflows/store.js';
import type { Webhook, WebhookInput } from './schemas.js';
import { deleteWebhookRow, findWebhook, toWebhookView } from './store.js';
import { generateToken, hashToken, tokenPrefix } from './token.js';

type Deps = Pick<AppDeps, 'db' | 'clock' | 'config'>;

/** The base of every webhook URL: SKIPFLOW_PUBLIC_URL, else the listen address. */
export function publicBaseUrl(config: AppDeps['config']): string {
  return config.publicUrl ?? `http://${config.host}:${config.port}`;
}

/** Creates the webhook; the response is the only one that shows its full URL. */
export async function createWebhook(deps: Deps, args: { workspaceId: string; workflowId: string; input: WebhookInput }): Promise<Webhook> {
  const { workspaceId, workflowId, input } = args;
  const token = generateToken();
  return deps.db.db.transaction().execute(async (trx) => {
    if (!(await findWorkflow(trx, workspaceId, workflowId))) throw notFound('Workflow');
    const now = deps.clock.now();
    const id = newId(now);
    const signature = input.signature ? (input.signature.type === 'hmac_sha256' ? { ...input.signature, prefix: input.signature.prefix ?? '' } : input.signature) : null;
    await trx
      .insertInto('webhooks')
      .values({
        id,
        workspace_id: workspaceId,
        workflow_id: workflowId,
        name: input.name ?? '',
        token_hash: hashToken(token),
        token_prefix: tokenPrefix(token),
        mode: input.mode ?? 'async',
        sync_timeout_seconds: input.sync_timeout_seconds ?? 10,
        signature: signature ? JSON.stringify(signature) : null,
        dedupe_header: input.dedupe_header ?? null,
        created_at: now,
      })
      .execute();
    return toWebhookView((await findWebhook(trx, workspaceId, id))!, publicBaseUrl(deps.config), token);
  });
}

export async function deleteWebhook(deps: Deps, args: { workspaceId: string; id: string }) {
  if (!(await deleteWebhookRow(deps.db.db, args.workspaceId, args.id))) throw notFound('Webhook');
  return { webhook_id: args.id, deleted: true as const };
}
