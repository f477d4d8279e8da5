import { createServer } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { createWorkflow, finished, get, run } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';

// The default `serve` runs the engine on its own thread with its own database
// connection. Signals cross the thread boundary: a run-async wakes the engine at once,
// a stop aborts the step in flight within a second, and close() drains the thread.

describeEachBackend('engine on its own thread', (backend) => {
  let t: TestServer | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await t?.close();
    t = undefined;
    for (const close of closers.splice(0)) await close();
  });

  it('runs executions, stops a step in flight within 1 s, and closes cleanly', async () => {
    // A minute-long poll: anything prompt was woken by the forwarded signal.
    t = await startTestServer(backend, { engineThread: true, pollIntervalMs: 60_000, allowPrivateNetwork: true });
    expect(t.server.worker).toBeNull();
    expect(t.server.engineThread).not.toBeNull();

    const wf = await createWorkflow(t, [
      { type: 'transform', expression: 'input.n + 1' },
      { type: 'transform', expression: 'steps[0] * 2' },
    ]);
    const ids = await Promise.all(Array.from({ length: 20 }, (_, n) => run(t!, wf, { n })));
    for (const [n, id] of ids.entries()) {
      const e = await finished(t, id, 5000);
      expect(e.status).toBe('success');
      expect(e.steps[1].result).toBe((n + 1) * 2);
    }

    let aborted = 0;
    let received = 0;
    const slow = createServer((_req, res) => {
      received++;
      res.on('close', () => {
        if (!res.writableEnded) aborted++;
      });
      setTimeout(() => res.end('late'), 20_000).unref();
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => { slow.closeAllConnections(); slow.close(() => resolve()); }));
    const hang = await createWorkflow(t, [{ type: 'http', url: `http://127.0.0.1:${(slow.address() as { port: number }).port}/`, timeout_ms: 30_000 }]);
    const id = await run(t, hang);
    await eventually(async () => received === 1 && (await get(t!, id)).steps[0].status === 'running');
    const t0 = Date.now();
    const stop = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
    expect(stop.statusCode).toBe(200);
    await eventually(async () => aborted === 1, 1500, 10);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await get(t, id)).steps[0]).toMatchObject({ status: 'stopped', error_code: 'stopped' });
  });
});
