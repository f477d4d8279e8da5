import { afterEach, expect, it } from 'vitest';
import { type BackendName, createTestDatabase, describeEachBackend, type TestDatabase } from './helpers/backends.js';
import { type Child, spawnSkipflow } from './helpers/child.js';
import { startTestServer } from './helpers/server.js';

describeEachBackend('operations', (backend: BackendName) => {
  let child: Child | undefined;
  let database: TestDatabase | undefined;
  afterEach(async () => {
    child?.process.kill('SIGKILL');
    await database?.drop();
    child = undefined;
    database = undefined;
  });

  it('logs JSON lines, and on SIGTERM finishes in-flight requests and exits 0', async () => {
    database = await createTestDatabase(backend);
    child = spawnSkipflow(['serve', '--port', '0'], { SKIPFLOW_DATABASE_URL: database.url });
    const port = await child.waitForPort();
    const key = /sk_live_[0-9A-Za-z]{43}/.exec(child.output())![0];
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const wf = await fetch(`http://127.0.0.1:${port}/api/v1/workflows`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'w', steps: [{ type: 'transform', expression: '1' }] }),
    });
    expect(wf.status).toBe(201);
    // Fire requests and SIGTERM together: every request that was accepted is answered.
    const inFlight = Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${port}/api/v1/workflows`, { headers }).then((r) => r.status).catch(() => 'refused'));
    child.process.kill('SIGTERM');
    const statuses = await Promise.all(inFlight);
    expect(statuses.filter((s) => s !== 200 && s !== 'refused' && s !== 503)).toEqual([]);
    expect(await child.exited()).toBe(0);
    const lines = child.output().split('\n').filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(child.output()).toContain('"msg":"shutting down"');
  });

  it('answers a failure it did not expect with internal_error, a request id and no stack', async () => {
    const t = await startTestServer(backend);
    try {
      const ok = await t.request({ method: 'GET', url: '/api/v1/workflows' }); // caches the key
      expect(ok.statusCode).toBe(200);
      // Break the database under the running server: the next query throws.
      await t.server.deps.db.db.schema.dropTable('workflow_versions').execute();
      const res = await t.request({ method: 'GET', url: '/api/v1/workflows' });
      expect(res.statusCode).toBe(500);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['error', 'error_code']);
      expect(body.error_code).toBe('internal_error');
      expect(body.error).toContain(res.headers['x-request-id']);
      expect(res.body).not.toMatch(/at .*\.(ts|js):\d+/);
      expect(res.body).not.toMatch(/workflow_versions|SQLITE|relation/i);
    } finally {
      await t.close();
    }
  });
});
