import { type RawBuilder, sql } from 'kysely';
import type { Executor } from './schema.js';

// Which due executions a claim takes — fairly. Every workspace that has running
// executions gets an equal share of the batch (its oldest due ones), and what the
// shares leave unused goes to the oldest due executions overall. So a workspace that
// started 100,000 executions cannot starve another workspace: the other's next
// execution is taken by the very next claim. Call inside the claim's transaction.
//
// PostgreSQL does it in one statement (a LATERAL probe per active workspace, rows
// locked with FOR UPDATE SKIP LOCKED so concurrent claimers take different rows);
// SQLite has no LATERAL but runs in-process, so it probes each workspace in turn.

export interface DueQuery {
  limit: number;
  now: RawBuilder<number>;
}

function share(limit: number, workspaces: number): number {
  return Math.max(1, Math.ceil(limit / Math.max(1, workspaces)));
}

async function topUp(trx: Executor, q: DueQuery, chosen: string[], skipLocked: boolean): Promise<string[]> {
  const rest = q.limit - chosen.length;
  if (rest <= 0) return chosen;
  const more = await trx
    .selectFrom('executions')
    .select('id')
    .where('status', '=', 'running')
    .where('available_at', '<=', q.now)
    .$if(chosen.length > 0, (b) => b.where('id', 'not in', chosen))
    .orderBy('available_at')
    .limit(rest)
    .$if(skipLocked, (b) => b.forUpdate().skipLocked())
    .execute();
  return [...chosen, ...more.map((r) => r.id)];
}

export async function sqliteDueIds(trx: Executor, q: DueQuery): Promise<string[]> {
  const active = await trx.selectFrom('workspaces').select('id').where('running_executions', '>', 0).execute();
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
  return topUp(trx, q, chosen, false);
}

export async function postgresDueIds(trx: Executor, q: DueQuery): Promise<string[]> {
  const { count } = await trx
    .selectFrom('workspaces')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('running_executions', '>', 0)
    .executeTakeFirstOrThrow();
  const each = share(q.limit, Number(count));
  const { rows } = await sql<{ id: string }>`
    select d.id from workspaces w
    cross join lateral (
      select e.id from executions e
      where e.workspace_id = w.id and e.status = 'running' and e.available_at <= ${q.now}
      order by e.available_at
      limit ${each}
      for update of e skip locked
    ) d
    where w.running_executions > 0
    limit ${q.limit}`.execute(trx);
  return topUp(trx, q, rows.map((r) => r.id), true);
}
