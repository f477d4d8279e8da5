import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SkipFlowClient, SkipFlowError } from '../src/client/index.js';
import { describeEachBackend } from './helpers/backends.js';
import { type FaultProxy, startFaultProxy } from './helpers/fault-proxy.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/client.md: the TypeScript client against a real server on loopback, directly
// and through a proxy that answers 503 and drops connections.

const fast = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 50 };

describeEachBackend('TypeScript client', (backend) => {
  let t: TestServer;
  let base: string;
  let proxy: FaultProxy;
  let client: SkipFlowClient;
  let flaky: SkipFlowClient;
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true });
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    const address = t.server.app!.server.address() as { port: number };
    base = `http://127.0.0.1:${address.port}`;
    proxy = await startFaultProxy(base);
    client = new SkipFlowClient({ baseUrl: base, apiKey: t.apiKey, retry: fast });
    flaky = new SkipFlowClient({ baseUrl: proxy.url, apiKey: t.apiKey, retry: fast });
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.close();
  });

  it('creates, gets, lists, iterates, updates and deletes workflows', async () => {
    const created = await client.workflows.create({ name: 'client wf', steps: [{ type: 'transform', expression: 'input.a + 1' }] });
    expect(created.id).toMatch(/^[0-9a-f]{24}$/);
    expect((await client.workflows.get(created.id)).name).toBe('client wf');
    const updated = await client.workflows.update(created.id, { name: 'renamed', steps: [{ type: 'transform', expression: '2' }] });
    expect(updated.name).toBe('renamed');
    for (let i = 0; i < 4; i++) await client.workflows.create({ name: `w${i}`, steps: [{ type: 'transform', expression: '1' }] });
    const page = await client.workflows.list({ limit: 2 });
    expect(page.workflows).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const all: string[] = [];
    for await (const w of client.workflows.iterate({ limit: 2 })) all.push(w.id);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toContain(created.id);
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(await client.workflows.delete(created.id)).toEqual({ id: created.id, name: 'renamed', deleted: true });
    const gone = await client.workflows.get(created.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(SkipFlowError);
    expect(gone).toMatchObject({ status: 404, code: 'not_found' });
    expect((gone as SkipFlowError).requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect((gone as SkipFlowError).message).toMatch(/not found/i);
  });

  it('runs, waits with the long poll, lists and iterates executions, and stops one', async () => {
    const wf = await client.workflows.create({ name: 'run me', steps: [{ type: 'transform', name: 'add', expression: 'input.a + 1' }] });
    const accepted = await client.workflows.runAsync(wf.id, { input: { a: 41 } });
    expect(accepted).toMatchObject({ workflow_id: wf.id, status: 'running' });
    const done = await client.executions.waitFor(accepted.execution_id, { timeoutMs: 10_000 });
    expect(done.status).toBe('success');
    const withSteps = await client.executions.get(accepted.execution_id, { includeStepResults: true });
    expect(withSteps.steps?.[0]).toMatchObject({ name: 'add', status: 'completed', result: 42 });
    expect(withSteps.steps?.[0]?.duration_ms).toEqual(expect.any(Number));
    for (let i = 0; i < 3; i++) await client.workflows.runAsync(wf.id, { input: { a: i } });
    const page = await client.executions.list({ workflowId: wf.id, limit: 2 });
    expect(page.executions).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const ids: string[] = [];
    for await (const e of client.executions.iterate({ workflowId: wf.id, limit: 3 })) ids.push(e.execution_id);
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(4);

    const sleeper = await client.workflows.create({ name: 'sleeper', steps: [{ type: 'delay', seconds: 3600 }] });
    const asleep = await client.workflows.runAsync(sleeper.id);
    const waited = await client.executions.waitFor(asleep.execution_id, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(waited).toMatchObject({ code: 'wait_timeout' });
    expect(await client.executions.stop(asleep.execution_id)).toEqual({ execution_id: asleep.execution_id, status: 'stopped' });
    const again = await client.executions.stop(asleep.execution_id, { idempotencyKey: 'other' }).catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 400, code: 'execution_not_running' });
  });

  it('sends a fresh Idempotency-Key per run, or the given one, and replays it', async () => {
    const wf = await client.workflows.create({ name: 'keys', steps: [{ type: 'transform', expression: '1' }] });
    const before = proxy.seen.length;
    const a = await flaky.workflows.runAsync(wf.id);
    const b = await flaky.workflows.runAsync(wf.id);
    const keys = proxy.seen.slice(before).map((s) => s.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[0]).not.toBe(keys[1]);
    expect(a.execution_id).not.toBe(b.execution_id);
    const c = await client.workflows.runAsync(wf.id, { idempotencyKey: 'mine-1', input: 5 });
    const d = await client.workflows.runAsync(wf.id, { idempotencyKey: 'mine-1', input: 5 });
    expect(d.execution_id).toBe(c.execution_id);
  });

  it('retries 503s (honouring Retry-After) and dropped connections with the same key: exactly one execution', async () => {
    const wf = await client.workflows.create({ name: 'flaky', steps: [{ type: 'transform', expression: 'input' }] });
    const isRun = (req: { method?: string; url?: string }) => req.method === 'POST' && Boolean(req.url?.endsWith('/run-async'));
    proxy.inject(isRun, { kind: '503', retryAfter: '0' }, { kind: 'drop-before-forward' }, { kind: 'drop-after-forward' }, { kind: '503' });
    const before = proxy.seen.length;
    const accepted = await flaky.workflows.runAsync(wf.id, { input: { n: 1 } });
    const attempts = proxy.seen.slice(before);
    expect(attempts).toHaveLength(5);
    expect(new Set(attempts.map((a) => a.idempotencyKey)).size).toBe(1);
    // The third attempt started an execution whose answer was lost; the retries replayed it.
    const list = await client.executions.list({ workflowId: wf.id });
    expect(list.executions.map((e) => e.execution_id)).toEqual([accepted.execution_id]);
  });

  it('gives up after maxAttempts, and does not retry a 4xx or a non-idempotent create', async () => {
    const wf = await client.workflows.create({ name: 'down', steps: [{ type: 'transform', expression: '1' }] });
    const isRun = (req: { method?: string; url?: string }) => req.method === 'POST' && Boolean(req.url?.includes(wf.id));
    proxy.inject(isRun, ...Array.from({ length: 5 }, () => ({ kind: '503' as const })));
    const error = await flaky.workflows.runAsync(wf.id).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 503, message: 'injected outage' });
    const before = proxy.seen.length;
    await expect(flaky.workflows.runAsync('0'.repeat(24))).rejects.toMatchObject({ status: 404, code: 'not_found' });
    expect(proxy.seen.length - before).toBe(1);
    proxy.inject((req) => req.method === 'POST' && req.url === '/api/v1/workflows', { kind: '503' });
    await expect(flaky.workflows.create({ name: 'x', steps: [{ type: 'transform', expression: '1' }] })).rejects.toMatchObject({ status: 503 });
    const noServer = new SkipFlowClient({ baseUrl: 'http://127.0.0.1:1', apiKey: t.apiKey, retry: { maxAttempts: 2, baseDelayMs: 1 } });
    await expect(noServer.workflows.list()).rejects.toMatchObject({ status: 0, code: 'network_error' });
  });

  it('streams events, and resumes a dropped stream with Last-Event-ID without repeating a frame', async () => {
    const wf = await client.workflows.create({
      name: 'events',
      steps: [
        { type: 'transform', name: 'one', expression: '1' },
        { type: 'delay', name: 'nap', seconds: 1 },
        { type: 'transform', name: 'three', expression: '3' },
      ],
    });
    const direct = await client.workflows.runAsync(wf.id);
    const frames: string[] = [];
    for await (const e of client.executions.events(direct.execution_id)) frames.push(e.event === 'step' ? `step ${e.data.index} ${e.data.status}` : `execution ${e.data.status}`);
    expect(frames.at(-1)).toBe('execution success');
    expect(frames).toContain('step 2 completed');

    // Through the proxy: the first stream is cut after its first bytes, mid-execution.
    const viaProxy = await flaky.workflows.runAsync(wf.id);
    const isStream = (req: { url?: string }) => Boolean(req.url?.endsWith(`${viaProxy.execution_id}/events`));
    proxy.inject(isStream, { kind: 'cut-stream-after', bytes: 400 });
    const before = proxy.seen.length;
    const got: Array<{ event: string; id: string | null; key: string }> = [];
    for await (const e of flaky.executions.events(viaProxy.execution_id)) {
      got.push({ event: e.event, id: e.id, key: JSON.stringify(e.data) });
    }
    const opened = proxy.seen.slice(before).filter((s) => s.path.endsWith('/events'));
    expect(opened.length).toBeGreaterThanOrEqual(2);
    expect(opened[1]!.lastEventId).toBeTruthy();
    expect(got.at(-1)).toMatchObject({ event: 'execution' });
    expect(JSON.parse(got.at(-1)!.key).status).toBe('success');
    const keys = got.map((g) => g.key);
    expect(new Set(keys).size).toBe(keys.length); // nothing sent twice
    const finalSteps = await client.executions.get(viaProxy.execution_id, { includeStepResults: true });
    for (const step of finalSteps.steps!) expect(keys).toContain(JSON.stringify(step));
  });

  it('reads the workspace; a bad key is a 401 SkipFlowError', async () => {
    const ws = await client.workspace.get();
    expect(ws.workspace_id).toBe(t.workspaceId);
    const bad = new SkipFlowClient({ baseUrl: base, apiKey: 'sk_live_nope' });
    await expect(bad.workflows.list()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
  });
});

