import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKENDS } from './helpers/backends.js';
import { runningExecutions } from './helpers/rows.js';
import { type TestServer, eventually, settle, startTestServer } from './helpers/server.js';

// On PostgreSQL, every writer of execution rows — checkpoints, the worker's lease
// tick, stops, claims — locks them in one order (or skips locked rows), and nothing on
// the engine's path waits on the workspace row. So under a short lease, with steps
// checkpointing all the time and the workspace row held by someone else for seconds,
// there is no deadlock and no healthy worker's lease lapses (a lapse would be counted
// as an interruption by the claim that took it over).

const run = BACKENDS.includes('postgres') ? describe : describe.skip;

async function deadlocks(client: pg.Client): Promise<number> {
  // Statistics reach the view with a short delay, and a snapshot is kept per transaction.
  await settle(1200);
  await client.query('select pg_stat_clear_snapshot()');
  const { rows } = await client.query('select deadlocks from pg_stat_database where datname = current_database()');
  return Number(rows[0].deadlocks);
}

run('lease tick and checkpoints racing on PostgreSQL', () => {
  let t: TestServer | undefined;
  let client: pg.Client | undefined;
  afterEach(async () => {
    await client?.end();
    client = undefined;
    await t?.close();
    t = undefined;
  });

  it('many rounds, a 600 ms lease, the workspace row held for seconds: zero deadlocks, zero takeovers, all success', async () => {
    // A 600 ms lease: the tick renews every 200 ms, while 40 executions at a time
    // checkpoint a step every few milliseconds.
    t = await startTestServer('postgres', { leaseMs: 600, pollIntervalMs: 50, workerConcurrency: 40 });
    client = new pg.Client({ connectionString: t.database.url });
    await client.connect();
    const before = await deadlocks(client);
    const wf = await t.request({
      method: 'POST',
      url: '/api/v1/workflows',
      body: {
        name: 'churn',
        steps: [
          { type: 'transform', expression: 'input.i' },
          { type: 'delay', seconds: 0 },
          { type: 'transform', expression: 'steps[0] + 1' },
          { type: 'delay', seconds: 0.05 },
          { type: 'transform', expression: 'steps[2] * 2' },
        ],
      },
    });
    const start = async (i: number) => {
      const res = await t!.request({ method: 'POST', url: `/api/v1/workflows/${wf.json().id}/run-async`, body: { input: { i } } });
      expect(res.statusCode, res.body).toBe(202);
      return res.json().execution_id as string;
    };
    const ids: string[] = [];
    for (let round = 0; round < 6; round++) {
      ids.push(...(await Promise.all(Array.from({ length: 100 }, (_, i) => start(round * 100 + i)))));
      // Hold the workspace row (as a long transaction elsewhere would) for 1.5 s, three
      // times over the run: the engine must not notice.
      if (round % 2 === 1) {
        await client.query('begin');
        await client.query('select * from workspaces for update');
        await settle(1500);
        await client.query('commit');
      }
    }
    await eventually(async () => (await runningExecutions(t!.server.deps.db.db)) === 0, 60_000, 100);
    const rows = await t.server.deps.db.db.selectFrom('executions').select(['status', 'interruptions']).where('id', 'in', ids).execute();
    expect(rows).toHaveLength(600);
    expect(rows.filter((r) => r.status !== 'success')).toEqual([]);
    expect(rows.filter((r) => r.interruptions > 0), 'no lease of a live worker lapsed').toEqual([]);
    const steps = await t.server.deps.db.db.selectFrom('execution_steps').select(['interruptions']).where('interruptions', '>', 0).execute();
    expect(steps).toEqual([]);
    expect(await deadlocks(client)).toBe(before);
  }, 120_000);
});
