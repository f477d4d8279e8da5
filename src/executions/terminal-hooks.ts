import type { Db } from '../db/open.js';
import type { Executor } from '../db/schema.js';

// What else must happen in the very transaction that writes an execution's terminal
// status (the engine's finish, a stop, a rejected approval): hooks registered by the
// domains that care, each a small, separate call at the places that write terminal
// statuses. The workflow step registers one that wakes a parent waiting for the child.

export type TerminalHook = (handle: Db, tx: Executor, executionIds: readonly string[], now: number) => Promise<void>;

const hooks: TerminalHook[] = [];

export function onExecutionsEnded(hook: TerminalHook): void {
  if (!hooks.includes(hook)) hooks.push(hook);
}

/** Runs every hook for executions that this transaction just ended. */
export async function executionsEnded(handle: Db, tx: Executor, executionIds: readonly string[], now: number): Promise<void> {
  if (executionIds.length === 0) return;
  for (const hook of hooks) await hook(handle, tx, executionIds, now);
}
