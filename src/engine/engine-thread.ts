import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config.js';
import { openDb } from '../db/open.js';
import { systemClock } from '../lib/time.js';
import { createLogger } from '../logger.js';
import type { HostMessage, ThreadMessage } from './engine-host.js';
import { Worker } from './worker.js';
import { batchingSink, setMetricSink } from '../metrics/engine-metrics.js';

// The engine's own thread in an `all` process: the worker claims, runs and checkpoints
// executions here, with its own database connection, so the API's event loop never
// waits behind step execution or checkpoint commits (and the two use both cores).
// The host (engine-host.ts) forwards the API's signals over the port; on PostgreSQL
// this thread also LISTENs itself, for the other processes' signals.

const port = parentPort!;
const { config, pretty } = workerData as { config: Config; pretty: boolean };
const post = (message: ThreadMessage) => port.postMessage(message);
// This thread's counters are the host's: nobody scrapes this thread's registry.
const metrics = batchingSink((events) => post({ type: 'metrics', events }));
setMetricSink(metrics.sink);

async function main(): Promise<void> {
  const logger = createLogger(config.logLevel, pretty).child({ thread: 'engine' });
  const db = openDb(config.databaseUrl, { poolSize: 10 });
  const signals = await db.createSignals(logger);
  const worker = Worker.fromConfig(config, { db, clock: systemClock, logger, signals });
  port.on('message', (message: HostMessage) => {
    switch (message.type) {
      case 'work':
        signals.receiveWork();
        break;
      case 'stop':
        signals.receiveStop(message.executionId);
        break;
      case 'shutdown':
        void (async () => {
          await worker.stop(message.graceMs);
          await signals.close();
          await db.close();
          metrics.stop();
          post({ type: 'stopped' });
          port.close();
        })().catch((err: unknown) => post({ type: 'failed', message: (err as Error).message }));
        break;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  });
  worker.start();
  post({ type: 'ready' });
}

main().catch((err: unknown) => post({ type: 'failed', message: (err as Error)?.message ?? String(err) }));
