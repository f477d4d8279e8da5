import { afterAll, beforeAll, expect, it } from 'vitest';
import { SkipFlowClient, SkipFlowError } from '../src/client/index.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/client.md: the client's methods for schedules, inbound webhooks, secrets,
// webhook endpoints, approvals, stop-many and deliveries, against a real server.

const KEY = 'ab'.repeat(32);

describeEachBackend('TypeScript client: automation routes', (backend) => {
  let t: TestServer;
  let client: SkipFlowClient;
  beforeAll(async () => {
    t = await startTestServer(backend, { secretKey: KEY, allowPrivateNetwork: true });
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    const address = t.server.app!.server.address() as { port: number };
    client = new SkipFlowClient({ baseUrl: `http://127.0.0.1:${address.port}`, apiKey: t.apiKey, retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 20 } });
  });
  afterAll(() => t?.close());

  it('schedules: create, get, list with has_more, iterate, update, delete', async () => {
    const wf = await client.workflows.create({ name: 'scheduled', steps: [{ type: 'transform', expression: '1' }] });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.schedules.create(wf.id, { cron: `${i} 9 * * 1-5`, timezone: 'Europe/Paris' })).schedule_id);
    const one = await client.schedules.get(ids[0]!);
    expect(one).toMatchObject({ workflow_id: wf.id, cron: '0 9 * * 1-5', timezone: 'Europe/Paris', enabled: true });
    expect(one.upcoming).toHaveLength(5);
    const page = await client.schedules.list({ workflowId: wf.id, limit: 2 });
    expect(page.schedules).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const walked: string[] = [];
    for await (const s of client.schedules.iterate({ workflowId: wf.id, limit: 1 })) walked.push(s.schedule_id);
    expect(walked.sort()).toEqual([...ids].sort());
    const off = await client.schedules.update(ids[0]!, { enabled: false });
    expect(off.enabled).toBe(false);
    expect(off.upcoming).toEqual([]);
    expect(await client.schedules.delete(ids[0]!)).toEqual({ schedule_id: ids[0], deleted: true });
    const bad = await client.schedules.create(wf.id, { cron: 'not a cron' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(SkipFlowError);
    expect((bad as SkipFlowError).status).toBe(400);
  });

  it('webhooks: the secret URL once, then list, get and delete', async () => {
    const wf = await client.workflows.create({ name: 'hooked', steps: [{ type: 'transform', expression: 'input.body' }] });
    const hook = await client.webhooks.create(wf.id, { name: 'pushes' });
    expect(hook.url).toMatch(/\/hooks\/wh_[0-9A-Za-z]{43}$/);
    const read = await client.webhooks.get(hook.webhook_id);
    expect(read.url).not.toBe(hook.url);
    const list = await client.webhooks.list({ workflowId: wf.id });
    expect(list.webhooks.map((w) => w.webhook_id)).toEqual([hook.webhook_id]);
    expect(list.has_more).toBe(false);
    expect(await client.webhooks.delete(hook.webhook_id)).toEqual({ webhook_id: hook.webhook_id, deleted: true });
  });

  it('secrets: set, list (names only), delete', async () => {
    const set = await client.secrets.set('API_TOKEN', 's3cr3t-value');
    expect(set.name).toBe('API_TOKEN');
    expect(JSON.stringify(set)).not.toContain('s3cr3t-value');
    const list = await client.secrets.list();
    expect(list.secrets.map((s) => s.name)).toContain('API_TOKEN');
    expect(JSON.stringify(list)).not.toContain('s3cr3t-value');
    expect(await client.secrets.delete('API_TOKEN')).toEqual({ name: 'API_TOKEN', deleted: true });
    expect((await client.secrets.list()).secrets.map((s) => s.name)).not.toContain('API_TOKEN');
  });

  it('webhook endpoints: create with its secret once, update, list, delete', async () => {
    const created = await client.webhookEndpoints.create({ url: 'http://127.0.0.1:9/hook', events: ['execution.failed'] });
    expect(created.secret).toMatch(/^whsec_/);
    const updated = await client.webhookEndpoints.update(created.endpoint_id, { enabled: false });
    expect(updated.enabled).toBe(false);
    expect((await client.webhookEndpoints.get(created.endpoint_id)).events).toEqual(['execution.failed']);
    expect((await client.webhookEndpoints.list()).endpoints.map((e) => e.endpoint_id)).toContain(created.endpoint_id);
    expect(await client.webhookEndpoints.delete(created.endpoint_id)).toEqual({ endpoint_id: created.endpoint_id, deleted: true });
  });

  it('approve and reject a waiting approval; stop many; list deliveries', async () => {
    const wf = await client.workflows.create({ name: 'approve me', steps: [{ type: 'approval', message: 'ok?' }, { type: 'transform', expression: '"shipped"' }] });
    const waitingFor = async (id: string) => {
      for (let i = 0; i < 200; i++) {
        if ((await client.executions.get(id)).waiting_for) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error('never waited');
    };
    const a = await client.workflows.runAsync(wf.id, {});
    await waitingFor(a.execution_id);
    const approved = await client.executions.approve(a.execution_id, 0, { data: { by: 'ops' }, comment: 'fine' });
    expect(approved).toMatchObject({ status: 'completed', result: { approved: true, data: { by: 'ops' }, comment: 'fine' } });
    expect((await client.executions.waitFor(a.execution_id, { timeoutMs: 10_000 })).status).toBe('success');

    const r = await client.workflows.runAsync(wf.id, {});
    await waitingFor(r.execution_id);
    expect(await client.executions.reject(r.execution_id, 0, { comment: 'no' })).toMatchObject({ status: 'failed', error_code: 'rejected' });
    expect((await client.executions.get(r.execution_id)).status).toBe('failed');
    expect((await client.executions.deliveries(r.execution_id)).deliveries).toEqual([]);

    const s1 = await client.workflows.runAsync(wf.id, {});
    const s2 = await client.workflows.runAsync(wf.id, {});
    expect(await client.executions.stopMany({ workflowId: wf.id })).toEqual({ stopped: 2 });
    for (const id of [s1.execution_id, s2.execution_id]) expect((await client.executions.get(id)).status).toBe('stopped');
  });
});
