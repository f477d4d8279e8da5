import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatTimestamp } from '../src/lib/time.js';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { type Json, createWorkflow, finished, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type Receiver, startReceiver, verifyStandardWebhook } from './helpers/receiver.js';
import { DeliveryWorker } from '../src/notifications/delivery-worker.js';
import { type TestServer, eventually, openTestDb, settle, silentLogger, startTestServer } from './helpers/server.js';

// Completion notifications: endpoints, the Standard Webhooks signature, the retry
// schedule (driven by the injected clock), 410, Retry-After, filters, redelivery.
// The engine runs on the real clock (its claims compare with the database's); the
// deliveries are sent by a DeliveryWorker of the test's own with an injected clock,
// which the test sets: `caughtUp()` moves it to just after the real time.

const SECOND = 1000;
const MINUTE = 60 * SECOND;

describeEachBackend('notifications: signed webhooks when an execution ends', (backend) => {
  let t: TestServer;
  let receiver: Receiver;
  let now = 0;
  const clock = { now: () => now };
  const caughtUp = () => (now = Date.now() + 1000);
  let sender: DeliveryWorker;
  const finishedNow = async (id: string) => {
    const e = await finished(t, id);
    caughtUp();
    return e;
  };

  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true, pollIntervalMs: 50 });
    await t.server.deliveries!.stop();
    sender = new DeliveryWorker({ db: t.server.deps.db, clock, logger: silentLogger, allowPrivateNetwork: true, pollIntervalMs: 50 });
    sender.start();
  });
  afterAll(async () => {
    await sender?.stop();
    await t?.close();
  });
  beforeEach(async () => {
    now = 0; // nothing is due for the test's sender until the test says so
    receiver = await startReceiver();
  });
  afterEach(async () => {
    // Endpoints of one test must not receive the next test's executions.
    const list = (await t.request({ method: 'GET', url: '/api/v1/webhook-endpoints' })).json().endpoints as Json[];
    for (const e of list) await t.request({ method: 'DELETE', url: `/api/v1/webhook-endpoints/${e.endpoint_id}` });
    await receiver.close();
  });

  const addEndpoint = async (body: Json = {}) => {
    const res = await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body: { url: receiver.url, ...body } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as Json;
  };
  const deliveriesOf = async (executionId: string) => {
    const res = await t.request({ method: 'GET', url: `/api/v1/executions/${executionId}/deliveries` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().has_more).toBe(false);
    return res.json().deliveries as Json[];
  };
  const failingWorkflow = () => createWorkflow(t, [{ type: 'transform', name: 'ok', expression: '1' }, { type: 'transform', name: 'boom', expression: '$error("boom")' }]);

  it('endpoints: create (secret once), list, get, patch, delete, validation', async () => {
    const created = await addEndpoint();
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(created.secret.slice(6), 'base64')).toHaveLength(32);
    expect(created).toMatchObject({ url: receiver.url, events: ['execution.succeeded', 'execution.failed', 'execution.stopped'], workflow_id: null, enabled: true });
    const got = (await t.request({ method: 'GET', url: `/api/v1/webhook-endpoints/${created.endpoint_id}` })).json();
    expect(got.secret).toBeUndefined();
    expect(got).toEqual({ ...created, secret: undefined });
    const list = (await t.request({ method: 'GET', url: '/api/v1/webhook-endpoints' })).json();
    expect(list.endpoints.map((e: Json) => e.endpoint_id)).toContain(created.endpoint_id);
    const patched = await t.request({ method: 'PATCH', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, body: { events: ['execution.failed'], enabled: false } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ events: ['execution.failed'], enabled: false });

    for (const body of [{ url: 'ftp://x/y' }, { url: 'not a url' }, { url: receiver.url, events: [] }, { url: receiver.url, events: ['execution.nope'] }, { url: receiver.url, extra: 1 }]) {
      const res = await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body });
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error_code).toBe('invalid_request');
    }
    const unknownWorkflow = await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body: { url: receiver.url, workflow_id: 'a'.repeat(24) } });
    expect(unknownWorkflow.statusCode).toBe(404);
    const other = await t.createWorkspace();
    expect((await t.request({ method: 'GET', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, key: other.apiKey })).statusCode).toBe(404);
    expect((await t.request({ method: 'PATCH', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, key: other.apiKey, body: { enabled: true } })).statusCode).toBe(404);
    expect((await t.request({ method: 'DELETE', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, key: other.apiKey })).statusCode).toBe(404);
    expect((await t.request({ method: 'GET', url: '/api/v1/webhook-endpoints', key: other.apiKey })).json()).toEqual({ endpoints: [], has_more: false });
    expect((await t.request({ method: 'PATCH', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, body: { url: 'gopher://x' } })).statusCode).toBe(400);
    expect((await t.request({ method: 'PATCH', url: `/api/v1/webhook-endpoints/${created.endpoint_id}`, body: { secret: 'x' } })).statusCode).toBe(400);
    expect((await t.request({ method: 'GET', url: '/api/v1/webhook-endpoints/nope' })).statusCode).toBe(404);
    const deleted = await t.request({ method: 'DELETE', url: `/api/v1/webhook-endpoints/${created.endpoint_id}` });
    expect(deleted.json()).toEqual({ endpoint_id: created.endpoint_id, deleted: true });
    expect((await t.request({ method: 'GET', url: `/api/v1/webhook-endpoints/${created.endpoint_id}` })).statusCode).toBe(404);
  });

  it('sends a signed POST with the Standard Webhooks headers and the execution without steps', async () => {
    const endpoint = await addEndpoint();
    const wf = await failingWorkflow();
    const id = await run(t, wf, { a: 1 });
    const execution = await finishedNow( id);
    expect(execution.status).toBe('failed');
    const [got] = await eventually(async () => (receiver.received.length > 0 ? receiver.received : null));
    expect(got!.headers['content-type']).toBe('application/json');
    expect(verifyStandardWebhook(endpoint.secret, got!.headers, got!.body)).toBe(true);
    expect(verifyStandardWebhook(endpoint.secret, got!.headers, got!.body + ' ')).toBe(false);
    expect(got!.headers['webhook-timestamp']).toBe(String(Math.floor(now / 1000)));
    const body = JSON.parse(got!.body);
    const { steps: _steps, ...withoutSteps } = execution;
    expect(body).toEqual({ type: 'execution.failed', timestamp: execution.completed_at, data: withoutSteps });
    const deliveries = await eventually(async () => {
      const d = await deliveriesOf(id);
      return d[0]?.status === 'delivered' ? d : null;
    });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ delivery_id: got!.headers['webhook-id'], endpoint_id: endpoint.endpoint_id, event: 'execution.failed', attempts: 1, last_status_code: 200, last_error: null, next_attempt_at: null });
  });

  it('a receiver failing twice then succeeding gets exactly the scheduled attempts, same webhook-id', async () => {
    receiver.script = [{ status: 500 }, { status: 503 }, { status: 200 }];
    await addEndpoint();
    const id = await run(t, await failingWorkflow());
    await finishedNow( id);
    await eventually(async () => receiver.received.length === 1);
    const first = await eventually(async () => {
      const [d] = await deliveriesOf(id);
      return d?.attempts === 1 ? d : null;
    });
    const start = now;
    expect(first).toMatchObject({ status: 'pending', last_status_code: 500, next_attempt_at: formatTimestamp(start + 5 * SECOND) });
    // Not before its time.
    now += 4 * SECOND;
    await settle(300);
    expect(receiver.received).toHaveLength(1);
    now += 1 * SECOND;
    await eventually(async () => receiver.received.length === 2);
    const second = await eventually(async () => {
      const [d] = await deliveriesOf(id);
      return d?.attempts === 2 ? d : null;
    });
    expect(second).toMatchObject({ status: 'pending', last_status_code: 503, next_attempt_at: formatTimestamp(start + 5 * SECOND + 5 * MINUTE) });
    now += 5 * MINUTE - SECOND;
    await settle(300);
    expect(receiver.received).toHaveLength(2);
    now += SECOND;
    await eventually(async () => receiver.received.length === 3);
    const third = await eventually(async () => {
      const [d] = await deliveriesOf(id);
      return d?.status === 'delivered' ? d : null;
    });
    expect(third).toMatchObject({ attempts: 3, last_status_code: 200, delivered_at: formatTimestamp(start + 5 * SECOND + 5 * MINUTE) });
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([third.delivery_id]));
    now += 24 * 60 * MINUTE;
    await settle(300);
    expect(receiver.received).toHaveLength(3);
  });

  it('Retry-After makes the next attempt wait the longer of the two (up to an hour)', async () => {
    receiver.script = [{ status: 429, headers: { 'retry-after': '120' } }, { status: 503, headers: { 'retry-after': '86400' } }, { status: 200 }];
    await addEndpoint();
    const id = await run(t, await failingWorkflow());
    await finishedNow( id);
    const start = now;
    const first = await eventually(async () => {
      const [d] = await deliveriesOf(id);
      return d?.attempts === 1 ? d : null;
    });
    const seconds = (ms: number) => Math.floor(ms / 1000) * 1000;
    expect(Date.parse(first.next_attempt_at)).toBe(seconds(start + 120 * SECOND));
    now += 120 * SECOND;
    const second = await eventually(async () => {
      const [d] = await deliveriesOf(id);
      return d?.attempts === 2 ? d : null;
    });
    // 5 min scheduled, 1 day asked: capped at one hour.
    expect(Date.parse(second.next_attempt_at)).toBe(seconds(now + 60 * MINUTE));
  });

  it('410 fails the delivery at once and disables the endpoint', async () => {
    receiver.script = [{ status: 410 }];
    const endpoint = await addEndpoint();
    const id = await run(t, await failingWorkflow());
    await finishedNow( id);
    const [d] = await eventually(async () => {
      const list = await deliveriesOf(id);
      return list[0]?.status === 'failed' ? list : null;
    });
    expect(d).toMatchObject({ attempts: 1, last_status_code: 410, next_attempt_at: null });
    const got = (await t.request({ method: 'GET', url: `/api/v1/webhook-endpoints/${endpoint.endpoint_id}` })).json();
    expect(got.enabled).toBe(false);
    // A disabled endpoint gets nothing more.
    const next = await run(t, await failingWorkflow());
    await finishedNow( next);
    await settle(300);
    expect(await deliveriesOf(next)).toEqual([]);
    expect(receiver.received).toHaveLength(1);
  });

  it('events and workflow_id filters; redirects are not followed; redeliver sends again with the same id', async () => {
    const wfA = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const wfB = await createWorkflow(t, [{ type: 'transform', expression: '2' }]);
    await addEndpoint({ events: ['execution.failed'] });
    const onlyA = await addEndpoint({ workflow_id: wfA, events: ['execution.succeeded'] });
    const a = await run(t, wfA);
    const b = await run(t, wfB);
    await finishedNow( a);
    await finishedNow( b);
    const [da] = await eventually(async () => {
      const list = await deliveriesOf(a);
      return list[0]?.status === 'delivered' ? list : null;
    });
    expect(da!.endpoint_id).toBe(onlyA.endpoint_id);
    expect(await deliveriesOf(a)).toHaveLength(1);
    expect(await deliveriesOf(b)).toEqual([]);

    const before = receiver.received.length;
    const again = await t.request({ method: 'POST', url: `/api/v1/deliveries/${da!.delivery_id}/redeliver` });
    expect(again.statusCode, again.body).toBe(202);
    expect(again.json()).toMatchObject({ delivery_id: da!.delivery_id, status: 'pending' });
    await eventually(async () => receiver.received.length === before + 1);
    expect(receiver.received.at(-1)!.headers['webhook-id']).toBe(da!.delivery_id);
    expect((await t.request({ method: 'POST', url: `/api/v1/deliveries/${'f'.repeat(24)}/redeliver` })).statusCode).toBe(404);
    const other = await t.createWorkspace();
    expect((await t.request({ method: 'POST', url: `/api/v1/deliveries/${da!.delivery_id}/redeliver`, key: other.apiKey })).statusCode).toBe(404);
    expect((await t.request({ method: 'GET', url: `/api/v1/executions/${a}/deliveries`, key: other.apiKey })).statusCode).toBe(404);

    // A redirect is an answer like any other non-2xx: not followed, retried later.
    receiver.script = [{ status: 302, headers: { location: receiver.url + '/elsewhere' } }];
    const c = await run(t, wfA);
    await finishedNow( c);
    const [dc] = await eventually(async () => {
      const list = await deliveriesOf(c);
      return list[0]?.attempts === 1 ? list : null;
    });
    expect(dc).toMatchObject({ status: 'pending', last_status_code: 302 });
    expect(receiver.received.filter((r) => r.headers['webhook-id'] === dc!.delivery_id)).toHaveLength(1);
  });

  it('a stop records its notification in the same transaction', async () => {
    await addEndpoint({ events: ['execution.stopped'] });
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    const id = await run(t, wf);
    await eventually(async () => (await t.server.deps.db.db.selectFrom('execution_steps').select('status').where('execution_id', '=', id).executeTakeFirst())?.status === 'running');
    const stop = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
    expect(stop.statusCode).toBe(200);
    caughtUp();
    const [d] = await eventually(async () => {
      const list = await deliveriesOf(id);
      return list[0]?.status === 'delivered' ? list : null;
    });
    expect(d!.event).toBe('execution.stopped');
    expect(JSON.parse(receiver.received.at(-1)!.body).data.status).toBe('stopped');
  });
});

