import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { CLI } from './helpers/child.js';
import { createWorkflow, finished, run } from './helpers/api.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// Secrets: the API (values go in, never out), encryption at rest, `{{ secrets.NAME }}`
// in http and email steps only, redaction of every value a step used, the key file on
// SQLite, the key check that stops `serve`, and rotation.

const KEY = Buffer.alloc(32, 7).toString('base64');
const OTHER_KEY = 'ab'.repeat(32);
const PLAIN = 'sk-very-secret-4f1d9a7c2e';

/** A loopback endpoint that answers with the request's headers and url (it "echoes the secret"). */
async function echoServer(): Promise<{ url: string; seen: IncomingHttpHeaders[]; server: Server }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-echo', String(req.headers.authorization ?? ''));
    const fail = req.url?.includes('fail');
    res.statusCode = fail ? 400 : 200;
    res.end(JSON.stringify({ headers: req.headers, url: req.url }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describeEachBackend('secrets', (backend) => {
  let t: TestServer;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  beforeAll(async () => {
    t = await startTestServer(backend, { secretKey: KEY, allowPrivateNetwork: true });
    echo = await echoServer();
  });
  afterAll(async () => {
    await t.close();
    echo.server.close();
  });

  const put = (name: string, value: unknown, key?: string) => t.request({ method: 'PUT', url: `/api/v1/secrets/${name}`, body: { value }, key });

  it('writes, lists and deletes secrets without ever returning a value', async () => {
    const created = await put('API_TOKEN', PLAIN);
    expect(created.statusCode, created.body).toBe(200);
    expect(Object.keys(created.json()).sort()).toEqual(['created_at', 'name', 'updated_at']);
    expect(created.body).not.toContain(PLAIN);
    const replaced = await put('API_TOKEN', PLAIN);
    expect(replaced.json().created_at).toBe(created.json().created_at);
    const list = await t.request({ method: 'GET', url: '/api/v1/secrets' });
    expect(list.statusCode).toBe(200);
    expect(list.json().secrets.map((s: { name: string }) => s.name)).toContain('API_TOKEN');
    expect(list.body).not.toContain(PLAIN);
    await put('TEMP', 'x');
    const deleted = await t.request({ method: 'DELETE', url: '/api/v1/secrets/TEMP' });
    expect(deleted.json()).toEqual({ name: 'TEMP', deleted: true });
    expect((await t.request({ method: 'DELETE', url: '/api/v1/secrets/TEMP' })).statusCode).toBe(404);
    // At rest: only ciphertext, under a fresh IV per write.
    const rows = await t.server.deps.db.db.selectFrom('secrets').select(['value']).where('name', '=', 'API_TOKEN').execute();
    expect(rows[0]!.value).toMatch(/^v1\./);
    expect(rows[0]!.value).not.toContain(PLAIN);
  });

  it('rejects bad names and values, naming the field', async () => {
    expect((await put('1abc', 'v')).json().error).toMatch(/^name:/);
    expect((await put('a-b', 'v')).statusCode).toBe(400);
    expect((await put('A'.repeat(65), 'v')).statusCode).toBe(400);
    expect((await put('EMPTY', '')).statusCode).toBe(400);
    const big = await put('BIG', 'é'.repeat(40_000)); // 80,000 bytes of UTF-8
    expect(big.statusCode).toBe(400);
    expect(big.json().error).toMatch(/^value:/);
    const list = await t.request({ method: 'GET', url: '/api/v1/secrets' });
    expect(list.json().secrets.map((s: { name: string }) => s.name)).not.toContain('BIG');
  });

  it('needs secrets:read and secrets:write', async () => {
    const { SCOPES } = await import('../src/api-keys/scopes.js');
    expect(SCOPES).toContain('secrets:read');
    expect(SCOPES).toContain('secrets:write');
    const { createApiKey } = await import('../src/api-keys/store.js');
    const readOnly = await createApiKey(t.server.deps.db.db, { workspaceId: t.workspaceId, scopes: ['secrets:read'], name: 'r', now: Date.now() });
    const secret = readOnly.secret;
    expect((await t.request({ method: 'GET', url: '/api/v1/secrets', key: secret })).statusCode).toBe(200);
    const denied = await put('X', 'v', secret);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error).toContain('secrets:write');
  });

  it('resolves {{ secrets.NAME }} in an http step and redacts it from the stored result', async () => {
    await put('API_TOKEN', PLAIN);
    const wf = await createWorkflow(t, [
      { type: 'http', url: `${echo.url}/hook?t={{ secrets.API_TOKEN }}`, headers: { Authorization: 'Bearer {{ secrets.API_TOKEN }}' } },
    ]);
    const before = echo.seen.length;
    const e = await finished(t, await run(t, wf));
    expect(e.status, JSON.stringify(e)).toBe('success');
    expect(echo.seen[before]!.authorization).toBe(`Bearer ${PLAIN}`);
    const stored = JSON.stringify(e.steps[0].result);
    expect(stored).not.toContain(PLAIN);
    expect(e.steps[0].result.body.headers.authorization).toBe('Bearer [REDACTED]');
    expect(e.steps[0].result.headers['x-echo']).toBe('Bearer [REDACTED]');
    expect(e.steps[0].result.body.url).toBe('/hook?t=[REDACTED]');
  });

  it('redacts the secret from a failed step’s error', async () => {
    const wf = await createWorkflow(t, [{ type: 'http', url: `${echo.url}/fail?t={{ secrets.API_TOKEN }}` }]);
    const e = await finished(t, await run(t, wf));
    expect(e.status).toBe('failed');
    expect(e.steps[0].error_code).toBe('http_status');
    expect(e.steps[0].error).toContain('[REDACTED]');
    expect(JSON.stringify(e)).not.toContain(PLAIN);
  });

  it('fails a step that names an unknown secret with secret_not_found, not retried', async () => {
    const wf = await createWorkflow(t, [{ type: 'http', url: `${echo.url}/x`, headers: { 'x-key': '{{ secrets.NOPE }}' }, retry: { max_attempts: 3, backoff_ms: 0 } }]);
    const before = echo.seen.length;
    const e = await finished(t, await run(t, wf));
    expect(e.status).toBe('failed');
    expect(e.error_code).toBe('secret_not_found');
    expect(e.steps[0].attempts).toBe(1);
    expect(e.steps[0].error).toContain('NOPE');
    expect(echo.seen.length).toBe(before);
  });

  it('uses a replaced secret from the next attempt on', async () => {
    await put('ROTATING', 'first-value');
    const wf = await createWorkflow(t, [{ type: 'http', url: `${echo.url}/r`, headers: { 'x-key': '{{ secrets.ROTATING }}' } }]);
    await finished(t, await run(t, wf));
    await put('ROTATING', 'second-value');
    const before = echo.seen.length;
    await finished(t, await run(t, wf));
    expect(echo.seen[before]!['x-key']).toBe('second-value');
  });

  it('keeps secrets per workspace', async () => {
    const other = await t.createWorkspace('Other secrets');
    const wfRes = await t.request({ method: 'POST', url: '/api/v1/workflows', key: other.apiKey, body: { name: 'w', steps: [{ type: 'http', url: `${echo.url}/o`, headers: { 'x-key': '{{ secrets.API_TOKEN }}' } }] } });
    const runRes = await t.request({ method: 'POST', url: `/api/v1/workflows/${wfRes.json().id}/run-async`, key: other.apiKey, body: {} });
    const id = runRes.json().execution_id as string;
    const { eventually } = await import('./helpers/server.js');
    const e = await eventually(async () => {
      const r = (await t.request({ method: 'GET', url: `/api/v1/executions/${id}`, key: other.apiKey })).json();
      return r.status !== 'running' ? r : null;
    });
    expect(e.error_code).toBe('secret_not_found');
  });

  it('refuses secrets outside the templates of http and email steps, naming the field', async () => {
    const bad = async (steps: unknown[], field: string) => {
      const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'bad', steps } });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.startsWith(`${field}:`), res.json().error).toBe(true);
    };
    await bad([{ type: 'transform', expression: 'secrets.API_TOKEN' }], 'steps[0].expression');
    await bad([{ type: 'transform', expression: '1' }, { type: 'transform', expression: '2', if: 'secrets.API_TOKEN = "x"' }], 'steps[1].if');
    await bad([{ type: 'transform', expression: '$$.secrets.X' }], 'steps[0].expression');
    await bad([{ type: 'delay', seconds: '{{ secrets.X }}' }], 'steps[0].seconds');
    await bad([{ type: 'http', url: `${echo.url}/`, headers: { a: '{{ $string(secrets) }}' } }], 'steps[0].headers.a');
    // Data that merely has a field called secrets is fine.
    const ok = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'ok', steps: [{ type: 'transform', expression: 'input.secrets' }] } });
    expect(ok.statusCode, ok.body).toBe(201);
    // Email steps may use secrets.
    const email = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'ok', steps: [{ type: 'email', to: 'a@example.com', subject: 's', text: 'token {{ secrets.API_TOKEN }}' }] } });
    expect(email.statusCode, email.body).toBe(201);
  });
});

