import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppDeps } from '../deps.js';
import { ApiError, notFound } from '../errors.js';
import { readExecutionJson } from '../executions/get-execution.js';
import { startExecution } from '../executions/start-execution.js';
import type { TerminalCache } from '../executions/terminal-cache.js';
import type { IdempotentRequest, StoredResponse } from '../idempotency/idempotency.js';
import { hookInput, parseHookBody } from './hook-input.js';
import { verifySignature } from './signature.js';
import { findWebhookByTokenHash, markReceived, signatureOf, type WebhookRow } from './store.js';
import { TOKEN_PATTERN, hashToken } from './token.js';

// POST /hooks/:token. Order: unknown token 404, signature 401, the workspace's rate
// limit 429, body 415/400, then the start — through the one start path, so credits
// (402), the concurrency cap (429) and idempotency behave as on run-async.
//
// Deduplication goes through the idempotency store of run-async: the key is the
// delivery's Idempotency-Key (or the configured dedupe header) namespaced by webhook
// and hashed (it fits the key column whatever its length); the fingerprint is the
// same for every delivery of the webhook, so a repeated key replays the first response
// whatever the body.

const notFoundHook = () => notFound('Webhook');

function dedupeRequest(hook: WebhookRow, headers: FastifyRequest['headers']): IdempotentRequest | null {
  const name = (hook.dedupe_header ?? 'idempotency-key').toLowerCase();
  const raw = headers[name] ?? (hook.dedupe_header ? headers['idempotency-key'] : undefined);
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || value === '') return null;
  const digest = createHash('sha256').update(value).digest('hex');
  return { workspaceId: hook.workspace_id, key: `webhook:${hook.id}:${digest}`, fingerprint: `webhook:${hook.id}` };
}

async function rateLimit(deps: AppDeps, reply: FastifyReply, workspaceId: string): Promise<void> {
  if (!deps.rateLimiter) return;
  const rate = await deps.rateLimiter.take(workspaceId);
  reply.header('X-RateLimit-Limit', String(rate.limit));
  reply.header('X-RateLimit-Remaining', String(rate.remaining));
  reply.header('X-RateLimit-Reset', String(rate.resetSeconds));
  if (!rate.allowed) {
    throw new ApiError('rate_limited', `Rate limit of ${rate.limit} requests per minute for this workspace exceeded. Retry after ${rate.resetSeconds} s.`, {
      'Retry-After': String(rate.resetSeconds),
    });
  }
}

export interface HookAnswer {
  status: number;
  bodyText: string;
  replayed: boolean;
}

export async function receiveWebhook(deps: AppDeps, cache: TerminalCache, token: string, request: FastifyRequest, reply: FastifyReply): Promise<HookAnswer> {
  if (!TOKEN_PATTERN.test(token)) throw notFoundHook();
  const hook = await findWebhookByTokenHash(deps.db.db, hashToken(token));
  if (!hook) throw notFoundHook();
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  const signature = signatureOf(hook);
  if (signature) verifySignature(signature, { headers: request.headers, rawBody: raw, nowMs: deps.clock.now() });
  await rateLimit(deps, reply, hook.workspace_id);
  const body = parseHookBody(request.headers['content-type'], raw);
  await markReceived(deps.db.db, hook.id, deps.clock.now());
  const started = await startExecution(deps, {
    workspaceId: hook.workspace_id,
    workflowId: hook.workflow_id,
    input: hookInput(request, body),
    trigger: { type: 'webhook', webhook_id: hook.id },
    idempotency: dedupeRequest(hook, request.headers),
  });
  if (hook.mode !== 'sync') return started;
  return waitForResult(deps, cache, hook, started);
}

/** Sync mode: the long poll of GET /executions/:id?wait, then the result of the last step. */
async function waitForResult(deps: AppDeps, cache: TerminalCache, hook: WebhookRow, started: StoredResponse): Promise<HookAnswer> {
  const { execution_id: id } = JSON.parse(started.bodyText) as { execution_id: string };
  const text = await readExecutionJson(deps, cache, { workspaceId: hook.workspace_id, id, withSteps: true, waitSeconds: hook.sync_timeout_seconds });
  const execution = JSON.parse(text) as { status: string; error: string | null; steps?: Array<{ result: unknown }> };
  if (execution.status === 'running') return started;
  const last = execution.steps?.[execution.steps.length - 1];
  return { status: 200, bodyText: JSON.stringify({ execution_id: id, status: execution.status, result: last?.result ?? null, error: execution.error }), replayed: started.replayed };
}
