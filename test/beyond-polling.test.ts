import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorkflow, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#long-polling-and-events: long polling with ?wait=S and the Server-Sent Events stream.

describeEachBackend('beyond polling', (backend) => {
  let t: TestServer;
  let base: string;
  beforeAll(async () => {
    t = await startTestServer(backend);
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.server.app!.server.address() as { port: number }).port}`;
  });
  afterAll(() => t.close());

  it('?wait=S answers as soon as the execution ends, not after S seconds', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 0.4 }, { type: 'transform', expression: '"done"' }]);
    const id = await run(t, wf);
    const t0 = Date.now();
    const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?wait=10&include_step_results=true` });
    expect(res.statusCode).toBe(200);
    expect(res.json().status).toBe('success');
    expect(res.json().steps[1].result).toBe('done');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('?wait=S answers with the current state after S seconds when it is still running', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 30 }]);
    const id = await run(t, wf);
    const t0 = Date.now();
    const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?wait=1` });
    expect(res.json().status).toBe('running');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
  });

  it('rejects wait above 60 (or not an integer) with 400', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const id = await run(t, wf);
    for (const wait of ['61', '-1', 'abc', '1.5']) {
      const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?wait=${wait}` });
      expect(res.statusCode, wait).toBe(400);
      expect(res.json().error_code).toBe('invalid_request');
    }
  });

  it('streams step and status changes as Server-Sent Events until the execution ends', async () => {
    const wf = await createWorkflow(t, [
      { type: 'transform', expression: '1' },
      { type: 'delay', seconds: 0.5 },
      { type: 'transform', expression: 'steps[0] + 1' },
    ]);
    const id = await run(t, wf);
    const res = await fetch(`${base}/api/v1/executions/${id}/events`, { headers: { authorization: `Bearer ${t.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const text = await res.text(); // the server ends the stream when the execution ends
    const events = text
      .split('\n\n')
      .filter((f) => f.startsWith('event: '))
      .map((f) => {
        const [event, data] = f.split('\n');
        return { event: event!.slice('event: '.length), data: JSON.parse(data!.slice('data: '.length)) };
      });
    const executions = events.filter((e) => e.event === 'execution').map((e) => e.data.status);
    expect(executions[0]).toBe('running');
    expect(executions.at(-1)).toBe('success');
    expect(events.at(-1)!.event).toBe('execution');
    const lastOfStep = (i: number) => events.filter((e) => e.event === 'step' && e.data.index === i).at(-1)!.data;
    expect(lastOfStep(0)).toMatchObject({ status: 'completed', result: 1 });
    expect(lastOfStep(2)).toMatchObject({ status: 'completed', result: 2 });
    // The delay was seen asleep before it completed.
    expect(events.some((e) => e.event === 'step' && e.data.index === 1 && e.data.status === 'running')).toBe(true);
  });

  it('ends the stream with the stopped state when the execution is stopped mid-way', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }, { type: 'delay', seconds: 30 }]);
    const id = await run(t, wf);
    const res = await fetch(`${base}/api/v1/executions/${id}/events`, { headers: { authorization: `Bearer ${t.apiKey}` } });
    setTimeout(() => void t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` }), 400);
    const t0 = Date.now();
    const text = await res.text();
    expect(Date.now() - t0).toBeLessThan(5000);
    const frames = text.split('\n\n').filter((f) => f.startsWith('event: '));
    const last = frames.at(-1)!;
    expect(last.startsWith('event: execution')).toBe(true);
    expect(JSON.parse(last.split('\n')[1]!.slice('data: '.length)).status).toBe('stopped');
    expect(frames.some((f) => f.startsWith('event: step') && f.includes('"index":1') && f.includes('"status":"stopped"'))).toBe(true);
  });

  it('gives every frame an id; a reconnect with Last-Event-ID gets only what changed since', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }, { type: 'transform', expression: '2' }]);
    const id = await run(t, wf);
    const url = `${base}/api/v1/executions/${id}/events`;
    const headers = { authorization: `Bearer ${t.apiKey}` };
    const framesOf = (text: string) => text.split('\n\n').filter((f) => f.startsWith('event: ')).map((f) => Object.fromEntries(f.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)])));
    const full = framesOf(await (await fetch(url, { headers })).text());
    expect(full.length).toBeGreaterThanOrEqual(3);
    for (const f of full) expect(f.id).toMatch(/^[a-z]*(\.[A-Za-z0-9_-]*)+$/);
    // Resumed from the last frame: the execution has ended and nothing changed since.
    expect(framesOf(await (await fetch(url, { headers: { ...headers, 'last-event-id': full.at(-1)!.id! } })).text())).toEqual([]);
    // Resumed from the first frame: every later frame's content, once, and none before it.
    const rest = framesOf(await (await fetch(url, { headers: { ...headers, 'last-event-id': full[0]!.id! } })).text());
    expect(rest.map((f) => f.data)).not.toContain(full[0]!.data);
    expect(rest.at(-1)!.data).toBe(full.at(-1)!.data);
    // An id that is not one of ours starts the stream from the beginning.
    const fresh = framesOf(await (await fetch(url, { headers: { ...headers, 'last-event-id': 'garbage!' } })).text());
    const fromStart = framesOf(await (await fetch(url, { headers })).text());
    expect(fresh.map((f) => f.data)).toEqual(fromStart.map((f) => f.data));
  });

  it('answers 404 for another workspace’s execution, before any stream starts', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    const id = await run(t, wf);
    const other = await t.createWorkspace();
    const res = await fetch(`${base}/api/v1/executions/${id}/events`, { headers: { authorization: `Bearer ${other.apiKey}` } });
    expect(res.status).toBe(404);
    expect((await res.json()).error_code).toBe('not_found');
  });
});