describe('secrets at rest on SQLite', () => {
  it('the plain value is in neither the database file nor its WAL, and a key file is made with mode 0600', async () => {
    const t = await startTestServer('sqlite', { allowPrivateNetwork: true }); // no SKIPFLOW_SECRET_KEY
    const echo = await echoServer();
    try {
      const dbPath = t.database.url.slice('sqlite:'.length);
      const keyFile = join(dirname(dbPath), 'secret.key');
      expect(existsSync(keyFile)).toBe(true);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      expect((await t.request({ method: 'PUT', url: '/api/v1/secrets/TOKEN', body: { value: PLAIN } })).statusCode).toBe(200);
      const wf = await createWorkflow(t, [{ type: 'http', url: `${echo.url}/e`, headers: { authorization: '{{ secrets.TOKEN }}' } }]);
      const e = await finished(t, await run(t, wf));
      expect(e.status).toBe('success');
      expect(echo.seen.at(-1)!.authorization).toBe(PLAIN);
      for (const file of [dbPath, `${dbPath}-wal`]) {
        if (!existsSync(file)) continue;
        const bytes = readFileSync(file);
        expect(bytes.includes(Buffer.from(PLAIN)), file).toBe(false);
        expect(bytes.includes(Buffer.from(PLAIN, 'utf16le')), file).toBe(false);
      }
      expect(existsSync(`${dbPath}-wal`) || existsSync(dbPath)).toBe(true);
    } finally {
      echo.server.close();
      await t.close();
    }
  });
});

