import { sql } from 'kysely';
import type { Executor } from '../db/schema.js';
import { type Runner, type Values, param, statement } from '../db/statements.js';
import type { TerminalStatus } from '../executions/status.js';
import { newId } from '../lib/ids.js';
import { type NotificationEvent, eventFor } from './events.js';

// The transactional outbox. Whoever writes an execution's final status (the engine's
// checkpoints, a stop, a stop of many) calls this in the same transaction with the
// executions it just finished: one delivery row per matching enabled endpoint. So a
// crash right after the status commits cannot lose a notification — the row is there
// and the delivery worker sends it after the restart.
//
// Cost on the hot path: the engine's finish statement itself says whether the
// execution's workspace has an enabled endpoint (an index probe inside that UPDATE), so
// a workspace without endpoints costs no extra statement; otherwise one indexed read of
// the batch's workspaces' enabled endpoints (webhook_endpoints_workspace) and one insert.

export interface FinishedExecution {
  id: string;
  workspace_id: string;
  workflow_id: string;
  status: TerminalStatus;
  completed_at: number;
}

interface EndpointMatch {
  id: string;
  workspace_id: string;
  events: string;
  workflow_id: string | null;
}

const enabledEndpoints = statement<EndpointMatch>('notifications:endpoints-of', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`select id, workspace_id, events, workflow_id from webhook_endpoints
        where workspace_id in (select value from json_array_elements_text(${param('ids')}::json)) and enabled = 1`
    : sql`select id, workspace_id, events, workflow_id from webhook_endpoints
        where workspace_id in (select value from json_each(${param('ids')})) and enabled = 1`,
);

const DELIVERY_COLUMNS = ['id', 'workspace_id', 'execution_id', 'endpoint_id', 'event', 'status', 'next_attempt_at', 'created_at', 'available_at'] as const;

const insertDeliveries = statement('notifications:insert-deliveries', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`insert into webhook_deliveries (${sql.raw(DELIVERY_COLUMNS.join(', '))})
        select ${sql.raw(DELIVERY_COLUMNS.map((c) => `r.${c}`).join(', '))} from json_to_recordset(${param('rows')}::json)
        as r(id text, workspace_id text, execution_id text, endpoint_id text, event text, status text, next_attempt_at bigint, created_at bigint, available_at bigint)`
    : sql`insert into webhook_deliveries (${sql.raw(DELIVERY_COLUMNS.join(', '))})
        values (${sql.join(DELIVERY_COLUMNS.map((c) => sql`${param(c)}`))})`,
);

function deliveryRows(finished: readonly FinishedExecution[], endpoints: readonly EndpointMatch[]): Values[] {
  const byWorkspace = new Map<string, EndpointMatch[]>();
  for (const e of endpoints) {
    let list = byWorkspace.get(e.workspace_id);
    if (!list) byWorkspace.set(e.workspace_id, (list = []));
    list.push(e);
  }
  const rows: Values[] = [];
  for (const execution of finished) {
    const event: NotificationEvent = eventFor(execution.status);
    for (const endpoint of byWorkspace.get(execution.workspace_id) ?? []) {
      if (!endpoint.events.split(',').includes(event)) continue;
      if (endpoint.workflow_id !== null && endpoint.workflow_id !== execution.workflow_id) continue;
      const now = execution.completed_at;
      rows.push({
        id: newId(now), workspace_id: execution.workspace_id, execution_id: execution.id, endpoint_id: endpoint.id,
        event, status: 'pending', next_attempt_at: now, created_at: now, available_at: now,
      });
    }
  }
  return rows;
}

const workspaceIds = (finished: readonly FinishedExecution[]) => JSON.stringify([...new Set(finished.map((f) => f.workspace_id))]);

/** Records the deliveries of `finished` inside the declared-statement transaction `tx`
 * (the engine's checkpoint batches). Returns how many it wrote. */
export async function recordDeliveries(tx: Runner, finished: readonly FinishedExecution[]): Promise<number> {
  if (finished.length === 0) return 0;
  const endpoints = await tx.all(enabledEndpoints, { ids: workspaceIds(finished) });
  if (endpoints.length === 0) return 0;
  const rows = deliveryRows(finished, endpoints);
  await tx.each(insertDeliveries, rows);
  return rows.length;
}

/** The same inside a Kysely transaction (stops). */
export async function recordDeliveriesIn(db: Executor, finished: readonly FinishedExecution[]): Promise<number> {
  if (finished.length === 0) return 0;
  const ids = [...new Set(finished.map((f) => f.workspace_id))];
  const endpoints = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'workspace_id', 'events', 'workflow_id'])
    .where('workspace_id', 'in', ids)
    .where('enabled', '=', 1)
    .execute();
  if (endpoints.length === 0) return 0;
  const rows = deliveryRows(finished, endpoints);
  for (let i = 0; i < rows.length; i += 500) {
    await db.insertInto('webhook_deliveries').values(rows.slice(i, i + 500) as never).execute();
  }
  return rows.length;
}
