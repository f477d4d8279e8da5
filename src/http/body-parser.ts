import type { FastifyInstance } from 'fastify';
import { ApiError, invalid } from '../errors.js';

// Request bodies (docs/api.md#conventions): JSON only, at most 1 MiB, nested at most MAX_JSON_DEPTH
// levels; an empty body is `{}` whatever its Content-Type says (the official client
// sends `Content-Type: application/json` with no body on run-async and stop).

export const BODY_LIMIT_BYTES = 1024 * 1024;
export const MAX_JSON_DEPTH = 64;

/** Depth of the deepest array/object nesting, found without recursion. */
function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return {};
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw invalid(`request body: JSON is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    throw invalid(`request body: malformed JSON (${(error as Error).message})`);
  }
  // JSON.parse accepts numbers that overflow to Infinity (1e999, or 400 digits),
  // which JSON cannot represent again, and U+0000, which PostgreSQL text cannot
  // store — both are refused here, on every backend.
  rejectUnstorable(value, '');
  return value;
}

function rejectUnstorable(value: unknown, path: string): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid(`${path || 'request body'}: number is too large to represent`);
  } else if (typeof value === 'string') {
    if (value.includes('\u0000')) throw invalid(`${path || 'request body'}: strings may not contain U+0000`);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => rejectUnstorable(item, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes('\u0000')) throw invalid(`${path || 'request body'}: keys may not contain U+0000`);
      rejectUnstorable(item, path ? `${path}.${key}` : key);
    }
  }
}

export function registerBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    // Fastify tests this against the whole header, parameters included
    // (`application/json; charset=utf-8`), lower-cased.
    /^application\/([\w.+-]+\+)?json\s*(;|$)/,
    { parseAs: 'string', bodyLimit: BODY_LIMIT_BYTES },
    (_request, body, done) => {
      try {
        done(null, parseJsonBody(body as string));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT_BYTES }, (request, body, done) => {
    if ((body as string).length === 0) return done(null, {});
    const type = request.headers['content-type'] ?? 'none';
    done(new ApiError('unsupported_media_type', `Content-Type "${type}" is not supported; send JSON with Content-Type: application/json.`), undefined);
  });
  // No body at all (no Content-Type, no length): a POST or PUT still sees `{}`.
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined && (request.method === 'POST' || request.method === 'PUT')) request.body = {};
  });
}