describeEachBackend('secrets without a key', (backend) => {
  it.runIf(backend === 'postgres')('on PostgreSQL without SKIPFLOW_SECRET_KEY writing a secret is 400 secrets_not_configured', async () => {
    const t = await startTestServer(backend);
    try {
      const res = await t.request({ method: 'PUT', url: '/api/v1/secrets/A', body: { value: 'v' } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error_code).toBe('secrets_not_configured');
      expect((await t.request({ method: 'GET', url: '/api/v1/secrets' })).json()).toEqual({ secrets: [], has_more: false });
    } finally {
      await t.close();
    }
  });
});

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const hang = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(hang);
  return { code, stdout, stderr };
}

describeEachBackend('the secret key', (backend) => {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  afterEach(async () => {
    await database?.drop();
    database = undefined;
  });

  it('a wrong key stops serve at start; rotate-key re-encrypts under a new key', async () => {
    database = await createTestDatabase(backend);
    const t = await startTestServer(backend, { secretKey: KEY, databaseUrl: database.url, allowPrivateNetwork: true });
    const echo = await echoServer();
    try {
      expect((await t.request({ method: 'PUT', url: '/api/v1/secrets/TOKEN', body: { value: PLAIN } })).statusCode).toBe(200);
      await t.server.close();
      const env = { SKIPFLOW_DATABASE_URL: database.url };
      const wrong = await cli(['serve', '--port', '0'], { ...env, SKIPFLOW_SECRET_KEY: OTHER_KEY });
      expect(wrong.code).not.toBe(0);
      const lines = wrong.stderr.split('\n').filter((l) => l.trim() !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^skipflow: .*secret key from SKIPFLOW_SECRET_KEY cannot decrypt the secrets stored in this database/);

      const rotated = await cli(['secrets', 'rotate-key', '--json'], { ...env, SKIPFLOW_SECRET_KEY: KEY, SKIPFLOW_NEW_SECRET_KEY: OTHER_KEY });
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(JSON.parse(rotated.stdout)).toMatchObject({ rotated: 1 });
      // The old key is now the wrong one; the new one works, and decrypts the secret.
      const old = await cli(['serve', '--port', '0'], { ...env, SKIPFLOW_SECRET_KEY: KEY });
      expect(old.code).not.toBe(0);
      const { startServer } = await import('./helpers/server.js');
      const { loadConfig } = await import('../src/config.js');
      const { silentLogger } = await import('./helpers/server.js');
      const again = await startServer(loadConfig({}, { databaseUrl: database.url, secretKey: OTHER_KEY, engineThread: false, allowPrivateNetwork: true, logLevel: 'silent', rateLimitPerMinute: 0 }), { logger: silentLogger, listen: false });
      try {
        const { readSecretValues } = await import('../src/secrets/store.js');
        const ws = t.workspaceId;
        const values = await readSecretValues(again.deps.db.db, Buffer.from(OTHER_KEY, 'hex'), ws, ['TOKEN']);
        expect(values.get('TOKEN')).toBe(PLAIN);
      } finally {
        await again.close();
      }
    } finally {
      echo.server.close();
      await t.close().catch(() => {});
    }
  });
});
