import { sql } from 'kysely';
import { databaseNow, param, type Runner, statement } from './statements.js';

// Which due executions a claim takes — fairly. Every workspace that has running
// executions gets an equal share of the batch (its oldest due ones), and what the
// shares leave unused is filled with any other due executions. So a workspace that
// started 100,000 executions cannot starve another workspace: the other's next
// execution is taken by the very next claim. Call inside the claim's transaction.
//
// The workspaces with running executions are found by a loose index scan of the
// partial index `executions_due_by_workspace` (one probe per workspace, however many
// executions each has), so neither database counts anything on an idle poll.
// PostgreSQL takes every share in one statement (a LATERAL probe per workspace, rows
// locked with FOR UPDATE SKIP LOCKED so concurrent claimers take different rows);
// SQLite runs in-process, so it probes each workspace in turn.

/** `active(id)`: the workspaces with at least one running execution, by a loose index
 * scan (a CTE to put in front of a query that reads `active`). */
export const ACTIVE_WORKSPACES = sql`with recursive active(id) as (
    select min(workspace_id) from executions where status = 'running'
    union all
    select (select min(e.workspace_id) from executions e where e.status = 'running' and e.workspace_id > active.id)
    from active where active.id is not null
  )`;

const activeWorkspaces = statement<{ id: string }>('due:workspaces', () => sql`${ACTIVE_WORKSPACES} select id from active where id is not null`);

/** One workspace's oldest due executions (SQLite). */
const dueInWorkspace = statement<{ id: string }>('due:workspace', (_db, dialect) =>
  sql`select id from executions where workspace_id = ${param('workspaceId')} and status = 'running' and available_at <= ${databaseNow(dialect)}
      order by available_at limit ${param<number>('limit')}`,
);

/** Every workspace's share in one statement, rows locked, locked ones skipped (PostgreSQL). */
const dueShares = statement<{ id: string }>('due:shares', (_db, dialect) =>
  sql`select d.id from unnest(${param('workspaces')}::text[]) as w(id)
      cross join lateral (
        select e.id from executions e
        where e.workspace_id = w.id and e.status = 'running' and e.available_at <= ${databaseNow(dialect)}
        order by e.available_at
        limit ${param<number>('share')}
        for update of e skip locked
      ) d
      limit ${param<number>('limit')}`,
);

/** Any other due executions, to fill what the shares left (several workspaces only). */
const dueAny = statement<{ id: string }>('due:any', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`select id from executions where status = 'running' and available_at <= ${databaseNow(dialect)} and id <> all(${param('chosen')}::text[])
        limit ${param<number>('limit')} for update skip locked`
    : sql`select id from executions where status = 'running' and available_at <= ${databaseNow(dialect)}
        and id not in (select value from json_each(${param('chosen')})) limit ${param<number>('limit')}`,
);

function share(limit: number, workspaces: number): number {
  return Math.max(1, Math.ceil(limit / Math.max(1, workspaces)));
}

export async function sqliteDueIds(tx: Runner, limit: number): Promise<string[]> {
  const active = await tx.all(activeWorkspaces);
  const each = share(limit, active.length);
  const chosen: string[] = [];
  for (const { id } of active) {
    if (chosen.length >= limit) break;
    for (const row of await tx.all(dueInWorkspace, { workspaceId: id, limit: Math.min(each, limit - chosen.length) })) chosen.push(row.id);
  }
  // One workspace (the common case) already had the whole batch to itself.
  if (active.length <= 1 || chosen.length >= limit) return chosen;
  const more = await tx.all(dueAny, { chosen: JSON.stringify(chosen), limit: limit - chosen.length });
  return [...chosen, ...more.map((r) => r.id)];
}

export async function postgresDueIds(tx: Runner, limit: number): Promise<string[]> {
  const active = (await tx.all(activeWorkspaces)).map((r) => r.id);
  if (active.length === 0) return [];
  const chosen = (await tx.all(dueShares, { workspaces: active, share: share(limit, active.length), limit })).map((r) => r.id);
  if (active.length <= 1 || chosen.length >= limit) return chosen;
  const more = await tx.all(dueAny, { chosen, limit: limit - chosen.length });
  return [...chosen, ...more.map((r) => r.id)];
}
