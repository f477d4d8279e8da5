import { createHash } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES, type Scope } from '../src/api-keys/scopes.js';
import { SECRET_PATTERN, generateSecret } from '../src/api-keys/secret.js';
import { createApiKey } from '../src/api-keys/store.js';
import type { Db } from '../src/db/open.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, openTestDb, settle, startTestServer } from './helpers/server.js';

// docs/api.md#api-keys-and-scopes and #errors (auth, scopes, error order): who gets in, who does not,
// and how fast a revocation made elsewhere takes effect.

function expectError(res: LightMyRequestResponse, status: number, code: string): { error: string; error_code: string } {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json() as { error: string; error_code: string };
  expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
  expect(body.error_code).toBe(code);
  expect(typeof body.error).toBe('string');
  expect(body.error.length).toBeGreaterThan(0);
  expect(res.headers['x-request-id']).toBeTruthy();
  return body;
}

function expectUnauthorized(res: LightMyRequestResponse): void {
  expectError(res, 401, 'unauthorized');
  expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
}

describe('API key secrets', () => {
  it('have the sk_live_ + 43 base62 format and are random', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const secret = generateSecret();
      expect(secret).toMatch(/^sk_live_[0-9A-Za-z]{43}$/);
      seen.add(secret);
    }
    expect(seen.size).toBe(200);
    expect(SECRET_PATTERN.source).toBe('^sk_live_[0-9A-Za-z]{43}$');
  });
});

