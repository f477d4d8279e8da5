import type { FastifyInstance } from 'fastify';
import type { SwaggerOptions } from '@fastify/swagger';
import { Type } from '@sinclair/typebox';
import { ERROR_STATUS } from '../errors.js';
import { ErrorBody } from './responses.js';
import { shapeDocument, shapeRoute } from './openapi-shape.js';

// GET /api/v1/openapi.json: generated from the route schemas, the same ones that
// validate requests, so the document cannot drift from the server.

export const swaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: {
      title: 'SkipFlow API',
      version: '1',
      description: `Durable workflow executions. Errors: { "error": string, "error_code": one of ${Object.keys(ERROR_STATUS).join(', ')} }.`,
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'sk_live_… API key' } },
    },
    security: [{ bearer: [] }],
  },
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  transform: shapeRoute as any,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  transformObject: ((documentObject: { openapiObject: Record<string, unknown> }) => shapeDocument(documentObject.openapiObject)) as any,
} as SwaggerOptions;

export function registerOpenApiRoute(app: FastifyInstance): void {
  app.get(
    '/api/v1/openapi.json',
    {
      config: { scope: 'public' },
      schema: {
        summary: 'This document (OpenAPI 3.1); needs no API key',
        operationId: 'getOpenApiDocument',
        security: [],
        response: {
          200: Type.Object({ openapi: Type.String() }, { additionalProperties: true, title: 'OpenAPIDocument' }),
          500: ErrorBody,
        },
      },
    },
    async () => app.swagger(),
  );
}
