import { GroupCommit } from '../db/group-commit.js';
import type { Runner, Values } from '../db/statements.js';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import { type IdempotentRequest, RETENTION_MS, type StoredResponse, reusedKey } from '../idempotency/idempotency.js';
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import { recordMetric } from '../metrics/engine-metrics.js';
import { type Trigger, triggerColumns } from './trigger.js';
import { debit, insertExecutions, lockedWorkspace, runningCount, saveResponses, storedResponse, workflowForStart } from './start-statements.js';

// Starting an execution is one transaction: find the workflow in the caller's
// workspace, replay or reject a used idempotency key, take one credit and — where the
// workspace has a cap — one concurrency slot, create the execution (pinned to the
// workflow's current immutable version: its snapshot) and record the idempotency
// key. Either all of it commits or none of it does.
//
// Starts are group-committed (db/group-commit.ts): the requests that arrive while a
// batch commits form the next batch, decided one by one in arrival order and written
// by a fixed handful of statements — one debit per workspace, one INSERT for all the
// executions, one for all the keys. Every refusal (404, replay, 422, 429, 402) is
// decided before the batch writes anything, so a refused request leaves no trace.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals' | 'logger'>;

export interface StartRequest {
  workspaceId: string;
  workflowId: string;
  input: unknown;
  /** How it is started: recorded on the execution. */
  trigger: Trigger;
  idempotency: IdempotentRequest | null;
  /** Run this version of the workflow instead of its current one (a retry runs the
   * original's snapshot). It must belong to the workflow. */
  versionId?: string;
  /** Sub-workflow nesting depth (0 for a top-level execution). */
  depth?: number;
  /** Decided inside the start's transaction, once credits and the cap allow the start:
   * false refuses it with `refusal()` and nothing is written (a schedule claims its
   * tick here with a guarded update, so the claim and the execution commit together). */
  guard?: { claim(tx: Runner, now: number): Promise<boolean>; refusal(): ApiError };
  /** Writes what belongs to the new execution, in the same transaction (a retry's
   * reused steps). */
  afterInsert?(tx: Runner, executionId: string, now: number): Promise<void>;
}

type Outcome = { ok: StoredResponse } | { refused: ApiError } | { again: true };

const MAX_BATCH = 256;

const concurrencyLimit = (max: number) =>
  new ApiError('concurrent_execution_limit', `Concurrent execution limit reached. This workspace allows ${max} concurrent executions.`, {
    'Retry-After': '5',
  });
const noCredits = () => new ApiError('insufficient_credits', 'Insufficient credits. Add credits to the workspace and retry.');

interface Candidate {
  index: number;
  request: StartRequest;
  workflow: { id: string; name: string; version_id: string };
}

