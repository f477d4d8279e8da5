import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import { type OutgoingRequest, exchange, isHttpUrl } from '../net/follow-redirects.js';
import { outboundDispatcher } from '../net/guarded-dispatcher.js';
import { networkFailure } from '../net/network-failure.js';
import { parseRetryAfter, readResponseBody } from '../net/response-body.js';
import { StepFailure } from '../step-errors.js';
import { retryPolicy } from '../../lib/backoff.js';
import { httpDefinition, methodProblem } from '../../steps/http.js';
import type { StepServices, StepType } from './step-type.js';

// The `http` step: one request, redirects followed through the SSRF guard,
// the response stored as { status, headers, body } with the body bounded. Fields are
// checked at write time when they are literal, and again after rendering.

/** A Retry-After longer than this is taken as this, so no server parks an execution for ever. */
const MAX_RETRY_AFTER_MS = 86_400_000;

const templateFailure = (field: string, message: string) => new StepFailure('expression_error', `${field}: ${message}`);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function scalarText(value: unknown, field: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw templateFailure(field, `must be a string, number or boolean, got ${JSON.stringify(value)}`);
}

function buildUrl(fields: Record<string, unknown>): URL {
  if (typeof fields.url !== 'string') throw templateFailure('url', `must be a string, got ${JSON.stringify(fields.url)}`);
  let url: URL;
  try {
    url = new URL(fields.url);
  } catch {
    throw templateFailure('url', `"${fields.url}" is not an absolute URL; it must give http://host/path or https://host/path`);
  }
  if (!isHttpUrl(url)) throw new StepFailure('destination_blocked', `url: "${fields.url}" uses ${url.protocol}; an http step only reaches http:// and https:// URLs`);
  if (fields.query !== undefined && fields.query !== null) {
    if (!isRecord(fields.query)) throw templateFailure('query', `must be an object, got ${JSON.stringify(fields.query)}`);
    for (const [name, value] of Object.entries(fields.query)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item !== null && item !== undefined) url.searchParams.append(name, scalarText(item, `query.${name}`));
      }
    }
  }
  return url;
}

function buildHeaders(fields: Record<string, unknown>, url: URL, stepKey: string): Record<string, string> {
  if (fields.headers !== undefined && fields.headers !== null && !isRecord(fields.headers)) {
    throw templateFailure('headers', `must be an object, got ${JSON.stringify(fields.headers)}`);
  }
  const given = Object.entries(fields.headers ?? {});
  const has = (name: string) => given.some(([key]) => key.toLowerCase() === name);
  const headers: Record<string, string> = {};
  // Credentials written into the url become a Basic header, as curl does; undici does not send them.
  if ((url.username || url.password) && !has('authorization')) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  url.username = '';
  url.password = '';
  if (!has('user-agent')) headers['user-agent'] = 'SkipFlow';
  // The same key on every attempt and after a crash, so the receiver can drop repeats.
  if (!has('idempotency-key')) headers['idempotency-key'] = stepKey;
  for (const [name, value] of given) if (value !== null) headers[name] = scalarText(value, `headers.${name}`);
  return headers;
}

function buildBody(fields: Record<string, unknown>, headers: Record<string, string>): string | undefined {
  if (fields.body === undefined || fields.body === null) return undefined;
  const text = typeof fields.body === 'string';
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) {
    headers['content-type'] = text ? 'text/plain; charset=utf-8' : 'application/json';
  }
  return text ? (fields.body as string) : JSON.stringify(fields.body);
}

/** The accepted statuses, or null for the default (any 2xx). */
function expectedStatuses(value: unknown): number[] | null {
  if (value === undefined || value === null) return null;
  const list = Array.isArray(value) ? value : [value];
  return list.map((item, i) => {
    const status = typeof item === 'string' && /^\d{3}$/.test(item.trim()) ? Number(item) : item;
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
      throw templateFailure(Array.isArray(value) ? `expect_status[${i}]` : 'expect_status', `${JSON.stringify(item)} is not a status code between 100 and 599`);
    }
    return status;
  });
}

function buildRequest(fields: Record<string, unknown>, stepKey: string): OutgoingRequest {
  const method = fields.method ?? 'GET';
  const problem = methodProblem(method);
  if (problem) throw templateFailure('method', problem);
  const url = buildUrl(fields);
  const headers = buildHeaders(fields, url, stepKey);
  return { method: (method as string).toUpperCase(), url, headers, body: buildBody(fields, headers) };
}

/** What to do about a status the server may recover from, given the step's retry policy and this attempt. */
function recoverHint(attempt: number, maxAttempts: number): string {
  if (maxAttempts <= 1) return 'The server may recover: give the step a "retry" policy to try again.';
  if (attempt < maxAttempts) return `The server may recover: attempt ${attempt} of ${maxAttempts}, the step tries again.`;
  return `The step failed after ${attempt} attempts (its "retry" policy ran out): raise retry.max_attempts or retry.backoff_ms if the server needs longer to recover.`;
}

function statusFailure(args: { method: string; url: URL; status: number; expected: number[] | null; body: unknown; retryAfterMs: number | null; attempt: number; maxAttempts: number }): StepFailure {
  const { status } = args;
  const retryable = status === 408 || status === 429 || status >= 500;
  const expected = args.expected === null ? 'any 2xx' : args.expected.join(', ');
  const snippet = args.body === null ? '' : ` Response body: ${(typeof args.body === 'string' ? args.body : JSON.stringify(args.body)).slice(0, 300)}`;
  const hint = retryable
    ? recoverHint(args.attempt, args.maxAttempts)
    : `Check the url, headers and body, or add ${status} to expect_status to accept it.`;
  return new StepFailure(
    'http_status',
    `${args.method} ${args.url.origin}${args.url.pathname} answered ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd() + `, expected ${expected}. ${hint}${snippet}`,
    retryable,
    retryable && args.retryAfterMs !== null ? Math.min(args.retryAfterMs, MAX_RETRY_AFTER_MS) : null,
  );
}

export interface HttpStepOptions {
  /** The connection pool to send through; the SSRF guard lives in it. */
  dispatcher(services: StepServices): Dispatcher;
}

export function createHttpStep(options: HttpStepOptions): StepType<typeof httpDefinition.schema> {
  return {
    ...httpDefinition,
    async run(context, signal) {
      const outgoing = buildRequest(context.fields, context.stepKey);
      const expected = expectedStatuses(context.fields.expect_status);
      const accepts = (status: number) => (expected === null ? status >= 200 && status < 300 : expected.includes(status));
      const dispatcher = options.dispatcher(context.services);
      const { response, url, method } = await exchange(outgoing, { dispatcher, signal, keep: (status) => expected?.includes(status) ?? false });
      const contentType = response.headers['content-type'];
      const { body, truncated } = await readResponseBody(response.body, Array.isArray(contentType) ? contentType[0] : contentType).catch((error: unknown) => {
        throw networkFailure(error, url); // e.g. the connection dropped halfway through the body
      });
      const status = response.statusCode;
      if (!accepts(status)) {
        const policy = retryPolicy(context.fields.retry as Parameters<typeof retryPolicy>[0]);
        throw statusFailure({ method, url, status, expected, body, retryAfterMs: parseRetryAfter(response.headers['retry-after'], context.now()), attempt: context.attempt, maxAttempts: policy.maxAttempts });
      }
      return { kind: 'completed', result: { status, headers: response.headers, body, ...(truncated ? { truncated: true } : {}) } };
    },
  };
}

export const httpStep = createHttpStep({
  dispatcher: (services) => outboundDispatcher(services.allowPrivateNetwork),
});
