import { type RawBuilder, sql } from 'kysely';
import type { Executor } from './schema.js';

// Which due executions a claim takes — fairly. Every workspace that has running
// executions gets an equal share of the batch (its oldest due ones), and what the
// shares leave unused is filled with any other due executions. So a workspace that
// started 100,000 executions cannot starve another workspace: the other's next
// execution is taken by the very next claim. Call inside the claim's transaction.
//
// The workspaces with running executions are found by a loose index scan of the
// partial index `executions_due_by_workspace` (one probe per workspace, however many
// executions each has), so neither database counts anything on an idle poll.
// PostgreSQL then takes every share in one statement (a LATERAL probe per workspace,
// rows locked with FOR UPDATE SKIP LOCKED so concurrent claimers take different
// rows); SQLite runs in-process, so it probes each workspace in turn.

export interface DueQuery {
  limit: number;
  now: RawBuilder<number>;
}

function share(limit: number, workspaces: number): number {
  return Math.max(1, Math.ceil(limit / Math.max(1, workspaces)));
}

/** Workspaces with at least one running execution (the loose index scan). */
const activeWorkspaces = sql<{ id: string }>`
  with recursive active(id) as (
    select min(workspace_id) from executions where status = 'running'
    union all
    select (select min(e.workspace_id) from executions e where e.status = 'running' and e.workspace_id > active.id)
    from active where active.id is not null
  )
  select id from active where id is not null`;

async function topUp(trx: Executor, q: DueQuery, chosen: string[], skipLocked: boolean): Promise<string[]> {
  const rest = q.limit - chosen.length;
  if (rest <= 0) return chosen;
  const more = await trx
    .selectFrom('executions')
    .select('id')
    .where('status', '=', 'running')
    .where('available_at', '<=', q.now)
    .$if(chosen.length > 0, (b) => b.where('id', 'not in', chosen))
    .limit(rest)
    .$if(skipLocked, (b) => b.forUpdate().skipLocked())
    .execute();
  return [...chosen, ...more.map((r) => r.id)];
}

export async function sqliteDueIds(trx: Executor, q: DueQuery): Promise<string[]> {
  const active = (await activeWorkspaces.execute(trx)).rows;
  const each = share(q.limit, active.length);
  const chosen: string[] = [];
  for (const { id } of active) {
    if (chosen.length >= q.limit) break;
    const rows = await trx
      .selectFrom('executions')
      .select('id')
      .where('workspace_id', '=', id)
      .where('status', '=', 'running')
      .where('available_at', '<=', q.now)
      .orderBy('available_at')
      .limit(Math.min(each, q.limit - chosen.length))
      .execute();
    for (const row of rows) chosen.push(row.id);
  }
  // One workspace (the common case) already had the whole batch to itself.
  return active.length <= 1 ? chosen : topUp(trx, q, chosen, false);
}

export async function postgresDueIds(trx: Executor, q: DueQuery): Promise<string[]> {
  const active = (await activeWorkspaces.execute(trx)).rows.map((r) => r.id);
  if (active.length === 0) return [];
  const each = share(q.limit, active.length);
  const { rows } = await sql<{ id: string }>`
    select d.id from unnest(${active}::text[]) as w(id)
    cross join lateral (
      select e.id from executions e
      where e.workspace_id = w.id and e.status = 'running' and e.available_at <= ${q.now}
      order by e.available_at
      limit ${each}
      for update of e skip locked
    ) d
    limit ${q.limit}`.execute(trx);
  const chosen = rows.map((r) => r.id);
  return active.length <= 1 ? chosen : topUp(trx, q, chosen, true);
}
