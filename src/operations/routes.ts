import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import type { AppDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { engineRegistry } from '../metrics/engine-metrics.js';
import { createAppMetrics, observeRequestDurations } from './http-metrics.js';
import { readiness } from './readiness.js';

// What an operator's tooling probes (docs/operations.md): liveness, readiness and
// Prometheus metrics. Outside /api/v1, without an API key (metrics behind
// SKIPFLOW_METRICS_TOKEN when it is set), and not in the OpenAPI document.

function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function registerOperationsRoutes(app: FastifyInstance, deps: AppDeps): void {
  const appRegistry = createAppMetrics(deps.db);
  observeRequestDurations(app, appRegistry);
  const options = { config: { scope: 'public' as const }, schema: { hide: true } };

  app.get('/healthz', options, async () => ({ status: 'ok' }));

  app.get('/readyz', options, async (_request, reply) => {
    const state = await readiness(deps.db);
    if (state.ready) return { status: 'ready' };
    return reply.code(503).send({ status: 'unavailable', reason: state.reason });
  });

  app.get('/metrics', options, async (request, reply) => {
    const token = deps.config.metricsToken;
    if (token !== null && !tokenMatches(request.headers.authorization, token)) {
      throw new ApiError('unauthorized', 'This endpoint needs "Authorization: Bearer <SKIPFLOW_METRICS_TOKEN>".', { 'WWW-Authenticate': 'Bearer' });
    }
    const merged = Registry.merge([engineRegistry, appRegistry]);
    const text = await merged.metrics();
    return reply.type(merged.contentType).send(text);
  });
}