async function commitStarts(tx: Runner, deps: Deps, requests: readonly StartRequest[]): Promise<Outcome[]> {
  const { db, clock } = deps;
  const keyOf = (k: IdempotentRequest) => `idempotency\n${k.workspaceId}\n${k.key}`;
  await db.lockKeys(tx, [...new Set(requests.flatMap((r) => (r.idempotency ? [keyOf(r.idempotency)] : [])))]);
  const now = clock.now();
  const outcomes: Outcome[] = new Array(requests.length);
  const workflows = new Map<string, Candidate['workflow'] | undefined>();
  const keysInBatch = new Set<string>();
  const byWorkspace = new Map<string, Candidate[]>();

  // Reads and refusals that do not depend on the others: 404, replay, 422.
  for (let index = 0; index < requests.length; index++) {
    const request = requests[index]!;
    const workspaceId = request.workspaceId;
    const workflowKey = `${workspaceId}\n${request.workflowId}`;
    if (!workflows.has(workflowKey)) {
      workflows.set(workflowKey, (await tx.all(workflowForStart, { workspaceId, workflowId: request.workflowId }))[0]);
    }
    const workflow = workflows.get(workflowKey);
    if (!workflow) {
      outcomes[index] = { refused: notFound('Workflow') };
      continue;
    }
    const key = request.idempotency;
    if (key) {
      // A second use of a key inside one batch waits for the next batch, which
      // replays (or refuses) it against what the first one committed.
      if (keysInBatch.has(keyOf(key))) {
        outcomes[index] = { again: true };
        continue;
      }
      keysInBatch.add(keyOf(key));
      const stored = (await tx.all(storedResponse, { workspaceId, key: key.key }))[0];
      if (stored && stored.expires_at > now) {
        outcomes[index] =
          stored.fingerprint === key.fingerprint ? { ok: { status: stored.status_code, bodyText: stored.body, replayed: true } } : { refused: reusedKey() };
        continue;
      }
    }
    let list = byWorkspace.get(workspaceId);
    if (!list) byWorkspace.set(workspaceId, (list = []));
    list.push({ index, request, workflow });
  }

  // Credits and the concurrency cap, per workspace, in arrival order: the k-th start
  // is refused with 429 if the cap would be passed (reported first), else 402 if the
  // credits would.
  const executions: Values[] = [];
  const keys: Values[] = [];
  const afterInsert: Array<() => Promise<void>> = [];
  for (const [workspaceId, candidates] of byWorkspace) {
    const ws = (await tx.all(lockedWorkspace, { workspaceId }))[0]!;
    const max = ws.max_concurrent_executions;
    const running = max === null ? 0 : Number((await tx.all(runningCount, { workspaceId }))[0]!.n);
    let accepted = 0;
    for (const c of candidates) {
      if (max !== null && running + accepted >= max) {
        outcomes[c.index] = { refused: concurrencyLimit(max) };
        continue;
      }
      if (!ws.credits_unlimited && accepted >= ws.credits) {
        outcomes[c.index] = { refused: noCredits() };
        continue;
      }
      const guard = c.request.guard;
      if (guard && !(await guard.claim(tx, now))) {
        outcomes[c.index] = { refused: guard.refusal() };
        continue;
      }
      accepted++;
      const id = newId(now);
      const trigger = triggerColumns(c.request.trigger);
      executions.push({
        id,
        workspace_id: workspaceId,
        workflow_id: c.workflow.id,
        version_id: c.request.versionId ?? c.workflow.version_id,
        workflow_name: c.workflow.name,
        input: JSON.stringify(c.request.input ?? null),
        created_at: now,
        ...trigger,
        depth: c.request.depth ?? 0,
      });
      const hook = c.request.afterInsert;
      if (hook) afterInsert.push(() => hook(tx, id, now));
      const accepted202 = { execution_id: id, workflow_id: c.workflow.id, status: 'running', created_at: formatTimestamp(now) };
      const bodyText = JSON.stringify(trigger.retry_of === null ? accepted202 : { ...accepted202, retry_of: trigger.retry_of });
      const response = { status: 202, bodyText, replayed: false };
      const key = c.request.idempotency;
      if (key) {
        keys.push({ workspace_id: workspaceId, key: key.key, fingerprint: key.fingerprint, status_code: 202, body: bodyText, created_at: now, expires_at: now + RETENTION_MS });
      }
      outcomes[c.index] = { ok: response };
    }
    // Unlimited credits: nothing to debit.
    if (accepted > 0 && !ws.credits_unlimited) await tx.run(debit, { workspaceId, count: accepted });
  }
  await tx.each(insertExecutions, executions);
  for (const hook of afterInsert) await hook();
  if (keys.length > 0 && (await tx.each(saveResponses, keys)).length !== keys.length) {
    // A live record appeared for one of the keys although its lock was held: another
    // writer that does not lock (an older process). Give the batch up; the item-by-item
    // retry then replays that key's record.
    throw new KeyRaceLost();
  }
  return outcomes;
}

class KeyRaceLost extends Error {}

/** Counts and logs the executions a committed batch created (replays created none). */
function logStarts(deps: Deps, requests: readonly StartRequest[], outcomes: readonly Outcome[]): void {
  const info = deps.logger.isLevelEnabled('info');
  for (let i = 0; i < outcomes.length; i++) {
    const outcome = outcomes[i]!;
    if (!('ok' in outcome) || outcome.ok.replayed) continue;
    const request = requests[i]!;
    recordMetric.started(request.trigger.type);
    if (info) {
      const executionId = (JSON.parse(outcome.ok.bodyText) as { execution_id: string }).execution_id;
      deps.logger.info({ executionId, workflowId: request.workflowId, workspaceId: request.workspaceId, trigger: request.trigger.type }, 'execution started');
    }
  }
}

const writers = new WeakMap<object, GroupCommit<StartRequest, Outcome>>();

function writerFor(deps: Deps): GroupCommit<StartRequest, Outcome> {
  let writer = writers.get(deps.db);
  if (!writer) {
    writer = new GroupCommit<StartRequest, Outcome>({
      name: 'start',
      db: deps.db,
      logger: deps.logger,
      maxBatch: MAX_BATCH,
      commit: (tx, requests) => commitStarts(tx, deps, requests),
      afterCommit: (requests, outcomes) => {
        if (outcomes.some((o) => 'ok' in o && !o.ok.replayed)) deps.signals.workAvailable();
        logStarts(deps, requests, outcomes);
      },
    });
    writers.set(deps.db, writer);
  }
  return writer;
}

export async function startExecution(deps: Deps, request: StartRequest): Promise<StoredResponse> {
  for (let round = 0; ; round++) {
    let outcome: Outcome;
    try {
      outcome = await writerFor(deps).submit(request);
    } catch (error) {
      // Lost a race on its key (see KeyRaceLost, or a unique violation): the next
      // round finds the winner's record and replays it.
      if (round < 3 && (error instanceof KeyRaceLost || deps.db.isUniqueViolation(error))) continue;
      throw error;
    }
    if ('ok' in outcome) return outcome.ok;
    if ('refused' in outcome) throw outcome.refused;
  }
}