describeEachBackend('notifications: several senders share the outbox', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true, pollIntervalMs: 50 });
    await t.server.deliveries!.stop();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('three senders (own connections on PostgreSQL): every delivery is sent once, by one of them', async () => {
    const receiver = await startReceiver();
    const handles = backend === 'postgres' ? [1, 2, 3].map(() => openTestDb(t.database.url, { poolSize: 3 })) : [t.server.deps.db];
    const senders = [0, 1, 2].map(
      (i) => new DeliveryWorker({ db: handles[i % handles.length]!, clock: { now: () => Date.now() }, logger: silentLogger, allowPrivateNetwork: true, pollIntervalMs: 20, concurrency: 4 }),
    );
    try {
      expect((await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body: { url: receiver.url } })).statusCode).toBe(201);
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
      const ids = await Promise.all(Array.from({ length: 30 }, () => run(t, wf)));
      for (const id of ids) await finished(t, id);
      for (const s of senders) s.start();
      await eventually(async () => receiver.received.length >= 30, 20_000);
      await settle(500);
      const webhookIds = receiver.received.map((r) => String(r.headers['webhook-id']));
      expect(webhookIds).toHaveLength(30);
      expect(new Set(webhookIds).size).toBe(30);
      const executions = new Set(receiver.received.map((r) => JSON.parse(r.body).data.execution_id as string));
      expect(executions).toEqual(new Set(ids));
    } finally {
      for (const s of senders) await s.stop();
      if (backend === 'postgres') for (const h of handles) await h.close();
      await receiver.close();
    }
  });

  it('a sender shutting down cancels its attempt in flight without counting it; another sender delivers', async () => {
    const hanging = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const receiver = await startReceiver();
    const clock = { now: () => Date.now() };
    const first = new DeliveryWorker({ db: t.server.deps.db, clock, logger: silentLogger, allowPrivateNetwork: true, pollIntervalMs: 20 });
    try {
      const endpoint = await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body: { url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/h` } });
      const id = await run(t, await createWorkflow(t, [{ type: 'transform', expression: '1' }]));
      await finished(t, id);
      first.start();
      const mine = () => t.server.deps.db.db.selectFrom('webhook_deliveries').selectAll().where('execution_id', '=', id).where('endpoint_id', '=', endpoint.json().endpoint_id);
      await eventually(async () => (await mine().executeTakeFirst())?.lease_owner === first.id);
      const t0 = Date.now();
      await first.stop();
      expect(Date.now() - t0).toBeLessThan(5_000); // not the 15 s attempt timeout
      const row = await mine().executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', attempts: 0, lease_owner: null });
      await t.request({ method: 'PATCH', url: `/api/v1/webhook-endpoints/${endpoint.json().endpoint_id}`, body: { url: receiver.url } });
      const second = new DeliveryWorker({ db: t.server.deps.db, clock, logger: silentLogger, allowPrivateNetwork: true, pollIntervalMs: 20 });
      second.start();
      try {
        await eventually(async () => receiver.received.some((r) => r.headers['webhook-id'] === row.id));
      } finally {
        await second.stop();
      }
      await t.request({ method: 'DELETE', url: `/api/v1/webhook-endpoints/${endpoint.json().endpoint_id}` });
    } finally {
      await first.stop();
      await receiver.close();
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });
});

describeEachBackend('notifications: the SSRF guard of http steps applies', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: false, pollIntervalMs: 50 });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a loopback endpoint is refused at send time without SKIPFLOW_ALLOW_PRIVATE_NETWORK', async () => {
    const receiver = await startReceiver();
    try {
      expect((await t.request({ method: 'POST', url: '/api/v1/webhook-endpoints', body: { url: receiver.url } })).statusCode).toBe(201);
      const id = await run(t, await createWorkflow(t, [{ type: 'transform', expression: '1' }]));
      await finished(t, id);
      const d = await eventually(async () => {
        const list = (await t.request({ method: 'GET', url: `/api/v1/executions/${id}/deliveries` })).json().deliveries as Json[];
        return list[0]?.attempts === 1 ? list[0] : null;
      });
      expect(d.last_error).toMatch(/loopback|private|blocked/i);
      expect(receiver.received).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });
});
