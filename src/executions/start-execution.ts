import { CompiledQuery, sql } from 'kysely';
import type { Db } from '../db/open.js';
import { param, runPrepared } from '../db/prepared.js';
import type { AuthContext } from '../api-keys/key-verifier.js';
import type { Executor } from '../db/schema.js';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import {
  type IdempotentRequest,
  type StoredResponse,
  findReplay,
  lockKey,
  saveResponse,
} from '../idempotency/idempotency.js';
import { newId } from '../lib/ids.js';
import { formatTimestamp } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';

// Starting an execution is one transaction (docs/api.md#credits): find the workflow in the
// caller's workspace, replay or reject a used idempotency key, take one credit and
// one concurrency slot with a single guarded UPDATE, create the execution (pinned to
// the workflow's current immutable version — its snapshot) and its step rows, and
// record the idempotency key. Either all of it commits or none of it does.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals'>;

/** Debits one credit and takes one running slot, or says why it cannot. */
async function reserve(handle: Db, db: Executor, workspaceId: string): Promise<void> {
  // The guarded UPDATE is the decision; the re-read only explains a refusal. On
  // PostgreSQL a slot may be freed between the two, so a refusal whose re-read shows
  // room is decided again (a few times) rather than misreported as missing credits.
  let max: number | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const debited = await runPrepared(
      db,
      handle.kind,
      'run-async:reserve',
      () =>
        handle.db
          .updateTable('workspaces')
          .set({ credits: sql`credits - 1`, running_executions: sql`running_executions + 1` })
          .where('id', '=', param<string>('workspaceId'))
          .where('credits', '>=', 1)
          .where((eb) =>
            eb.or([eb('max_concurrent_executions', 'is', null), eb('running_executions', '<', eb.ref('max_concurrent_executions'))]),
          ),
      { workspaceId },
    );
    if (debited.numAffectedRows) return;
    const ws = await db
      .selectFrom('workspaces')
      .select(['credits', 'max_concurrent_executions', 'running_executions'])
      .where('id', '=', workspaceId)
      .executeTakeFirstOrThrow();
    max = ws.max_concurrent_executions;
    // docs/api.md#errors order: the concurrency limit is reported before missing credits.
    if (max !== null && ws.running_executions >= max) throw concurrencyLimit(max);
    if (ws.credits < 1) throw new ApiError('insufficient_credits', 'Insufficient credits. Add credits to the workspace and retry.');
  }
  // Refused every time although a re-read showed room: slots are churning at the cap.
  throw concurrencyLimit(max ?? 0);
}

const concurrencyLimit = (max: number) =>
  new ApiError(
    'concurrent_execution_limit',
    `Concurrent execution limit reached. This workspace allows ${max} concurrent executions.`,
    { 'Retry-After': '5' },
  );

export interface StartRequest {
  auth: AuthContext;
  workflowId: string;
  input: unknown;
  idempotency: IdempotentRequest | null;
}

/** One run-async, inside an open transaction (its idempotency lock already held).
 * Every refusal (404, replay, 422, 429, 402) is decided before the first write. */
async function startInTransaction(handle: Db, trx: Executor, now: number, args: StartRequest): Promise<StoredResponse> {
  const { workspaceId } = args.auth;
  const found = await runPrepared<{ id: string; name: string; version_id: string }>(
    trx,
    handle.kind,
    'run-async:workflow',
    () =>
      handle.db
        .selectFrom('workflows')
        .select(['id', 'name', 'version_id'])
        .where('workspace_id', '=', param<string>('workspaceId'))
        .where('id', '=', param<string>('workflowId')),
    { workspaceId, workflowId: args.workflowId },
  );
  const workflow = found.rows[0];
  if (!workflow) throw notFound('Workflow');
  if (args.idempotency) {
    const replay = await findReplay(trx, args.idempotency, now);
    if (replay) return replay;
  }
  await reserve(handle, trx, workspaceId);

  const id = newId(now);
  const steps = await versionSteps(trx, workflow.version_id);
  await runPrepared(
    trx,
    handle.kind,
    'run-async:execution',
    () =>
      handle.db.insertInto('executions').values({
        id: param('id'),
        workspace_id: param('workspaceId'),
        workflow_id: param('workflowId'),
        version_id: param('versionId'),
        workflow_name: param('workflowName'),
        status: 'running',
        input: param('input'),
        created_at: param('now'),
        available_at: param('now'),
      }),
    {
      id,
      workspaceId,
      workflowId: workflow.id,
      versionId: workflow.version_id,
      workflowName: workflow.name,
      input: JSON.stringify(args.input ?? null),
      now,
    },
  );
  // One multi-row INSERT per step count; the statement is prepared once per count.
  const values: Record<string, unknown> = { id };
  steps.forEach((step, idx) => {
    values[`name${idx}`] = step.name ?? null;
    values[`type${idx}`] = step.type;
  });
  await runPrepared(
    trx,
    handle.kind,
    `run-async:steps:${steps.length}`,
    () =>
      handle.db.insertInto('execution_steps').values(
        steps.map((_, idx) => ({ execution_id: param('id'), idx, name: param(`name${idx}`), type: param(`type${idx}`), status: 'pending' })),
      ),
    values,
  );
  const body = { execution_id: id, workflow_id: workflow.id, status: 'running', created_at: formatTimestamp(now) };
  const response = { status: 202, bodyText: JSON.stringify(body), replayed: false };
  if (args.idempotency) await saveResponse(trx, args.idempotency, response, now);
  return response;
}

