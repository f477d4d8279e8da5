import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Json, createWorkflow, finished } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/triggers.md#inbound-webhooks: secret URLs, signatures, bodies, dedupe, sync mode.

describeEachBackend('inbound webhooks', (backend) => {
  let t: TestServer;
  let workflowId: string;

  beforeAll(async () => {
    t = await startTestServer(backend, { publicUrl: 'https://hooks.example.com' });
    workflowId = await createWorkflow(t, [{ type: 'transform', expression: 'input' }]);
  });
  afterAll(async () => t?.close());

  const create = (body: unknown, wf = workflowId) => t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/webhooks`, body });
  const webhook = async (body: Json = {}, wf = workflowId) => {
    const res = await create(body, wf);
    expect(res.statusCode, res.body).toBe(201);
    const hook = res.json() as Json;
    return { ...hook, path: new URL(hook.url as string).pathname } as Json;
  };
  const deliver = (path: string, opts: { body?: string | Buffer; type?: string | null; headers?: Record<string, string> } = {}) =>
    t.server.app!.inject({
      method: 'POST',
      url: path,
      headers: { ...(opts.type === null ? {} : { 'content-type': opts.type ?? 'application/json' }), ...opts.headers },
      ...(opts.body !== undefined ? { payload: opts.body } : {}),
    });
  const executionsOf = async (hookId: string) =>
    (await t.server.deps.db.db.selectFrom('executions').selectAll().where('trigger_type', '=', 'webhook').execute()).filter((r) => JSON.parse(r.trigger!).webhook_id === hookId);

  it('shows the secret URL once, then only its first 8 characters', async () => {
    const hook = await webhook({ name: 'GitHub pushes', signature: { type: 'hmac_sha256', header: 'X-Hub-Signature-256', prefix: 'sha256=', encoding: 'hex', secret: 's3cret' }, dedupe_header: 'X-GitHub-Delivery' });
    expect(hook.url).toMatch(/^https:\/\/hooks\.example\.com\/hooks\/wh_[0-9A-Za-z]{43}$/);
    expect(hook).toMatchObject({ workflow_id: workflowId, name: 'GitHub pushes', mode: 'async', sync_timeout_seconds: 10, dedupe_header: 'X-GitHub-Delivery', last_received_at: null, signature: { type: 'hmac_sha256', header: 'X-Hub-Signature-256', prefix: 'sha256=', encoding: 'hex' } });
    expect(JSON.stringify(hook)).not.toContain('s3cret');
    const got = (await t.request({ method: 'GET', url: `/api/v1/webhooks/${hook.webhook_id}` })).json();
    expect(got.url).toBe(`https://hooks.example.com/hooks/${hook.path.slice(7, 15)}`);
    expect(JSON.stringify(got)).not.toContain('s3cret');
    const list = (await t.request({ method: 'GET', url: `/api/v1/webhooks?workflow_id=${workflowId}` })).json();
    expect(list.webhooks.map((w: Json) => w.webhook_id)).toContain(hook.webhook_id);
    expect(list.has_more).toBe(false);
    const one = (await t.request({ method: 'GET', url: '/api/v1/webhooks?limit=1' })).json();
    expect(one.webhooks).toHaveLength(1);
    const stored = JSON.stringify(await t.server.deps.db.db.selectFrom('webhooks').selectAll().execute());
    expect(stored).not.toContain(hook.path.slice(7));
  });

  it('starts an execution without an API key; input is method, headers (credentials removed), query, body', async () => {
    const hook = await webhook();
    const res = await deliver(`${hook.path}?a=1&b=x`, { body: '{"hello":"world"}', headers: { authorization: 'Bearer x', cookie: 'c=1', 'proxy-authorization': 'p', 'X-Custom': 'Yes' } });
    expect(res.statusCode, res.body).toBe(202);
    const accepted = res.json();
    expect(accepted).toMatchObject({ workflow_id: workflowId, status: 'running' });
    const done = await finished(t, accepted.execution_id);
    expect(done.trigger).toEqual({ type: 'webhook', webhook_id: hook.webhook_id });
    const input = done.input;
    expect(input).toMatchObject({ method: 'POST', query: { a: '1', b: 'x' }, body: { hello: 'world' } });
    expect(input.headers['x-custom']).toBe('Yes');
    for (const h of ['authorization', 'cookie', 'proxy-authorization']) expect(input.headers).not.toHaveProperty(h);
    expect((await t.request({ method: 'GET', url: `/api/v1/webhooks/${hook.webhook_id}` })).json().last_received_at).not.toBeNull();
  });

  it('accepts JSON, form-encoded and text bodies; refuses other types (415), bad JSON (400) and over 1 MiB (413)', async () => {
    const hook = await webhook();
    const input = async (res: Awaited<ReturnType<typeof deliver>>) => {
      expect(res.statusCode, res.body).toBe(202);
      return (await finished(t, res.json().execution_id)).input.body;
    };
    expect(await input(await deliver(hook.path, { body: '[1,2]' }))).toEqual([1, 2]);
    expect(await input(await deliver(hook.path, { body: 'a=1&b=two+words', type: 'application/x-www-form-urlencoded' }))).toEqual({ a: '1', b: 'two words' });
    expect(await input(await deliver(hook.path, { body: 'plain text', type: 'text/plain; charset=utf-8' }))).toBe('plain text');
    expect(await input(await deliver(hook.path, { type: null }))).toBeNull();
    const before = (await executionsOf(hook.webhook_id)).length;
    const bad = [
      [await deliver(hook.path, { body: '<x/>', type: 'application/xml' }), 415, 'unsupported_media_type'],
      [await deliver(hook.path, { body: '{nope', type: 'application/json' }), 400, 'invalid_request'],
      [await deliver(hook.path, { body: 'x'.repeat(1024 * 1024 + 1), type: 'text/plain' }), 413, 'payload_too_large'],
      [await deliver('/hooks/wh_' + 'A'.repeat(43), { body: '{}' }), 404, 'not_found'],
      [await deliver('/hooks/nope', { body: '{}' }), 404, 'not_found'],
    ] as const;
    for (const [res, status, code] of bad) {
      expect(res.statusCode, res.body).toBe(status);
      expect(res.json().error_code).toBe(code);
    }
    expect(await executionsOf(hook.webhook_id)).toHaveLength(before);
  });

  it('hmac_sha256 signatures: hex and base64, with and without prefix; wrong or missing → 401', async () => {
    const body = '{"ref":"refs/heads/main"}';
    const mac = (secret: string, text: string) => createHmac('sha256', secret).update(text);
    const hex = await webhook({ signature: { type: 'hmac_sha256', header: 'X-Hub-Signature-256', prefix: 'sha256=', encoding: 'hex', secret: 'gh' } });
    const b64 = await webhook({ signature: { type: 'hmac_sha256', header: 'X-Sig', encoding: 'base64', secret: 'other' } });
    expect((await deliver(hex.path, { body, headers: { 'X-Hub-Signature-256': 'sha256=' + mac('gh', body).digest('hex') } })).statusCode).toBe(202);
    expect((await deliver(b64.path, { body, headers: { 'X-Sig': mac('other', body).digest('base64') } })).statusCode).toBe(202);
    const wrong = [
      await deliver(hex.path, { body, headers: { 'X-Hub-Signature-256': 'sha256=' + mac('bad', body).digest('hex') } }),
      await deliver(hex.path, { body: body + ' ', headers: { 'X-Hub-Signature-256': 'sha256=' + mac('gh', body).digest('hex') } }),
      await deliver(hex.path, { body, headers: { 'X-Hub-Signature-256': mac('gh', body).digest('hex') } }),
      await deliver(hex.path, { body, headers: { 'X-Hub-Signature-256': 'sha256=zz' } }),
      await deliver(hex.path, { body }),
      await deliver(b64.path, { body, headers: { 'X-Sig': mac('bad', body).digest('base64') } }),
    ];
    for (const res of wrong) {
      expect(res.statusCode).toBe(401);
      expect(res.json().error_code).toBe('invalid_signature');
    }
    expect(await executionsOf(hex.webhook_id)).toHaveLength(1);
    expect(await executionsOf(b64.webhook_id)).toHaveLength(1);
  });

  it('standard_webhooks signatures: valid, wrong, stale (over 5 minutes) and missing', async () => {
    const key = Buffer.from('0123456789abcdef0123456789abcdef');
    const secret = 'whsec_' + key.toString('base64');
    const hook = await webhook({ signature: { type: 'standard_webhooks', secret } });
    expect(hook.signature).toEqual({ type: 'standard_webhooks' });
    const body = '{"type":"user.created"}';
    const sign = (id: string, ts: number, text: string, k = key) => 'v1,' + createHmac('sha256', k).update(`${id}.${ts}.${text}`).digest('base64');
    const nowS = Math.floor(Date.now() / 1000);
    const ok = await deliver(hook.path, { body, headers: { 'webhook-id': 'msg_1', 'webhook-timestamp': String(nowS), 'webhook-signature': `v1,AAAA ${sign('msg_1', nowS, body)}` } });
    expect(ok.statusCode, ok.body).toBe(202);
    const cases: Record<string, string>[] = [
      { 'webhook-id': 'msg_2', 'webhook-timestamp': String(nowS), 'webhook-signature': sign('msg_2', nowS, body, Buffer.from('x')) },
      { 'webhook-id': 'msg_3', 'webhook-timestamp': String(nowS - 360), 'webhook-signature': sign('msg_3', nowS - 360, body) },
      { 'webhook-id': 'msg_4', 'webhook-timestamp': String(nowS + 360), 'webhook-signature': sign('msg_4', nowS + 360, body) },
      { 'webhook-id': 'msg_5', 'webhook-timestamp': String(nowS), 'webhook-signature': sign('other', nowS, body) },
      { 'webhook-id': 'msg_6', 'webhook-timestamp': String(nowS) },
      {},
    ];
    for (const headers of cases) {
      const res = await deliver(hook.path, { body, headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      expect(res.json().error_code).toBe('invalid_signature');
    }
    expect(await executionsOf(hook.webhook_id)).toHaveLength(1);
  });

  it('stripe signatures: t=…,v1=… over "t.body", wrong and stale refused', async () => {
    const secret = 'whsec_test_abc123';
    const hook = await webhook({ signature: { type: 'stripe', secret } });
    expect(hook.signature).toEqual({ type: 'stripe' });
    const body = '{"id":"evt_1","type":"invoice.paid"}';
    const sign = (ts: number, text: string, key = secret) => createHmac('sha256', key).update(`${ts}.${text}`).digest('hex');
    const ts = Math.floor(Date.now() / 1000);
    const ok = await deliver(hook.path, { body, headers: { 'Stripe-Signature': `t=${ts},v1=${'0'.repeat(64)},v1=${sign(ts, body)},v0=abc` } });
    expect(ok.statusCode, ok.body).toBe(202);
    for (const value of [`t=${ts},v1=${sign(ts, body, 'whsec_other')}`, `t=${ts - 301},v1=${sign(ts - 301, body)}`, `t=${ts},v1=${sign(ts, body + 'x')}`, `v1=${sign(ts, body)}`, `t=${ts}`]) {
      const res = await deliver(hook.path, { body, headers: { 'Stripe-Signature': value } });
      expect(res.statusCode, value).toBe(401);
      expect(res.json().error_code).toBe('invalid_signature');
    }
    expect((await deliver(hook.path, { body })).statusCode).toBe(401);
    expect(await executionsOf(hook.webhook_id)).toHaveLength(1);
  });

  it('20 concurrent deliveries with one dedupe key start one execution; the rest replay it whatever the body', async () => {
    const hook = await webhook({ dedupe_header: 'X-GitHub-Delivery' });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => deliver(hook.path, { body: JSON.stringify({ i }), headers: { 'X-GitHub-Delivery': 'delivery-1' } })));
    for (const res of answers) expect(res.statusCode, res.body).toBe(202);
    expect(new Set(answers.map((r) => r.json().execution_id)).size).toBe(1);
    expect(answers.filter((r) => r.headers['x-idempotent-replayed'] === 'true')).toHaveLength(19);
    expect(await executionsOf(hook.webhook_id)).toHaveLength(1);
    // Idempotency-Key works too; another key starts another; another webhook's same key is its own.
    const plain = await webhook();
    const a = await deliver(plain.path, { body: '{}', headers: { 'Idempotency-Key': 'k1' } });
    const b = await deliver(plain.path, { body: '{"x":1}', headers: { 'Idempotency-Key': 'k1' } });
    const c = await deliver(plain.path, { body: '{}', headers: { 'Idempotency-Key': 'k2' } });
    expect(b.json().execution_id).toBe(a.json().execution_id);
    expect(b.headers['x-idempotent-replayed']).toBe('true');
    expect(c.json().execution_id).not.toBe(a.json().execution_id);
    const d = await deliver(hook.path, { body: '{}', headers: { 'X-GitHub-Delivery': 'k1' } });
    expect(d.json().execution_id).not.toBe(a.json().execution_id);
    // Without a key nothing is deduplicated.
    await deliver(plain.path, { body: '{}' });
    await deliver(plain.path, { body: '{}' });
    expect(await executionsOf(plain.webhook_id)).toHaveLength(4);
  });

  it('sync mode answers 200 with the result when the execution ends in time, else 202', async () => {
    const fast = await webhook({ mode: 'sync', sync_timeout_seconds: 10 });
    const res = await deliver(fast.path, { body: '{"n":2}' });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ status: 'success', error: null });
    expect(body.result.body).toEqual({ n: 2 });
    expect(Object.keys(body).sort()).toEqual(['error', 'execution_id', 'result', 'status']);
    // A repeated delivery key replays the same answer.
    const keyed = await deliver(fast.path, { body: '{"n":3}', headers: { 'Idempotency-Key': 'sync-1' } });
    const replay = await deliver(fast.path, { body: '{"n":4}', headers: { 'Idempotency-Key': 'sync-1' } });
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['x-idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(keyed.json());
    expect(keyed.json().result.body).toEqual({ n: 3 });
    const slowWf = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
    const slow = await webhook({ mode: 'sync', sync_timeout_seconds: 1 }, slowWf);
    const late = await deliver(slow.path, { body: '{}' });
    expect(late.statusCode, late.body).toBe(202);
    expect(late.json()).toMatchObject({ workflow_id: slowWf, status: 'running' });
    await t.request({ method: 'DELETE', url: `/api/v1/workflows/${slowWf}` });
    // Deleting the workflow deletes its webhooks: the URL is gone.
    expect((await deliver(slow.path, { body: '{}' })).statusCode).toBe(404);
    expect((await t.request({ method: 'GET', url: `/api/v1/webhooks/${slow.webhook_id}` })).statusCode).toBe(404);
  });

  it('credits apply (402, nothing started)', async () => {
    const hook = await webhook();
    const db = t.server.deps.db.db;
    const { credits } = await db.selectFrom('workspaces').select('credits').where('id', '=', t.workspaceId).executeTakeFirstOrThrow();
    await db.updateTable('workspaces').set({ credits: 0 }).where('id', '=', t.workspaceId).execute();
    const res = await deliver(hook.path, { body: '{}' });
    await db.updateTable('workspaces').set({ credits }).where('id', '=', t.workspaceId).execute();
    expect(res.statusCode).toBe(402);
    expect(res.json().error_code).toBe('insufficient_credits');
    expect(await executionsOf(hook.webhook_id)).toHaveLength(0);
  });

  it('bad input on the management routes: 400 naming the field or 404, nothing created', async () => {
    const count = async () => (await t.request({ method: 'GET', url: '/api/v1/webhooks?limit=100' })).json().webhooks.length as number;
    const before = await count();
    const cases: Array<[unknown, RegExp]> = [
      [{ sync_timeout_seconds: 31 }, /sync_timeout_seconds/],
      [{ sync_timeout_seconds: 0 }, /sync_timeout_seconds/],
      [{ mode: 'later' }, /mode/],
      [{ signature: { type: 'md5', secret: 'x' } }, /signature/],
      [{ signature: { type: 'hmac_sha256', header: 'X-Sig', encoding: 'hex' } }, /signature/],
      [{ signature: { type: 'standard_webhooks', secret: 'nope' } }, /signature/],
      [{ dedupe_header: 'bad header' }, /dedupe_header/],
      [{ unknown: true }, /unknown/],
    ];
    for (const [body, field] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error).toMatch(field);
    }
    expect((await create({}, 'ffffffffffffffffffffffff')).statusCode).toBe(404);
    expect(await count()).toBe(before);
    expect((await t.request({ method: 'GET', url: '/api/v1/webhooks?limit=101' })).statusCode).toBe(400);
    expect((await t.request({ method: 'GET', url: '/api/v1/webhooks/nope' })).statusCode).toBe(404);
    expect((await t.request({ method: 'DELETE', url: '/api/v1/webhooks/ffffffffffffffffffffffff' })).statusCode).toBe(404);
    const hook = await webhook();
    expect((await t.request({ method: 'DELETE', url: `/api/v1/webhooks/${hook.webhook_id}` })).json()).toEqual({ webhook_id: hook.webhook_id, deleted: true });
    expect((await deliver(hook.path, { body: '{}' })).statusCode).toBe(404);
    const other = await t.createWorkspace();
    expect((await t.request({ method: 'GET', url: `/api/v1/webhooks`, key: other.apiKey })).json().webhooks).toEqual([]);
  });
});

