import { sql } from 'kysely';
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import type { Executor, WorkspaceRow } from '../db/schema.js';

export interface WorkspaceView {
  workspace_id: string;
  name: string;
  /** null: unlimited. */
  credits: number | null;
  max_concurrent_executions: number | null;
  created_at: string | null;
}

export function toWorkspaceView(row: WorkspaceRow): WorkspaceView {
  return {
    workspace_id: row.id,
    name: row.name,
    credits: row.credits_unlimited ? null : row.credits,
    max_concurrent_executions: row.max_concurrent_executions,
    created_at: formatTimestamp(row.created_at),
  };
}

export async function insertWorkspace(
  db: Executor,
  input: { name: string; credits: number; now: number },
): Promise<WorkspaceRow> {
  const row = {
    id: newId(input.now),
    name: input.name,
    credits: input.credits,
    credits_unlimited: 0,
    max_concurrent_executions: null,
    created_at: input.now,
  };
  await db.insertInto('workspaces').values(row).execute();
  return row;
}

export async function findWorkspace(db: Executor, id: string): Promise<WorkspaceRow | undefined> {
  return db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Adds credits atomically; returns the new balance or undefined for an unknown workspace. */
export async function addCredits(db: Executor, id: string, amount: number): Promise<number | undefined> {
  const row = await db
    .updateTable('workspaces')
    .set({ credits: sql`credits + ${amount}` })
    .where('id', '=', id)
    .returning('credits')
    .executeTakeFirst();
  return row?.credits;
}

export async function setMaxConcurrent(db: Executor, id: string, max: number | null): Promise<boolean> {
  const result = await db
    .updateTable('workspaces')
    .set({ max_concurrent_executions: max })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Sets the balance, or (null) makes the workspace's credits unlimited; false for an unknown workspace. */
export async function setCredits(db: Executor, id: string, credits: number | null): Promise<boolean> {
  const result = await db
    .updateTable('workspaces')
    .set(credits === null ? { credits_unlimited: 1 } : { credits, credits_unlimited: 0 })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function listWorkspaces(db: Executor): Promise<WorkspaceRow[]> {
  return db.selectFrom('workspaces').selectAll().orderBy('id', 'desc').execute();
}
