import { sql } from 'kysely';
import { Gauge, Histogram, Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/open.js';

// The metrics that belong to one API process: request durations (labelled by route
// pattern, never by the URL — no id reaches a label) and two gauges read from the
// database when Prometheus scrapes, so they are right whichever process runs what.

export function createAppMetrics(db: Db): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'skipflow_executions_running',
    help: 'Executions whose status is running (all workspaces)',
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ n: number }>`select count(*) as n from executions where status = 'running'`.execute(db.db);
      this.set(Number(rows[0]?.n ?? 0));
    },
  });
  new Gauge({
    name: 'skipflow_executions_due',
    help: 'Running executions that are due and not held by a worker',
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ n: number }>`select count(*) as n from executions where status = 'running' and available_at <= ${db.nowMs()}`.execute(db.db);
      this.set(Number(rows[0]?.n ?? 0));
    },
  });
  return registry;
}

export function observeRequestDurations(app: FastifyInstance, registry: Registry): void {
  const histogram = new Histogram({
    name: 'skipflow_http_request_duration_seconds',
    help: 'HTTP request durations by route pattern, method and status code',
    labelNames: ['route', 'method', 'status_code'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // An unknown URL has no pattern: one label for all of them.
    const route = request.routeOptions.url ?? 'unmatched';
    histogram.observe({ route, method: request.method, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}
