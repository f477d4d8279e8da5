import { recordMetric } from '../metrics/engine-metrics.js';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/open.js';
import type { WebhookDeliveryTable } from '../db/schema.js';
import type { Selectable } from 'kysely';
import { toExecutionView } from '../executions/store.js';
import { type Clock, formatTimestamp } from '../lib/time.js';
import { nextDelay, parseRetryAfter } from './retry-schedule.js';
import type { AttemptOutcome } from './send.js';
import { signatureHeader } from './signature.js';

// Sends the outbox. Deliveries are claimed like executions: a claim sets the lease
// owner, bumps the fencing token and makes the row due again at the lease's expiry
// (so a sender that dies mid-attempt leaves it to be taken up again); its outcome is
// recorded only WHERE the token is still the one it claimed with. On PostgreSQL the
// claim skips rows another process is claiming (FOR UPDATE SKIP LOCKED), so many
// processes send, each delivery by one of them at a time. Sending is at least once:
// a sender that dies after the receiver answered but before recording it sends again
// (with the same webhook-id, which receivers use to drop duplicates).
//
// Due times are by this process's clock (the injected one in tests).

type DeliveryRow = Selectable<WebhookDeliveryTable>;

export interface DeliveryWorkerOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  allowPrivateNetwork: boolean;
  pollIntervalMs: number;
  /** Attempts in flight at once in this process. */
  concurrency?: number;
  /** Longer than an attempt can take (15 s), so a live sender never loses its lease. */
  leaseMs?: number;
}

const DEFAULT_LEASE_MS = 60_000;

