import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { authHook } from '../api-keys/auth.js';
import type { AppDeps } from '../deps.js';
import { registerDashboard } from '../dashboard/serve-dashboard.js';
import { registerExecutionRoutes } from '../executions/routes.js';
import { registerNotificationRoutes } from '../notifications/routes.js';
import { registerApprovalRoutes } from '../executions/approval-routes.js';
import { registerSecretRoutes } from '../secrets/routes.js';
import { registerOperationsRoutes } from '../operations/routes.js';
import { registerWorkflowRoutes } from '../workflows/routes.js';
import { registerScheduleRoutes } from '../schedules/routes.js';
import { registerWebhookRoutes } from '../webhooks/routes.js';
import { registerWorkspaceRoutes } from '../workspaces/routes.js';
import { BODY_LIMIT_BYTES, registerBodyParsers } from './body-parser.js';
import { clientErrorHandler, frameworkErrors, registerErrorHandling, setBaseHeaders } from './error-handler.js';
import { registerOpenApiRoute, swaggerOptions } from './openapi.js';
import { validatorCompiler } from './validation.js';

export type App = FastifyInstance;

/** Builds the HTTP API; never listens (tests use inject() or listen themselves). */
export async function buildApp(deps: AppDeps): Promise<App> {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Access logs at info level would cost more than the requests they describe on
    // the hot paths; errors are always logged, per-request lines at debug.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT_BYTES,
    frameworkErrors,
    clientErrorHandler,
    // Any path segment Node lets through (headers are capped at 16 KiB) reaches the
    // router, so an over-long id is authenticated and then a 404 like any malformed id.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 16_384 },
  });

  app.setValidatorCompiler(validatorCompiler);
  // Response schemas document the API; the handlers build exactly the objects docs/api.md
  // describes, so plain JSON.stringify is the serializer (no field silently dropped).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.decorateRequest('auth', null as never);

  app.addHook('onRequest', async (request, reply) => setBaseHeaders(request, reply));
  app.addHook('onRequest', authHook(deps.keys, deps.rateLimiter, deps.authFailures ?? null));
  const debug = deps.logger.isLevelEnabled('debug');
  app.addHook('onResponse', async (request, reply) => {
    if (debug) {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
    }
  });

  registerBodyParsers(app);
  registerErrorHandling(app);
  await app.register(fastifySwagger, swaggerOptions);

  registerOpenApiRoute(app);
  registerWorkspaceRoutes(app, deps);
  registerWorkflowRoutes(app, deps);
  registerExecutionRoutes(app, deps);
  registerScheduleRoutes(app, deps);
  await registerWebhookRoutes(app, deps);
  registerNotificationRoutes(app, deps);
  registerSecretRoutes(app, deps, deps.secretKey ?? null);
  registerApprovalRoutes(app, deps);
  registerOperationsRoutes(app, deps);
  await registerDashboard(app);
  await app.ready();
  return app;
}