describeEachBackend('authentication and scopes', (backend) => {
  let t: TestServer;
  let direct: Db; // a second connection, as another process or the CLI would have
  let workflowId: string;
  let executionId: string;

  async function keyWith(scopes: readonly Scope[], extra: { expiresInDays?: number; workspaceId?: string } = {}) {
    const created = await createApiKey(t.server.deps.db.db, {
      workspaceId: extra.workspaceId ?? t.workspaceId,
      scopes,
      name: `test ${scopes.join(',')}`,
      ...(extra.expiresInDays !== undefined ? { expiresInDays: extra.expiresInDays } : {}),
      now: Date.now(),
    });
    return { secret: created.secret, keyId: created.row.id };
  }

  beforeAll(async () => {
    t = await startTestServer(backend);
    direct = openTestDb(t.database.url, { poolSize: 2 });
    const wf = await t.request({
      method: 'POST',
      url: '/api/v1/workflows',
      body: { name: 'Long sleeper', steps: [{ type: 'delay', seconds: 3600 }] },
    });
    expect(wf.statusCode).toBe(201);
    workflowId = wf.json().id;
    const run = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async` });
    expect(run.statusCode).toBe(202);
    executionId = run.json().execution_id;
  });
  afterAll(async () => {
    await direct?.close();
    await t?.close();
  });

  describe('401 unauthorized', () => {
    it('without an Authorization header', async () => {
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workflows', key: null }));
      expectUnauthorized(await t.request({ method: 'POST', url: '/api/v1/workflows', key: null, body: { name: 'x', steps: [] } }));
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workspace', key: null }));
    });

    it('with a malformed Authorization header or key', async () => {
      const valid = t.apiKey;
      for (const authorization of [
        valid, // no scheme
        `Basic ${Buffer.from(`user:${valid}`).toString('base64')}`,
        `Bearer`,
        `Bearer `,
        `Bearer ${valid} extra`,
        `Bearer ${valid.slice(0, -1)}`, // 42 characters
        `Bearer ${valid}x`, // 44 characters
        `Bearer sk_test_${valid.slice(8)}`,
        `Bearer ${valid.slice(0, -1)}!`,
      ]) {
        const res = await t.request({ method: 'GET', url: '/api/v1/workflows', key: null, headers: { authorization } });
        expectUnauthorized(res);
      }
    });

    it('says the same for an unknown, an expired and a revoked key (no existence leak)', async () => {
      const expired = await keyWith(SCOPES);
      await direct.db.updateTable('api_keys').set({ expires_at: Date.now() - 1000 }).where('id', '=', expired.keyId).execute();
      const revoked = await keyWith(SCOPES);
      await direct.db.updateTable('api_keys').set({ revoked_at: Date.now() - 1000 }).where('id', '=', revoked.keyId).execute();
      const bodies = await Promise.all(
        [generateSecret(), expired.secret, revoked.secret].map(async (key) => (await t.request({ method: 'GET', url: '/api/v1/workflows', key })).body),
      );
      expect(new Set(bodies).size).toBe(1);
    });

    it('with a well-formed but unknown key', async () => {
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workflows', key: generateSecret() }));
    });

    it('with a key created already expired, at once', async () => {
      const { secret, keyId } = await keyWith(SCOPES);
      await direct.db.updateTable('api_keys').set({ expires_at: Date.now() - 1000 }).where('id', '=', keyId).execute();
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret }));
    });

    it('with a key the moment it expires (expiry is not cached)', async () => {
      const { secret, keyId } = await keyWith(SCOPES);
      const expiresAt = Date.now() + 1200;
      await direct.db.updateTable('api_keys').set({ expires_at: expiresAt }).where('id', '=', keyId).execute();
      const before = await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret });
      expect(before.statusCode).toBe(200);
      await settle(Math.max(0, expiresAt - Date.now()) + 50); // past the expiry
      // Well inside the 4 s cache: only a per-request expiry check answers 401 here.
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret }));
    });

    it('with a revoked key, within 5 seconds of a revocation written directly to the database', async () => {
      const { secret, keyId } = await keyWith(SCOPES);
      // Warm every cache: the key is known-good on this process.
      for (let i = 0; i < 3; i++) {
        expect((await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret })).statusCode).toBe(200);
      }
      const revokedAt = Date.now();
      await direct.db.updateTable('api_keys').set({ revoked_at: revokedAt }).where('id', '=', keyId).execute();
      const last = await eventually(async () => {
        const res = await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret });
        return res.statusCode !== 200 ? res : null;
      }, 6000, 100);
      const elapsed = Date.now() - revokedAt;
      expectUnauthorized(last);
      expect(elapsed).toBeLessThan(5000);
      // And it stays out.
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workflows', key: secret }));
    });

    it('a revoked key is refused even when it also lacks the scope (401 beats 403)', async () => {
      const { secret, keyId } = await keyWith(['workflows:read']);
      await direct.db.updateTable('api_keys').set({ revoked_at: Date.now() - 1 }).where('id', '=', keyId).execute();
      expectUnauthorized(await t.request({ method: 'GET', url: '/api/v1/workspace', key: secret }));
    });
  });

  describe('storage', () => {
    it('stores only the SHA-256 of the secret and a short prefix, never the secret', async () => {
      const { secret, keyId } = await keyWith(['workflows:read', 'executions:read']);
      expect(secret).toMatch(/^sk_live_[0-9A-Za-z]{43}$/);
      const row = await direct.db.selectFrom('api_keys').selectAll().where('id', '=', keyId).executeTakeFirstOrThrow();
      expect(row.secret_hash).toBe(createHash('sha256').update(secret).digest('hex'));
      expect(secret.startsWith(row.prefix)).toBe(true);
      expect(row.prefix.length).toBeLessThanOrEqual(16);
      const body = secret.slice('sk_live_'.length);
      for (const [column, value] of Object.entries(row)) {
        const text = value === null ? '' : String(value);
        expect(text, `api_keys.${column}`).not.toContain(body);
        expect(text, `api_keys.${column}`).not.toContain(body.slice(0, 16));
        expect(text, `api_keys.${column}`).not.toContain(body.slice(-16));
      }
    });

    it('the bootstrap key is stored the same way', async () => {
      const rows = await direct.db.selectFrom('api_keys').selectAll().where('workspace_id', '=', t.workspaceId).execute();
      const row = rows.find((r) => r.secret_hash === createHash('sha256').update(t.apiKey).digest('hex'));
      expect(row).toBeDefined();
      const body = t.apiKey.slice('sk_live_'.length);
      for (const r of rows) {
        for (const value of Object.values(r)) expect(String(value)).not.toContain(body.slice(0, 16));
      }
    });
  });

  describe('403 insufficient_scope', () => {
    const routes: { scope: Scope; method: string; url: () => string; body?: unknown }[] = [
      { scope: 'workflows:write', method: 'POST', url: () => '/api/v1/workflows', body: { name: 'n', steps: [{ type: 'transform', expression: '1' }] } },
      { scope: 'workflows:read', method: 'GET', url: () => '/api/v1/workflows' },
      { scope: 'workflows:read', method: 'GET', url: () => `/api/v1/workflows/${workflowId}` },
      { scope: 'workflows:write', method: 'PUT', url: () => `/api/v1/workflows/${workflowId}`, body: { name: 'Long sleeper', steps: [{ type: 'delay', seconds: 3600 }] } },
      { scope: 'workflows:delete', method: 'DELETE', url: () => `/api/v1/workflows/${workflowId}` },
      { scope: 'workflows:execute', method: 'POST', url: () => `/api/v1/workflows/${workflowId}/run-async`, body: {} },
      { scope: 'executions:read', method: 'GET', url: () => '/api/v1/executions' },
      { scope: 'executions:read', method: 'GET', url: () => `/api/v1/executions/${executionId}?include_step_results=true` },
      { scope: 'workflows:execute', method: 'POST', url: () => `/api/v1/executions/${executionId}/stop`, body: {} },
      { scope: 'workspace:read', method: 'GET', url: () => '/api/v1/workspace' },
      { scope: 'secrets:read', method: 'GET', url: () => '/api/v1/secrets' },
      { scope: 'secrets:write', method: 'PUT', url: () => '/api/v1/secrets/A', body: { value: 'v' } },
      { scope: 'secrets:write', method: 'DELETE', url: () => '/api/v1/secrets/A' },
    ];

    it('every route refuses a key that has every scope but its own, naming the scope', async () => {
      for (const route of routes) {
        const { secret } = await keyWith(SCOPES.filter((s) => s !== route.scope));
        const res = await t.request({ method: route.method, url: route.url(), key: secret, body: route.body });
        const body = expectError(res, 403, 'insufficient_scope');
        expect(body.error, `${route.method} ${route.url()}`).toContain(route.scope);
      }
      // Nothing was done by the refused requests.
      const wf = await t.request({ method: 'GET', url: `/api/v1/workflows/${workflowId}` });
      expect(wf.statusCode).toBe(200);
      const ex = await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}` });
      expect(ex.json().status).toBe('running');
    });

    it('403 beats 400 and 404: the scope is checked before the body and the id', async () => {
      const { secret } = await keyWith(['workflows:read']);
      const bad = await t.request({ method: 'POST', url: '/api/v1/workflows', key: secret, body: '{not json' });
      expect(expectError(bad, 403, 'insufficient_scope').error).toContain('workflows:write');
      const missing = await t.request({ method: 'DELETE', url: '/api/v1/workflows/000000000000000000000000', key: secret });
      expect(expectError(missing, 403, 'insufficient_scope').error).toContain('workflows:delete');
    });

    it('a key restricted to one scope can use exactly the routes of that scope', async () => {
      const { secret: readOnly } = await keyWith(['workflows:read']);
      expect((await t.request({ method: 'GET', url: '/api/v1/workflows', key: readOnly })).statusCode).toBe(200);
      expect((await t.request({ method: 'GET', url: `/api/v1/workflows/${workflowId}`, key: readOnly })).statusCode).toBe(200);
      const { secret: wsOnly } = await keyWith(['workspace:read']);
      const ws = await t.request({ method: 'GET', url: '/api/v1/workspace', key: wsOnly });
      expect(ws.statusCode).toBe(200);
      expect(ws.json().workspace_id).toBe(t.workspaceId);
      const { secret: execRead } = await keyWith(['executions:read']);
      expect((await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}`, key: execRead })).statusCode).toBe(200);
    });

    it('the all-scope bootstrap key includes workflows:delete', async () => {
      const wf = await t.request({
        method: 'POST',
        url: '/api/v1/workflows',
        body: { name: 'to delete', steps: [{ type: 'transform', expression: '1' }] },
      });
      const del = await t.request({ method: 'DELETE', url: `/api/v1/workflows/${wf.json().id}` });
      expect(del.statusCode).toBe(200);
    });
  });

  describe('error order with a rate limit: 401, then 403, then 429', () => {
    let limited: TestServer;
    beforeAll(async () => {
      // A clock one second into a fresh minute, so the fixed 60 s window cannot roll over mid-test.
      const offset = (((1000 - (Date.now() % 60_000)) % 60_000) + 60_000) % 60_000;
      limited = await startTestServer(backend, { rateLimitPerMinute: 2 }, { clock: { now: () => Date.now() + offset } });
    });
    afterAll(() => limited?.close());

    it('orders 401 before 403 before 429', async () => {
      const db = limited.server.deps.db.db;
      const readOnly = await createApiKey(db, { workspaceId: limited.workspaceId, scopes: ['workflows:read'], now: Date.now() });
      // Use up the workspace's window.
      for (let i = 0; i < 2; i++) {
        expect((await limited.request({ method: 'GET', url: '/api/v1/workflows' })).statusCode).toBe(200);
      }
      expectError(await limited.request({ method: 'GET', url: '/api/v1/workflows' }), 429, 'rate_limited');
      // A key lacking the scope gets 403, not 429 …
      const forbidden = await limited.request({ method: 'GET', url: '/api/v1/workspace', key: readOnly.secret });
      expect(expectError(forbidden, 403, 'insufficient_scope').error).toContain('workspace:read');
      // … and a bad key gets 401, not 403 nor 429.
      expectUnauthorized(await limited.request({ method: 'GET', url: '/api/v1/workspace', key: generateSecret() }));
      expectUnauthorized(await limited.request({ method: 'GET', url: '/api/v1/workflows', key: null }));
    });
  });
});
