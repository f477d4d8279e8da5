import type { Logger } from 'pino';
import pg from 'pg';
import { LocalSignals } from './signals.js';

// Signals across processes on one PostgreSQL database, over LISTEN/NOTIFY: a run-async
// on an `api` process wakes idle workers everywhere at once, and a stop reaches the
// worker that holds the execution, wherever it runs. Listeners in this process are
// called directly as well (no round trip). Notifications are best-effort by nature
// (a process that is reconnecting misses them), which is why workers also poll and
// check their executions' status on a short timer: a lost NOTIFY costs latency, never
// correctness.

const WORK = 'skipflow_work';
const STOP = 'skipflow_stop';
const RECONNECT_MS = 1000;
/** A burst of run-async calls sends one "work" notification per this interval. */
const WORK_NOTIFY_COALESCE_MS = 5;

export class PgSignals extends LocalSignals {
  #listener: pg.Client | null = null;
  #closed = false;
  #workPending = false;
  #reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly logger: Logger,
  ) {
    super();
  }

  /** Connects the LISTEN client; resolves once listening (or after a failed try, when
   * it keeps retrying in the background). */
  async start(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on('notification', (message) => {
      if (message.channel === WORK) this.emitter.emit('work');
      else if (message.channel === STOP && message.payload) this.emitter.emit('stop', message.payload);
    });
    client.on('error', (err) => {
      this.logger.warn({ err }, 'LISTEN connection lost; reconnecting');
      this.#reconnect(client);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WORK}`);
      await client.query(`LISTEN ${STOP}`);
      this.#listener = client;
      // Anything signalled while disconnected is found by the next claim.
      this.emitter.emit('work');
    } catch (err) {
      this.logger.warn({ err }, 'could not LISTEN for signals; retrying');
      this.#reconnect(client);
    }
  }

  #reconnect(client: pg.Client): void {
    if (this.#listener === client) this.#listener = null;
    client.end().catch(() => {});
    if (this.#closed || this.#reconnectTimer) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.start();
    }, RECONNECT_MS);
    this.#reconnectTimer.unref();
  }

  override workAvailable(): void {
    super.workAvailable();
    if (this.#workPending || this.#closed) return;
    this.#workPending = true;
    setTimeout(() => {
      this.#workPending = false;
      this.#notify(WORK, '');
    }, WORK_NOTIFY_COALESCE_MS).unref();
  }

  override stopRequested(executionId: string): void {
    super.stopRequested(executionId);
    this.#notify(STOP, executionId);
  }

  #notify(channel: string, payload: string): void {
    if (this.#closed) return;
    this.pool.query('select pg_notify($1, $2)', [channel, payload]).catch((err: unknown) => {
      this.logger.warn({ err, channel }, 'NOTIFY failed; workers fall back to polling');
    });
  }

  override async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    await super.close();
    await this.#listener?.end().catch(() => {});
    this.#listener = null;
  }
}
