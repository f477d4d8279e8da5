import { afterEach, expect, it } from 'vitest';
import { createWorkflow } from './helpers/api.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';
import { setCredits } from '../src/workspaces/store.js';

// docs/api.md#credits: a workspace with unlimited credits (`credits: null`) is never
// refused for credits and nothing is debited; switching back restores a balance.

describeEachBackend('unlimited credits', (backend) => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('never answers 402 and never debits, even concurrently; metered again after a switch back', async () => {
    t = await startTestServer(backend);
    const { workspaceId, apiKey } = await t.createWorkspace('Unlimited', 0);
    const wfRes = await t.request({ method: 'POST', url: '/api/v1/workflows', key: apiKey, body: { name: 'w', steps: [{ type: 'transform', expression: '1' }] } });
    const wf = wfRes.json().id as string;
    const runOnce = () => t!.request({ method: 'POST', url: `/api/v1/workflows/${wf}/run-async`, key: apiKey, body: {} });
    expect((await runOnce()).statusCode).toBe(402);

    await setCredits(t.server.deps.db.db, workspaceId, null);
    const ws = await t.request({ method: 'GET', url: '/api/v1/workspace', key: apiKey });
    expect(ws.json().credits).toBeNull();
    const statuses = await Promise.all(Array.from({ length: 30 }, () => runOnce().then((r) => r.statusCode)));
    expect(statuses.every((s) => s === 202)).toBe(true);
    expect((await t.request({ method: 'GET', url: '/api/v1/workspace', key: apiKey })).json().credits).toBeNull();
    const row = await t.server.deps.db.db.selectFrom('workspaces').select(['credits']).where('id', '=', workspaceId).executeTakeFirstOrThrow();
    expect(Number(row.credits)).toBe(0); // the stored balance was never touched

    await setCredits(t.server.deps.db.db, workspaceId, 1);
    expect((await runOnce()).statusCode).toBe(202);
    expect((await runOnce()).statusCode).toBe(402);
    expect((await t.request({ method: 'GET', url: '/api/v1/workspace', key: apiKey })).json().credits).toBe(0);
    // Other workspaces are untouched.
    await createWorkflow(t, [{ type: 'transform', expression: '1' }]);
    expect((await t.request({ method: 'GET', url: '/api/v1/workspace' })).json().credits).toBe(1000);
  });
});