// Group commit of run-async. Requests that arrive while a transaction is committing
// go together into the next one, each inside its own savepoint: one request's refusal
// or failure rolls back only its own writes, and every 202 is sent only after the
// transaction that holds its execution, its debit and its key has committed. On
// SQLite this turns N commits into one; on PostgreSQL, N round trips of BEGIN/COMMIT
// (and N WAL flushes) into one.

const MAX_BATCH = 256;
const SAVEPOINT = CompiledQuery.raw('savepoint run_async');
const RELEASE = CompiledQuery.raw('release savepoint run_async');
const ROLLBACK_TO = CompiledQuery.raw('rollback to savepoint run_async');

interface Pending {
  request: StartRequest;
  retried: boolean;
  resolve(response: StoredResponse): void;
  reject(error: unknown): void;
}

type Outcome = { ok: StoredResponse } | { error: unknown };

class StartQueue {
  #queue: Pending[] = [];
  #flushing = false;

  constructor(private readonly deps: Deps) {}

  submit(request: StartRequest): Promise<StoredResponse> {
    return new Promise((resolve, reject) => this.#enqueue({ request, retried: false, resolve, reject }));
  }

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    if (!this.#flushing) {
      this.#flushing = true;
      setImmediate(() => void this.#flush());
    }
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      let outcomes: Outcome[];
      try {
        outcomes = await this.#commit(batch);
      } catch (error) {
        for (const p of batch) p.reject(error);
        continue;
      }
      let started = false;
      batch.forEach((p, i) => {
        const outcome = outcomes[i]!;
        if ('ok' in outcome) {
          started ||= !outcome.ok.replayed;
          p.resolve(outcome.ok);
        } else if (this.deps.db.isUniqueViolation(outcome.error) && !p.retried) {
          // Lost a race on its idempotency key to another process: the next batch
          // finds the winner's record and replays it.
          this.#enqueue({ ...p, retried: true });
        } else {
          p.reject(outcome.error);
        }
      });
      if (started) this.deps.signals.workAvailable();
    }
    this.#flushing = false;
  }

  #commit(batch: Pending[]): Promise<Outcome[]> {
    const { db } = this.deps;
    return db.db.transaction().execute(async (trx) => {
      // Idempotency locks first, in key order, so two batches never wait on each
      // other's keys in opposite orders (PostgreSQL; a no-op on SQLite).
      const keys = new Map<string, IdempotentRequest>();
      for (const p of batch) {
        const key = p.request.idempotency;
        if (key) keys.set(`${key.workspaceId}\n${key.key}`, key);
      }
      const ordered = [...keys.keys()].sort().map((k) => keys.get(k)!);
      for (const key of ordered) await lockKey(db, trx, key);
      const now = this.deps.clock.now();
      const outcomes: Outcome[] = [];
      for (const p of batch) {
        await trx.executeQuery(SAVEPOINT);
        try {
          outcomes.push({ ok: await startInTransaction(db, trx, now, p.request) });
          await trx.executeQuery(RELEASE);
        } catch (error) {
          await trx.executeQuery(ROLLBACK_TO);
          await trx.executeQuery(RELEASE);
          outcomes.push({ error });
        }
      }
      return outcomes;
    });
  }
}

const queues = new WeakMap<object, StartQueue>();

export function startExecution(deps: Deps, request: StartRequest): Promise<StoredResponse> {
  let queue = queues.get(deps.db);
  if (!queue) queues.set(deps.db, (queue = new StartQueue(deps)));
  return queue.submit(request);
}
