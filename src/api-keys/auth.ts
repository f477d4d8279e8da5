import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import type { RateLimiter } from '../rate-limit/rate-limiter.js';
import type { AuthFailureLimiter } from './auth-failure-limiter.js';
import type { AuthContext, KeyVerifier } from './key-verifier.js';
import type { Scope } from './scopes.js';

// Authentication is this one hook. Each route declares its scope once, in its
// options (`config: { scope }`); `public` routes skip authentication. Unknown routes
// are authenticated too, so an anonymous caller learns nothing about what exists.
// Order: 401, then 403, then 429 rate_limited — all before the body is read. An
// address over its budget of failed authentications is answered 429 before its key
// is looked up (api-keys/auth-failure-limiter.ts).

declare module 'fastify' {
  interface FastifyContextConfig {
    scope?: Scope | 'public';
  }
  interface FastifyRequest {
    auth: AuthContext;
  }
}

const unauthorized = (message: string) =>
  new ApiError('unauthorized', message, { 'WWW-Authenticate': 'Bearer' });

function tooManyFailures(retryAfter: number, limit: number): ApiError {
  return new ApiError(
    'rate_limited',
    `Too many failed authentications from this address (more than ${limit} a minute). Check the API key, then retry after ${retryAfter} s.`,
    { 'Retry-After': String(retryAfter) },
  );
}

export function authHook(keys: KeyVerifier, rateLimiter: RateLimiter | null, failures: AuthFailureLimiter | null = null) {
  async function identify(request: FastifyRequest): Promise<AuthContext> {
    const header = request.headers.authorization;
    if (!header) throw unauthorized('Missing API key. Send it as "Authorization: Bearer sk_live_…".');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized('Malformed Authorization header. Use "Authorization: Bearer sk_live_…".');
    const auth = await keys.verify(match[1]!);
    if (!auth) throw unauthorized('Invalid API key: it is unknown, expired or revoked. Create a new key with "skipflow keys create".');
    return auth;
  }

  return async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const scope = request.routeOptions.config?.scope;
    if (scope === 'public') return;
    if (failures) {
      const retryAfter = failures.retryAfterSeconds(request.ip);
      if (retryAfter !== null) throw tooManyFailures(retryAfter, failures.limitPerMinute);
    }
    let auth: AuthContext;
    try {
      auth = await identify(request);
    } catch (error) {
      if (failures && error instanceof ApiError && error.code === 'unauthorized') failures.recordFailure(request.ip);
      throw error;
    }
    request.auth = auth;
    if (scope && !auth.scopes.has(scope)) {
      throw new ApiError('insufficient_scope', `This API key lacks the "${scope}" scope. Create a key that has it.`);
    }
    if (!rateLimiter) return;
    const rate = await rateLimiter.take(auth.workspaceId);
    reply.header('X-RateLimit-Limit', String(rate.limit));
    reply.header('X-RateLimit-Remaining', String(rate.remaining));
    reply.header('X-RateLimit-Reset', String(rate.resetSeconds));
    if (!rate.allowed) {
      throw new ApiError(
        'rate_limited',
        `Rate limit of ${rate.limit} requests per minute for this workspace exceeded. Retry after ${rate.resetSeconds} s.`,
        { 'Retry-After': String(rate.resetSeconds) },
      );
    }
  };
}
