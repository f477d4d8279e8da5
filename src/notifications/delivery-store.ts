import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor, WebhookDeliveryTable } from '../db/schema.js';
import { notFound } from '../errors.js';
import { formatTimestamp } from '../lib/time.js';
import type { NotificationEvent } from './events.js';

type DeliveryRow = Selectable<WebhookDeliveryTable>;

export function toDeliveryView(row: DeliveryRow) {
  return {
    delivery_id: row.id,
    endpoint_id: row.endpoint_id,
    event: row.event as NotificationEvent,
    status: row.status,
    attempts: row.attempts,
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    next_attempt_at: row.status === 'pending' ? formatTimestamp(row.next_attempt_at) : null,
    delivered_at: formatTimestamp(row.delivered_at),
    created_at: formatTimestamp(row.created_at)!,
  };
}

export async function listDeliveries(db: Executor, workspaceId: string, executionId: string) {
  const execution = await db.selectFrom('executions').select('id').where('workspace_id', '=', workspaceId).where('id', '=', executionId).executeTakeFirst();
  if (!execution) throw notFound('Execution');
  const rows = await db.selectFrom('webhook_deliveries').selectAll().where('execution_id', '=', executionId).orderBy('id').execute();
  return rows.map(toDeliveryView);
}

/** Makes the delivery due now, whatever its state. Bumping the token fences a sender
 * that still holds it (its outcome is not recorded); a failed or delivered delivery
 * becomes pending again. */
export async function redeliver(db: Executor, args: { workspaceId: string; id: string; now: number }) {
  const row = await db
    .updateTable('webhook_deliveries')
    .set({
      status: 'pending',
      available_at: args.now,
      next_attempt_at: args.now,
      lease_owner: null,
      lease_token: sql<number>`lease_token + 1`,
    })
    .where('workspace_id', '=', args.workspaceId)
    .where('id', '=', args.id)
    .returningAll()
    .executeTakeFirst();
  if (!row) throw notFound('Delivery');
  return toDeliveryView(row);
}
