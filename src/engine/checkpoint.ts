import type { Logger } from 'pino';
import { GroupCommit } from '../db/group-commit.js';
import type { Db } from '../db/open.js';
import type { ExecutionStepRow } from '../db/schema.js';
import type { Runner, Values } from '../db/statements.js';
import type { TerminalStatus } from '../executions/status.js';
import { type FinishedExecution, recordDeliveries } from '../notifications/record-deliveries.js';
import { executionsFinished, withParents } from '../executions/terminal-hooks.js';
import { finish, finishedAs, lockExecutions, progress, sleep, upsertSteps } from '../executions/transitions.js';

// Checkpoints: the engine's writes, group-committed (db/group-commit.ts). A running
// execution submits its checkpoint — the step rows it changed, whole, and its own
// move — and waits; so a step's result is committed before that execution's next
// step starts, while the database sees one transaction, and one statement per kind of
// write, per batch.
//
// Every checkpoint is fenced: the execution row moves only WHERE its lease token is
// the one this worker claimed with and it is still `running`. No match means the
// worker lost the lease or the execution was stopped: none of its step rows are
// written, and the runner gives the execution up quietly.

// `reused` is written only by a retry's start (a reused step is never run again).
export type StepRow = Omit<ExecutionStepRow, 'execution_id' | 'reused'>;

export type ExecutionMove =
  /** On to `currentStep`, keeping the lease. */
  | { kind: 'progress'; currentStep: number }
  /** Asleep until `until`: the lease is handed back (a durable timer). */
  | { kind: 'sleep'; currentStep: number; until: number }
  /** The end of the run. */
  | { kind: 'finish'; status: Exclude<TerminalStatus, 'stopped'>; currentStep: number; completedAt: number; error: { message: string; code: string; stepIndex: number } | null };

export interface Checkpoint {
  executionId: string;
  leaseToken: number;
  steps: readonly StepRow[];
  move: ExecutionMove;
}

/** `applied`: committed. `fenced`: the lease was lost or the execution stopped. */
export type CheckpointOutcome = 'applied' | 'fenced';

const MAX_BATCH = 512;

async function commitCheckpoints(db: Db, tx: Runner, checkpoints: readonly Checkpoint[]): Promise<CheckpointOutcome[]> {
  const finishing = checkpoints.filter((c) => c.move.kind === 'finish').map((c) => c.executionId);
  if (db.sharedAcrossProcesses) await tx.all(lockExecutions, { ids: await withParents(tx, checkpoints.map((c) => c.executionId), finishing) });
  const rows = { progress: [] as Values[], sleep: [] as Values[], finish: [] as Values[] };
  for (const { executionId: id, leaseToken: token, move } of checkpoints) {
    switch (move.kind) {
      case 'progress':
        rows.progress.push({ id, token, current_step: move.currentStep });
        break;
      case 'sleep':
        rows.sleep.push({ id, token, current_step: move.currentStep, available_at: move.until });
        break;
      case 'finish':
        rows.finish.push({
          id,
          token,
          status: finishedAs(move.status),
          current_step: move.currentStep,
          error: move.error?.message ?? null,
          error_code: move.error?.code ?? null,
          error_step_index: move.error?.stepIndex ?? null,
          completed_at: move.completedAt,
        });
        break;
      default: {
        const never: never = move;
        throw new Error(`unknown execution move ${JSON.stringify(never)}`);
      }
    }
  }
  const applied = new Set<string>();
  for (const [kind, statement] of [['progress', progress], ['sleep', sleep]] as const) {
    if (rows[kind].length === 0) continue;
    for (const row of await tx.each(statement, rows[kind])) applied.add(row.id);
  }
  if (rows.finish.length > 0) {
    // The outbox: the notifications of the executions that end here commit with them.
    const byId = new Map(rows.finish.map((r) => [r.id as string, r]));
    const finished: FinishedExecution[] = [];
    for (const row of await tx.each(finish, rows.finish)) {
      applied.add(row.id);
      if (!row.notify) continue; // no enabled endpoint in its workspace: nothing to record
      const values = byId.get(row.id)!;
      finished.push({ id: row.id, workspace_id: row.workspace_id, workflow_id: row.workflow_id, status: values.status as FinishedExecution['status'], completed_at: values.completed_at as number });
    }
    await recordDeliveries(tx, finished);
  }
  const steps = checkpoints.flatMap((c) => (applied.has(c.executionId) ? c.steps.map((s) => ({ ...s, execution_id: c.executionId })) : []));
  await tx.each(upsertSteps, steps);
  await executionsFinished(tx, finishing.filter((id) => applied.has(id)));
  return checkpoints.map((c) => (applied.has(c.executionId) ? 'applied' : 'fenced'));
}

export class Checkpointer {
  readonly #writer: GroupCommit<Checkpoint, CheckpointOutcome>;

  constructor(db: Db, logger: Logger) {
    this.#writer = new GroupCommit({ name: 'checkpoint', db, logger, maxBatch: MAX_BATCH, commit: (tx, items) => commitCheckpoints(db, tx, items) });
  }

  submit(checkpoint: Checkpoint): Promise<CheckpointOutcome> {
    return this.#writer.submit(checkpoint);
  }
}