describeEachBackend('inbound webhooks: the concurrency cap and the rate limit', (backend) => {
  it('429 concurrent_execution_limit and 429 rate_limited, with the usual bodies, nothing started', async () => {
    const t = await startTestServer(backend, { rateLimitPerMinute: 4 });
    try {
      const wf = await createWorkflow(t, [{ type: 'delay', seconds: 3600 }]);
      const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${wf}/webhooks`, body: {} });
      const path = new URL(res.json().url as string).pathname;
      await t.server.deps.db.db.updateTable('workspaces').set({ max_concurrent_executions: 1 }).where('id', '=', t.workspaceId).execute();
      const post = () => t.server.app!.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/json' }, payload: '{}' });
      expect((await post()).statusCode).toBe(202);
      const capped = await post();
      expect(capped.statusCode).toBe(429);
      expect(capped.json()).toEqual({ error: 'Concurrent execution limit reached. This workspace allows 1 concurrent executions.', error_code: 'concurrent_execution_limit' });
      expect(capped.headers['retry-after']).toBe('5');
      const limited = await post();
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error_code).toBe('rate_limited');
      expect(limited.headers['retry-after']).toBeDefined();
      const rows = await t.server.deps.db.db.selectFrom('executions').select('id').execute();
      expect(rows).toHaveLength(1);
    } finally {
      await t.close();
    }
  });
});
