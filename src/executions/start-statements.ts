import { sql } from 'kysely';
import { param, statement } from '../db/statements.js';

// The statements of the start path (run-async and every other trigger): each batch
// of starts runs a fixed handful of them, whatever its size.

export const workflowForStart = statement<{ id: string; name: string; version_id: string }>('start:workflow', (db) =>
  db.selectFrom('workflows').select(['id', 'name', 'version_id']).where('workspace_id', '=', param('workspaceId')).where('id', '=', param('workflowId')),
);

export const storedResponse = statement<{ fingerprint: string; status_code: number; body: string; expires_at: number }>('start:replay', (db) =>
  db
    .selectFrom('idempotency_keys')
    .select(['fingerprint', 'status_code', 'body', 'expires_at'])
    .where('workspace_id', '=', param('workspaceId'))
    .where('key', '=', param('key')),
);

/** The workspace's balance and cap, its row locked until commit (PostgreSQL; SQLite
 * has one writer at a time), so the decisions of concurrent batches are serial. */
export const lockedWorkspace = statement<{ credits: number; credits_unlimited: number; max_concurrent_executions: number | null }>('start:workspace', (db, dialect) =>
  db
    .selectFrom('workspaces')
    .select(['credits', 'credits_unlimited', 'max_concurrent_executions'])
    .where('id', '=', param('workspaceId'))
    .$if(dialect === 'postgres', (q) => q.forUpdate()),
);

export const runningCount = statement<{ n: number }>('start:running', (db) =>
  db
    .selectFrom('executions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workspace_id', '=', param('workspaceId'))
    .where('status', '=', 'running'),
);

export const debit = statement('start:debit', (db) =>
  db
    .updateTable('workspaces')
    .set({ credits: sql`credits - ${param<number>('count')}` })
    .where('id', '=', param('workspaceId')),
);

/** Inserts every execution of a batch (Runner.each). */
export const insertExecutions = statement('start:executions', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`insert into executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, available_at, trigger_type, trigger, retry_of, depth)
        select r.id, r.workspace_id, r.workflow_id, r.version_id, r.workflow_name, 'running', r.input, r.created_at, r.created_at, r.trigger_type, r.trigger, r.retry_of, r.depth
        from json_to_recordset(${param('rows')}::json) as r(id text, workspace_id text, workflow_id text, version_id text, workflow_name text, input text, created_at bigint,
          trigger_type text, trigger text, retry_of text, depth int)`
    : sql`insert into executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, available_at, trigger_type, trigger, retry_of, depth)
        values (${param('id')}, ${param('workspace_id')}, ${param('workflow_id')}, ${param('version_id')}, ${param('workflow_name')}, 'running',
                ${param('input')}, ${param('created_at')}, ${param('created_at')}, ${param('trigger_type')}, ${param('trigger')}, ${param('retry_of')}, ${param('depth')})`,
);

/** Records the responses of a batch's idempotency keys. An expired record of the same
 * key is replaced (purging is periodic); a live one is left alone and reported by the
 * row count (a race lost to another process — the caller replays it). */
export const saveResponses = statement('start:keys', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`insert into idempotency_keys (workspace_id, key, fingerprint, status_code, body, created_at, expires_at)
        select r.workspace_id, r.key, r.fingerprint, r.status_code, r.body, r.created_at, r.expires_at
        from json_to_recordset(${param('rows')}::json) as r(workspace_id text, key text, fingerprint text, status_code int, body text, created_at bigint, expires_at bigint)
        on conflict (workspace_id, key) do update set fingerprint = excluded.fingerprint, status_code = excluded.status_code, body = excluded.body,
          created_at = excluded.created_at, expires_at = excluded.expires_at
        where idempotency_keys.expires_at <= excluded.created_at
        returning key`
    : sql`insert into idempotency_keys (workspace_id, key, fingerprint, status_code, body, created_at, expires_at)
        values (${param('workspace_id')}, ${param('key')}, ${param('fingerprint')}, ${param('status_code')}, ${param('body')}, ${param('created_at')}, ${param('expires_at')})
        on conflict (workspace_id, key) do update set fingerprint = excluded.fingerprint, status_code = excluded.status_code, body = excluded.body,
          created_at = excluded.created_at, expires_at = excluded.expires_at
        where idempotency_keys.expires_at <= excluded.created_at
        returning key`,
);
