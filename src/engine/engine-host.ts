import { Worker as Thread } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Signals } from '../db/signals.js';
import { type MetricEvent, applyMetricEvent } from '../metrics/engine-metrics.js';

// Starts the engine on its own thread (see engine-thread.ts) and forwards this
// thread's signals to it: "work available" after a run-async, "stop" after a stop.

export type HostMessage = { type: 'work' } | { type: 'stop'; executionId: string } | { type: 'shutdown'; graceMs: number };
export type ThreadMessage = { type: 'ready' } | { type: 'stopped' } | { type: 'failed'; message: string } | { type: 'metrics'; events: MetricEvent[] };

export interface EngineThread {
  /** Drains the engine (in-flight executions get graceMs) and ends the thread. */
  stop(graceMs?: number): Promise<void>;
}

/** The compiled entry point. Under the test runner this module is TypeScript source,
 * and a thread cannot load that: it then runs the build (`npm run build`). */
function entryUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL('../../dist/engine/engine-thread.js', here);
  return new URL('./engine-thread.js', here);
}

export async function startEngineThread(args: { config: Config; logger: Logger; signals: Signals; pretty: boolean }): Promise<EngineThread> {
  const thread = new Thread(entryUrl(), { workerData: { config: args.config, pretty: args.pretty } });
  const post = (message: HostMessage) => thread.postMessage(message);
  let stopped = false;
  const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: ThreadMessage) => {
      if (message.type === 'ready') resolve();
      else if (message.type === 'failed') reject(new Error(`the engine thread could not start: ${message.message}`));
    };
    thread.on('message', onMessage);
    thread.once('error', reject);
    void exited.then((code) => reject(new Error(`the engine thread exited with code ${code} while starting`)));
  });
  // A thread that dies while the process serves would leave executions unrun behind a
  // healthy-looking API: fail loudly and let the supervisor restart the process.
  thread.on('error', (err) => {
    args.logger.fatal({ err }, 'the engine thread failed; exiting');
    process.exit(1);
  });
  void exited.then((code) => {
    if (stopped) return;
    args.logger.fatal({ code }, 'the engine thread exited; exiting');
    process.exit(1);
  });
  // The engine's counters, counted on its thread, are scraped from this one.
  thread.on('message', (message: ThreadMessage) => {
    if (message.type === 'metrics') for (const event of message.events) applyMetricEvent(event);
  });
  const offWork = args.signals.onWorkAvailable(() => post({ type: 'work' }));
  const offStop = args.signals.onStopRequested((executionId) => post({ type: 'stop', executionId }));
  return {
    async stop(graceMs = 10_000) {
      if (stopped) return;
      stopped = true;
      offWork();
      offStop();
      const done = new Promise<void>((resolve) =>
        thread.on('message', (message: ThreadMessage) => {
          if (message.type === 'stopped' || message.type === 'failed') resolve();
        }),
      );
      post({ type: 'shutdown', graceMs });
      await Promise.race([done, exited, new Promise((r) => setTimeout(r, graceMs + 5_000).unref())]);
      await thread.terminate();
    },
  };
}