describe('the client package', () => {
  it('is exported as skipflow/client with declarations, and its JavaScript imports nothing but itself', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.exports['./client']).toEqual({ types: './dist/client/index.d.ts', import: './dist/client/index.js' });
    for (const file of ['index.ts', 'errors.ts', 'retry.ts', 'sse.ts', 'types.ts']) {
      const source = readFileSync(new URL(`../src/client/${file}`, import.meta.url), 'utf8');
      expect(source, file).not.toMatch(/from 'node:/);
      // Only relative modules at run time; the server's schemas arrive as types only.
      for (const m of source.matchAll(/^(import|export)\s+(?!type\b)[^;]*from '([^']+)'/gm)) expect(m[2], `${file}: ${m[0]}`).toMatch(/^\.\/[a-z-]+\.js$/);
    }
  });
});

// POST /executions/:id/retry lands from another branch: this passes once it is merged.
describeEachBackend('TypeScript client: executions.retry (needs the retry route)', (backend) => {
  let t: TestServer;
  let client: SkipFlowClient;
  beforeAll(async () => {
    t = await startTestServer(backend);
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    client = new SkipFlowClient({ baseUrl: `http://127.0.0.1:${(t.server.app!.server.address() as { port: number }).port}`, apiKey: t.apiKey, retry: fast });
  });
  afterAll(() => t?.close());

  it('retries a failed execution and answers run-async’s body plus retry_of', async () => {
    const wf = await client.workflows.create({ name: 'fails', steps: [{ type: 'transform', expression: '$error("boom")' }] });
    const first = await client.workflows.runAsync(wf.id);
    expect((await client.executions.waitFor(first.execution_id, { timeoutMs: 10_000 })).status).toBe('failed');
    const retried = await client.executions.retry(first.execution_id, { from: 'start' });
    expect(retried).toMatchObject({ workflow_id: wf.id, status: 'running', retry_of: first.execution_id });
    await expect(client.executions.retry(first.execution_id)).rejects.toMatchObject({ status: 409, code: 'already_retried' });
  });
});
