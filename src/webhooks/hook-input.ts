import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { parseJsonBody } from '../http/body-parser.js';

// What a delivery becomes: the execution's input `{ method, headers, query, body }`.
// Bodies: JSON (any value), form-encoded (an object of strings; a repeated field keeps
// its last value), text/* (a string), nothing (null); anything else is 415. Headers
// are lowercased (Node does it) and lose the credentials they might carry.

const DROPPED_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

const unsupported = (type: string) =>
  new ApiError('unsupported_media_type', `Content-Type "${type}" is not accepted by webhooks; send JSON, application/x-www-form-urlencoded or text/*.`);

export function parseHookBody(contentType: string | undefined, raw: Buffer): unknown {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (raw.length === 0) return null;
  const text = raw.toString('utf8');
  if (type === 'application/json' || /^application\/[\w.+-]+\+json$/.test(type)) return parseJsonBody(text);
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  if (type.startsWith('text/')) return text;
  throw unsupported(contentType ?? 'none');
}

export function hookInput(request: FastifyRequest, body: unknown) {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || DROPPED_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { method: request.method, headers, query: request.query ?? {}, body };
}