export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}:deliveries`;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #cancel = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #polling = false;
  #stopped = false;

  constructor(private readonly options: DeliveryWorkerOptions) {}

  start(): void {
    this.#timer = setInterval(() => void this.poll(), Math.max(50, this.options.pollIntervalMs));
    this.#timer.unref();
    void this.poll();
  }

  /** Cancels the attempts in flight (they do not count) and hands their deliveries back. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#cancel.abort();
    await Promise.all([...this.#inFlight]);
  }

  /** Claims what is due (up to the free slots) and sends it. */
  async poll(): Promise<void> {
    if (this.#polling || this.#stopped) return;
    this.#polling = true;
    try {
      const free = (this.options.concurrency ?? 10) - this.#inFlight.size;
      if (free <= 0) return;
      for (const delivery of await this.#claim(free)) {
        const done = this.#deliver(delivery)
          .catch((err: unknown) => this.options.logger.error({ err, deliveryId: delivery.id }, 'delivery attempt failed to record; it is tried again after its lease'))
          .finally(() => this.#inFlight.delete(done));
        this.#inFlight.add(done);
      }
    } catch (err) {
      this.options.logger.warn({ err }, 'claiming deliveries failed');
    } finally {
      this.#polling = false;
    }
  }

  /** Resolves when nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  async #claim(limit: number): Promise<DeliveryRow[]> {
    const { db, clock } = this.options;
    const now = clock.now();
    const leaseUntil = now + (this.options.leaseMs ?? DEFAULT_LEASE_MS);
    // A read first: an idle poll takes no write lock.
    const due = await db.db.selectFrom('webhook_deliveries').select('id').where('status', '=', 'pending').where('available_at', '<=', now).limit(1).execute();
    if (due.length === 0) return [];
    const lock = db.sharedAcrossProcesses ? sql`for update skip locked` : sql``;
    const { rows } = await sql<DeliveryRow>`
      update webhook_deliveries set lease_owner = ${this.id}, lease_token = lease_token + 1, available_at = ${leaseUntil}
      where id in (select id from webhook_deliveries where status = 'pending' and available_at <= ${now}
                   order by available_at limit ${limit} ${lock})
        and status = 'pending' and available_at <= ${now}
      returning *`.execute(db.db);
    return rows;
  }

  async #deliver(delivery: DeliveryRow): Promise<void> {
    const { db, clock } = this.options;
    const endpoint = await db.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', delivery.endpoint_id).executeTakeFirst();
    const execution = await db.db.selectFrom('executions').selectAll().where('id', '=', delivery.execution_id).executeTakeFirst();
    if (!endpoint || endpoint.enabled !== 1 || !execution) {
      const why = !endpoint ? 'the endpoint was deleted' : !execution ? 'the execution was deleted' : 'the endpoint is disabled';
      await this.#record(delivery, { status: 'failed', last_error: why, last_status_code: null, attempts: delivery.attempts });
      return;
    }
    const now = clock.now();
    const timestamp = Math.floor(now / 1000);
    // `timestamp` is when the event happened (the final status), the same on every
    // attempt; the header's timestamp is the attempt's.
    const body = JSON.stringify({ type: delivery.event, timestamp: formatTimestamp(delivery.created_at), data: toExecutionView(execution) });
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'SkipFlow-Webhooks/1',
      'webhook-id': delivery.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(endpoint.secret, delivery.id, timestamp, body),
    };
    const { sendAttempt } = await import('./send.js');
    const outcome: AttemptOutcome = await sendAttempt({ url: endpoint.url, headers, body, allowPrivateNetwork: this.options.allowPrivateNetwork, cancel: this.#cancel.signal });
    if (outcome.kind === 'cancelled') {
      // Shutting down: due again at once for whichever sender claims it next.
      await db.db
        .updateTable('webhook_deliveries')
        .set({ lease_owner: null, available_at: delivery.next_attempt_at ?? clock.now() })
        .where('id', '=', delivery.id)
        .where('lease_token', '=', delivery.lease_token)
        .where('status', '=', 'pending')
        .execute();
      return;
    }
    const ended = clock.now();
    const attempts = delivery.attempts + 1;
    if (outcome.kind === 'response' && outcome.statusCode >= 200 && outcome.statusCode < 300) {
      await this.#record(delivery, { status: 'delivered', attempts, last_status_code: outcome.statusCode, last_error: null, delivered_at: ended });
      return;
    }
    const statusCode = outcome.kind === 'response' ? outcome.statusCode : null;
    const error = outcome.kind === 'response' ? `the endpoint answered ${outcome.statusCode}` : outcome.message;
    if (statusCode === 410) {
      // Gone: the receiver asks not to be called again.
      await this.#record(delivery, { status: 'failed', attempts, last_status_code: 410, last_error: 'the endpoint answered 410 Gone; it was disabled' }, true);
      return;
    }
    const retryAfter = outcome.kind === 'response' ? parseRetryAfter(outcome.retryAfter, ended) : null;
    const delay = nextDelay(attempts, retryAfter);
    if (delay === null) {
      await this.#record(delivery, { status: 'failed', attempts, last_status_code: statusCode, last_error: error });
      return;
    }
    await this.#record(delivery, { status: 'pending', attempts, last_status_code: statusCode, last_error: error, next_attempt_at: ended + delay, available_at: ended + delay });
  }

  /** Records an attempt's outcome, fenced by the claim's token. */
  async #record(
    delivery: DeliveryRow,
    change: Pick<DeliveryRow, 'status' | 'attempts' | 'last_status_code' | 'last_error'> & Partial<Pick<DeliveryRow, 'delivered_at' | 'next_attempt_at' | 'available_at'>>,
    disableEndpoint = false,
  ): Promise<void> {
    const done = change.status !== 'pending';
    let applied = false;
    await this.options.db.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('webhook_deliveries')
        .set({ ...change, lease_owner: null, ...(done ? { available_at: null, next_attempt_at: null } : {}) })
        .where('id', '=', delivery.id)
        .where('lease_token', '=', delivery.lease_token)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      applied = Number(result.numUpdatedRows) > 0;
      if (disableEndpoint && applied) {
        await trx.updateTable('webhook_endpoints').set({ enabled: 0 }).where('id', '=', delivery.endpoint_id).execute();
      }
    });
    // Counted once the outcome is committed under this sender's claim.
    if (applied) recordMetric.delivery(change.status === 'delivered' ? 'delivered' : change.status === 'failed' ? 'failed' : 'retrying');
  }
}
