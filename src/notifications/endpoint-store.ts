import type { Executor, WebhookEndpointTable } from '../db/schema.js';
import type { Selectable } from 'kysely';
import { invalid, notFound } from '../errors.js';
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import { EVENTS, type NotificationEvent } from './events.js';
import { newEndpointSecret } from './signature.js';

// Webhook endpoints of a workspace. The secret is stored as given to the user: it signs
// every delivery, so it must stay readable (docs/notifications.md says how to protect
// the database accordingly).

type EndpointRow = Selectable<WebhookEndpointTable>;

export function toEndpointView(row: EndpointRow) {
  return {
    endpoint_id: row.id,
    url: row.url,
    events: row.events.split(',') as NotificationEvent[],
    workflow_id: row.workflow_id,
    enabled: row.enabled === 1,
    created_at: formatTimestamp(row.created_at)!,
  };
}

/** An endpoint URL must be absolute http(s); where it may point is the SSRF guard's
 * decision at send time (the same one as http steps'). */
export function checkEndpointUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`url: "${url}" is not an absolute URL; give https://host/path`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(`url: must use http:// or https://, got ${parsed.protocol}`);
  return parsed.toString();
}

export async function createEndpoint(
  db: Executor,
  args: { workspaceId: string; url: string; events?: NotificationEvent[]; workflowId?: string | null; now: number },
) {
  const url = checkEndpointUrl(args.url);
  if (args.workflowId) {
    const workflow = await db.selectFrom('workflows').select('id').where('workspace_id', '=', args.workspaceId).where('id', '=', args.workflowId).executeTakeFirst();
    if (!workflow) throw notFound('Workflow');
  }
  const row: EndpointRow = {
    id: newId(args.now),
    workspace_id: args.workspaceId,
    url,
    secret: newEndpointSecret(),
    events: (args.events ?? [...EVENTS]).join(','),
    workflow_id: args.workflowId ?? null,
    enabled: 1,
    created_at: args.now,
  };
  await db.insertInto('webhook_endpoints').values(row).execute();
  return { ...toEndpointView(row), secret: row.secret };
}

export async function findEndpoint(db: Executor, workspaceId: string, id: string): Promise<EndpointRow> {
  const row = await db.selectFrom('webhook_endpoints').selectAll().where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Webhook endpoint');
  return row;
}

export async function listEndpoints(db: Executor, workspaceId: string) {
  const rows = await db.selectFrom('webhook_endpoints').selectAll().where('workspace_id', '=', workspaceId).orderBy('id', 'desc').execute();
  return rows.map(toEndpointView);
}

export async function updateEndpoint(
  db: Executor,
  args: { workspaceId: string; id: string; url?: string; events?: NotificationEvent[]; enabled?: boolean },
) {
  const changes: Partial<EndpointRow> = {};
  if (args.url !== undefined) changes.url = checkEndpointUrl(args.url);
  if (args.events !== undefined) changes.events = args.events.join(',');
  if (args.enabled !== undefined) changes.enabled = args.enabled ? 1 : 0;
  if (Object.keys(changes).length > 0) {
    const result = await db.updateTable('webhook_endpoints').set(changes).where('workspace_id', '=', args.workspaceId).where('id', '=', args.id).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw notFound('Webhook endpoint');
  }
  return toEndpointView(await findEndpoint(db, args.workspaceId, args.id));
}

export async function deleteEndpoint(db: Executor, workspaceId: string, id: string) {
  const result = await db.deleteFrom('webhook_endpoints').where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw notFound('Webhook endpoint');
  return { endpoint_id: id, deleted: true as const };
}
