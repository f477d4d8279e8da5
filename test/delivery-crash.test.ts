import { createServer } from 'node:net';
import { statSync } from 'node:fs';
import { afterEach, beforeAll, expect, it } from 'vitest';
import type { Json } from './helpers/api.js';
import { type BackendName, type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { CLI, type Child, spawnSkipflow } from './helpers/child.js';
import { type Receiver, startReceiver, verifyStandardWebhook } from './helpers/receiver.js';
import { eventually, openMigrated } from './helpers/server.js';

// The outbox survives kill -9: the server is killed the moment the execution's final
// status is visible (its delivery row committed with it, the receiver not yet
// reachable), and the notification still arrives after the restart, signed, with the
// delivery's id as webhook-id.

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describeEachBackend('notifications survive kill -9 right after the final status commits', (backend: BackendName) => {
  const children: Child[] = [];
  let database: TestDatabase | undefined;
  let receiver: Receiver | undefined;

  beforeAll(() => {
    if (statSync(CLI, { throwIfNoEntry: false }) === undefined) throw new Error('dist/ is missing: run `npm run build` before this test');
  });
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.process.exitCode === null && child.process.signalCode === null) {
        child.process.kill('SIGKILL');
        await child.exited();
      }
    }
    await receiver?.close();
    await database?.drop();
  });

  const spawnAll = () => {
    const child = spawnSkipflow(['serve', '--port', '0'], {
      SKIPFLOW_DATABASE_URL: database!.url,
      SKIPFLOW_POLL_INTERVAL_MS: '100',
      SKIPFLOW_RATE_LIMIT: '0',
      SKIPFLOW_ALLOW_PRIVATE_NETWORK: '1',
      HOST: '127.0.0.1',
    });
    children.push(child);
    return child;
  };

  it('the delivery arrives after the restart, with the same webhook-id', async () => {
    database = await createTestDatabase(backend);
    const hookPort = await freePort(); // nothing listens there yet
    const first = spawnAll();
    const port = await first.waitForPort();
    const key = /sk_live_[0-9A-Za-z]{43}/.exec(first.output())![0];
    const call = async (p: number, method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${p}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Json };
    };
    const endpoint = await call(port, 'POST', '/api/v1/webhook-endpoints', { url: `http://127.0.0.1:${hookPort}/hook` });
    expect(endpoint.status).toBe(201);
    const wf = await call(port, 'POST', '/api/v1/workflows', { name: 'w', steps: [{ type: 'transform', expression: '"done"' }] });
    const started = await call(port, 'POST', `/api/v1/workflows/${wf.json.id}/run-async`, {});
    const id = started.json.execution_id as string;
    await eventually(async () => (await call(port, 'GET', `/api/v1/executions/${id}`)).json.status === 'success', 15_000, 5);
    first.process.kill('SIGKILL');
    await first.exited();

    const inspect = await openMigrated(database.url);
    try {
      const rows = await inspect.db.selectFrom('webhook_deliveries').selectAll().where('execution_id', '=', id).execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.status).toBe('pending');
      // Killed in the middle of an attempt, the delivery stays leased to the dead
      // process until its lease (60 s) runs out: let that time pass.
      if (rows[0]!.lease_owner !== null) {
        await inspect.db.updateTable('webhook_deliveries').set({ available_at: Date.now() }).where('id', '=', rows[0]!.id).execute();
      }
      receiver = await startReceiver([{ status: 200 }], hookPort);
      const second = spawnAll();
      await second.waitForPort();
      const got = await eventually(async () => (receiver!.received.length > 0 ? receiver!.received[0] : null), 30_000);
      expect(got.headers['webhook-id']).toBe(rows[0]!.id);
      expect(verifyStandardWebhook(endpoint.json.secret, got.headers, got.body)).toBe(true);
      expect(JSON.parse(got.body)).toMatchObject({ type: 'execution.succeeded', data: { execution_id: id, status: 'success' } });
      await eventually(async () => (await inspect.db.selectFrom('webhook_deliveries').select('status').where('id', '=', rows[0]!.id).executeTakeFirst())?.status === 'delivered');
    } finally {
      await inspect.close();
    }
  }, 60_000);
});
