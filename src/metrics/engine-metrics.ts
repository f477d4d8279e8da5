import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// The counters of the engine and the start path. They are counted where the facts
// happen (the start transaction, the checkpoint that writes a final status, the step
// runner, the lease claim), never inferred from HTTP traffic. When the engine runs on
// its own thread, that thread's module instance has its own registry nobody scrapes:
// engine-thread.ts swaps the sink for one that posts the events to the host, which
// applies them here (engine-host.ts). No label carries an id.

export const engineRegistry = new Registry();
collectDefaultMetrics({ register: engineRegistry });

const started = new Counter({ name: 'skipflow_executions_started_total', help: 'Executions created, by trigger type', labelNames: ['trigger'], registers: [engineRegistry] });
const finished = new Counter({ name: 'skipflow_executions_finished_total', help: 'Executions that reached a final status', labelNames: ['status'], registers: [engineRegistry] });
const stepDuration = new Histogram({
  name: 'skipflow_step_duration_seconds',
  help: 'Run time of step attempts, by step type and outcome',
  labelNames: ['type', 'status'],
  buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120],
  registers: [engineRegistry],
});
const takeovers = new Counter({ name: 'skipflow_lease_takeovers_total', help: 'Executions claimed from a worker whose lease had lapsed', registers: [engineRegistry] });
const deliveries = new Counter({ name: 'skipflow_webhook_deliveries_total', help: 'Notification delivery attempts, by outcome', labelNames: ['outcome'], registers: [engineRegistry] });

export type MetricEvent =
  | { m: 'started'; trigger: string; n: number }
  | { m: 'finished'; status: string; n: number }
  | { m: 'step'; type: string; status: string; seconds: number }
  | { m: 'takeover'; n: number }
  | { m: 'delivery'; outcome: string; n: number };

export function applyMetricEvent(event: MetricEvent): void {
  switch (event.m) {
    case 'started':
      started.inc({ trigger: event.trigger }, event.n);
      break;
    case 'finished':
      finished.inc({ status: event.status }, event.n);
      break;
    case 'step':
      stepDuration.observe({ type: event.type, status: event.status }, event.seconds);
      break;
    case 'takeover':
      takeovers.inc(event.n);
      break;
    case 'delivery':
      deliveries.inc({ outcome: event.outcome }, event.n);
      break;
    default: {
      const never: never = event;
      throw new Error(`unknown metric event ${JSON.stringify(never)}`);
    }
  }
}

let sink: (event: MetricEvent) => void = applyMetricEvent;

/** Routes every recorded event elsewhere (the engine thread posts them to its host). */
export function setMetricSink(next: (event: MetricEvent) => void): void {
  sink = next;
}

export const recordMetric = {
  started: (trigger: string, n = 1) => sink({ m: 'started', trigger, n }),
  finished: (status: string, n = 1) => sink({ m: 'finished', status, n }),
  step: (type: string, status: string, seconds: number) => sink({ m: 'step', type, status, seconds }),
  takeovers: (n: number) => {
    if (n > 0) sink({ m: 'takeover', n });
  },
  delivery: (outcome: 'delivered' | 'failed' | 'retrying', n = 1) => sink({ m: 'delivery', outcome, n }),
};

/** Buffers events and hands them over in batches (one message per interval, not per step). */
export function batchingSink(flush: (events: MetricEvent[]) => void, intervalMs = 500): { sink: (event: MetricEvent) => void; flush(): void; stop(): void } {
  let buffer: MetricEvent[] = [];
  const send = () => {
    if (buffer.length === 0) return;
    const events = buffer;
    buffer = [];
    flush(events);
  };
  const timer = setInterval(send, intervalMs);
  timer.unref();
  return { sink: (event) => buffer.push(event), flush: send, stop: () => (clearInterval(timer), send()) };
}
