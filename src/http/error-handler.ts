import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, type ErrorCode } from '../errors.js';
import { BODY_LIMIT_BYTES } from './body-parser.js';

// The one place errors are rendered (docs/api.md#errors): every error — ours, Fastify's, a
// validator's, a bug's — leaves as `{ error, error_code }`. A 500 is logged with its
// stack and the request id; the client gets neither the stack nor the message.

export function errorBody(code: ErrorCode, message: string) {
  return { error: message, error_code: code };
}

function fromFastify(error: FastifyError): ApiError | null {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', `Request body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MiB.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new ApiError('unsupported_media_type', 'Send the body as JSON with Content-Type: application/json.')
        : new ApiError('invalid_request', 'Content-Length does not match the body.');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_MAX_PARAM_LENGTH': // a path segment too long to be an id: no such resource
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new ApiError('not_found', 'No such route. See /api/v1/openapi.json for the API.');
  }
  if (error.validation) return new ApiError('invalid_request', error.message);
  const status = error.statusCode ?? 500;
  if (status === 404) return new ApiError('not_found', 'No such route. See /api/v1/openapi.json for the API.');
  if (status === 413) return new ApiError('payload_too_large', error.message);
  if (status === 415) return new ApiError('unsupported_media_type', error.message);
  if (status >= 400 && status < 500) return new ApiError('invalid_request', error.message);
  return null;
}

export function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.statusCode).headers(error.headers).send(errorBody(error.code, error.message));
}

function handle(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const known = error instanceof ApiError ? error : fromFastify(error as FastifyError);
  if (known) return sendError(reply, known);
  request.log.error({ err: error, reqId: request.id }, 'unhandled error');
  return sendError(reply, new ApiError('internal_error', `Internal error. Quote request id ${request.id} when you report it.`));
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(handle);
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, new ApiError('not_found', `No route ${request.method} ${request.url.split('?')[0]}. See /api/v1/openapi.json for the API.`));
  });
}

/** For Fastify's `frameworkErrors` option: errors raised before routing. */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  setBaseHeaders(request, reply);
  handle(error, request, reply);
}

/** On every answer: the request id, and no caching or sniffing of API data. */
export function setBaseHeaders(request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  reply.header('cache-control', 'no-store');
  reply.header('x-content-type-options', 'nosniff');
}

/** For Fastify's `clientErrorHandler`: requests Node refuses before Fastify sees them
 * (headers over 16 KiB, a request line that is not HTTP) still get the documented body. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const [status, reason, body] = tooLarge
    ? [431, 'Request Header Fields Too Large', errorBody('request_header_fields_too_large', 'Request headers are larger than 16 KiB; send fewer or smaller headers.')]
    : [400, 'Bad Request', errorBody('invalid_request', 'Malformed HTTP request.')];
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nX-Request-Id: ${randomUUID()}\r\nCache-Control: no-store\r\n` +
      `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${text}`,
  );
}
