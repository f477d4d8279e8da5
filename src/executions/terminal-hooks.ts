import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { Executor } from '../db/schema.js';
import { type Runner, param, statement } from '../db/statements.js';

// What must happen in the very transaction that writes an execution's terminal status
// (the engine's finish, a stop, a rejected approval), for sub-workflows:
// - a child that ends wakes its parent, if the parent waits (not leased: a parent in
//   the middle of its own attempt re-checks its child after its wait is committed —
//   see engine/steps/workflow.ts — so no end is missed either way);
// - a parent that is stopped stops the children its workflow steps wait for.
// Lock order on PostgreSQL (every writer locks execution rows in id order): a writer
// that ends executions locks their parents in the same ordered statement as the
// executions themselves (`withParents`), since the wake writes the parent's row.

const triggersOf = statement<{ id: string; trigger: string | null }>('hooks:child-triggers', (_db, dialect) =>
  dialect === 'postgres'
    ? sql`select id, trigger from executions where id = any(${param('ids')}::text[]) and trigger_type = 'workflow'`
    : sql`select id, trigger from executions where id in (select value from json_each(${param('ids_json')})) and trigger_type = 'workflow'`,
);

const wakeParent = statement('hooks:wake-parent', () =>
  sql`update executions set available_at = 0 where id = ${param('id')} and status = 'running' and current_step = ${param('idx')} and lease_owner is null`,
);

interface ParentRef {
  id: string;
  idx: number;
}

function parentOf(trigger: string | null): ParentRef | null {
  if (trigger === null) return null;
  const parsed = JSON.parse(trigger) as { type?: string; execution_id?: string; step_index?: number };
  return parsed.type === 'workflow' && typeof parsed.execution_id === 'string' && typeof parsed.step_index === 'number' ? { id: parsed.execution_id, idx: parsed.step_index } : null;
}

/** The parents (sub-workflow) of the given executions, read without locks. */
export async function parentsOf(tx: Runner, ids: readonly string[]): Promise<ParentRef[]> {
  if (ids.length === 0) return [];
  const rows = await tx.all(triggersOf, { ids: [...ids], ids_json: JSON.stringify(ids) });
  return rows.map((r) => parentOf(r.trigger)).filter((p): p is ParentRef => p !== null);
}

/** `ids` with the parents of `ending` added, for one ordered lock statement. */
export async function withParents(tx: Runner, ids: readonly string[], ending: readonly string[]): Promise<string[]> {
  const parents = await parentsOf(tx, ending);
  return [...new Set([...ids, ...parents.map((p) => p.id)])];
}

/** The engine's side (declared statements): executions this checkpoint finished. */
export async function executionsFinished(tx: Runner, ids: readonly string[]): Promise<void> {
  for (const parent of await parentsOf(tx, ids)) await tx.run(wakeParent, { id: parent.id, idx: parent.idx });
}

/** The API's side (Kysely): executions this transaction ended (stopped, rejected). */
export async function executionsEnded(handle: Db, tx: Executor, ids: readonly string[], now: number): Promise<void> {
  if (ids.length === 0) return;
  const rows = await tx.selectFrom('executions').select(['id', 'trigger', 'status', 'workspace_id']).where('id', 'in', [...ids]).execute();
  for (const row of rows) {
    const parent = parentOf(row.trigger);
    if (parent) {
      await tx.updateTable('executions').set({ available_at: 0 }).where('id', '=', parent.id).where('status', '=', 'running').where('current_step', '=', parent.idx).where('lease_owner', 'is', null).execute();
    }
  }
  // Stopped parents stop the children their workflow steps wait for (recursively:
  // stopping a child ends it here again).
  const stopped = rows.filter((r) => r.status === 'stopped');
  if (stopped.length === 0) return;
  const steps = await tx
    .selectFrom('execution_steps')
    .select(['detail'])
    .where('execution_id', 'in', stopped.map((r) => r.id))
    .where('type', '=', 'workflow')
    .where('detail', 'is not', null)
    .execute();
  const children = new Set<string>();
  for (const step of steps) {
    const detail = JSON.parse(step.detail!) as { children?: unknown };
    if (Array.isArray(detail.children)) for (const child of detail.children) if (typeof child === 'string') children.add(child);
  }
  if (children.size === 0) return;
  const { stopRunningExecutions } = await import('./transitions.js');
  const byWorkspace = new Map<string, string[]>();
  const owners = await tx.selectFrom('executions').select(['id', 'workspace_id']).where('id', 'in', [...children]).where('status', '=', 'running').execute();
  for (const o of owners) byWorkspace.set(o.workspace_id, [...(byWorkspace.get(o.workspace_id) ?? []), o.id]);
  for (const [workspaceId, childIds] of byWorkspace) await stopRunningExecutions(handle, tx, { workspaceId, ids: childIds, now });
}
