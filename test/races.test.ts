import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setMaxConcurrent } from '../src/workspaces/store.js';
import { describeEachBackend } from './helpers/backends.js';
import { runningExecutions } from './helpers/rows.js';
import { type TestServer, eventually, settle, startTestServer } from './helpers/server.js';

// Races, over a real socket (a listening server, real HTTP concurrency — the other
// race tests go through inject()), 20 rounds each, on both backends:
// - one Idempotency-Key, 50 concurrent run-async, some of them with another body:
//   exactly one execution and one debit; every other answer is the replay of the
//   winner, 422 (other body) or 409 — never a second execution, never a 5xx;
// - N credits, 50 concurrent run-async: exactly min(N, 50) executions, the rest 402,
//   the balance never negative;
// - a stop fired the moment a 1-step run is accepted, three times at once, while
//   readers poll: at most one stop wins, and the execution ends in one terminal state
//   that every read and the list agree on; nothing is left running;
// - the concurrency cap while executions finish during the storm (slots churn): the
//   number of running executions never exceeds the cap at any sample, every refusal is
//   429 concurrent_execution_limit and charges nothing (10 rounds).
// Complements (does not repeat) test/idempotency.test.ts, test/credits-and-limits.test.ts
// and test/engine-stop.test.ts "a stop racing the run …".

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Answer {
  status: number;
  text: string;
  json: Json;
  headers: Headers;
}

const ROUNDS = 20;
const RACERS = 50;

describeEachBackend('races over the wire', (backend) => {
  let t: TestServer;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer(backend, { port: 0, workerConcurrency: 50, leaseMs: 2000, pollIntervalMs: 50 }, { listen: true });
    const address = t.server.app!.server.address() as AddressInfo;
    base = `http://127.0.0.1:${address.port}`;
  });
  afterAll(() => t?.close());

  const db = () => t.server.deps.db.db;

  async function call(method: string, path: string, opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
    const res = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${opts.key ?? t.apiKey}`,
        ...(opts.body !== undefined || method === 'POST' ? { 'content-type': 'application/json' } : {}),
        ...opts.headers,
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as Json) : {}, headers: res.headers };
  }

  function expectErrorShape(a: Answer, status: number, code: string) {
    expect({ status: a.status, body: a.json }).toEqual({ status, body: { error: expect.any(String), error_code: code } });
    expect(Object.keys(a.json).sort()).toEqual(['error', 'error_code']);
  }

  async function workflow(key: string, steps: unknown[], name = 'race'): Promise<string> {
    const res = await call('POST', '/api/v1/workflows', { key, body: { name, steps } });
    expect(res.status, res.text).toBe(201);
    return res.json.id as string;
  }

  // The balance and how many executions are running (there is no stored counter to drift).
  const workspaceRow = async (id: string) => ({
    credits: (await db().selectFrom('workspaces').select(['credits']).where('id', '=', id).executeTakeFirstOrThrow()).credits,
    running_executions: await runningExecutions(db(), id),
  });
  const executionsOf = (workspaceId: string) => db().selectFrom('executions').selectAll().where('workspace_id', '=', workspaceId).execute();
  const stepCount = async (ids: string[]) =>
    ids.length === 0
      ? 0
      : Number((await db().selectFrom('execution_steps').select((eb) => eb.fn.countAll<number>().as('n')).where('execution_id', 'in', ids).executeTakeFirstOrThrow()).n);

  it(`one Idempotency-Key, ${RACERS} concurrent run-async (some with another body): one execution, one debit (${ROUNDS} rounds)`, async () => {
    const ws = await t.createWorkspace('idem-race', 1000);
    const sleeper = await workflow(ws.apiKey, [{ type: 'delay', seconds: 60 }]);
    const quick = await workflow(ws.apiKey, [{ type: 'transform', expression: 'input.v' }]);
    for (let round = 0; round < ROUNDS; round++) {
      const wf = round % 2 === 0 ? quick : sleeper;
      const before = await workspaceRow(ws.workspaceId);
      const count = (await executionsOf(ws.workspaceId)).length;
      const key = `idem-race-${round}`;
      // Every fifth racer sends another body with the same key.
      const bodyOf = (i: number) => ({ input: { v: i % 5 === 4 ? 'other' : 'same' } });
      const answers = await Promise.all(
        Array.from({ length: RACERS }, (_, i) => call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: bodyOf(i), headers: { 'idempotency-key': key } })),
      );
      const fresh = answers.map((a, i) => ({ a, i })).filter(({ a }) => a.status === 202 && a.headers.get('x-idempotent-replayed') === null);
      expect(fresh, `round ${round}: ${answers.map((a) => a.status).join(',')}`).toHaveLength(1);
      const winner = fresh[0]!;
      const winnerBody = JSON.stringify(bodyOf(winner.i));
      for (const [i, a] of answers.entries()) {
        if (i === winner.i) continue;
        if (a.status === 409) {
          expectErrorShape(a, 409, 'idempotency_key_in_use');
          expect(a.headers.get('retry-after')).toBe('5');
        } else if (JSON.stringify(bodyOf(i)) === winnerBody) {
          expect({ status: a.status, text: a.text, replayed: a.headers.get('x-idempotent-replayed') }).toEqual({ status: 202, text: winner.a.text, replayed: 'true' });
          expect(a.headers.get('idempotent-replayed')).toBe('true');
        } else {
          expectErrorShape(a, 422, 'idempotency_key_reused');
        }
      }
      const after = await executionsOf(ws.workspaceId);
      expect(after).toHaveLength(count + 1);
      const created = after.find((e) => e.id === winner.a.json.execution_id)!;
      expect(created.input).toBe(JSON.stringify(bodyOf(winner.i).input));
      expect(await stepCount([created.id])).toBeLessThanOrEqual(1); // a step's row appears when it starts
      expect((await workspaceRow(ws.workspaceId)).credits).toBe(before.credits - 1);
      const keys = await db().selectFrom('idempotency_keys').select('key').where('workspace_id', '=', ws.workspaceId).where('key', '=', key).execute();
      expect(keys).toHaveLength(1);
      // Once settled, the same request replays, never 409.
      const again = await call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: bodyOf(winner.i), headers: { 'idempotency-key': key } });
      expect({ status: again.status, text: again.text, replayed: again.headers.get('x-idempotent-replayed') }).toEqual({ status: 202, text: winner.a.text, replayed: 'true' });
    }
  }, 60_000);

  it(`N credits, ${RACERS} concurrent run-async: exactly min(N, ${RACERS}) executions, never a negative balance (${ROUNDS} rounds)`, async () => {
    const sizes = [0, 1, 2, 3, 5, 7, 10, 13, 20, 25, 30, 49, 50, 51, 1, 4, 8, 16, 32, 64];
    expect(sizes).toHaveLength(ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      const n = sizes[round]!;
      const ws = await t.createWorkspace(`credits-${round}`, n);
      // Half the rounds on a workflow that ends at once (slots and rows churn while racing).
      const wf = await workflow(ws.apiKey, round % 2 === 0 ? [{ type: 'delay', seconds: 60 }] : [{ type: 'transform', expression: '1' }, { type: 'transform', expression: '2' }]);
      const stepsPer = round % 2 === 0 ? 1 : 2;
      let racing = true;
      const balances: number[] = [];
      const sampler = (async () => {
        while (racing) {
          balances.push((await workspaceRow(ws.workspaceId)).credits);
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      // Half of the racers carry their own (distinct) idempotency key.
      const answers = await Promise.all(
        Array.from({ length: RACERS }, (_, i) =>
          call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: { input: i }, headers: i % 2 ? { 'idempotency-key': `c-${round}-${i}` } : {} }),
        ),
      );
      racing = false;
      await sampler;
      const accepted = answers.filter((a) => a.status === 202);
      expect(accepted, `round ${round} (N=${n})`).toHaveLength(Math.min(n, RACERS));
      for (const a of answers) if (a.status !== 202) expectErrorShape(a, 402, 'insufficient_credits');
      const ids = accepted.map((a) => a.json.execution_id as string);
      expect(new Set(ids).size).toBe(ids.length);
      const rows = await executionsOf(ws.workspaceId);
      expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
      expect(await stepCount(ids)).toBeLessThanOrEqual(ids.length * stepsPer); // rows appear as steps start
      expect((await workspaceRow(ws.workspaceId)).credits).toBe(n - ids.length);
      for (const b of balances) expect(b).toBeGreaterThanOrEqual(0);
      // Only the successful keyed requests were recorded.
      const keyed = answers.filter((a, i) => i % 2 === 1 && a.status === 202).length;
      const keys = await db().selectFrom('idempotency_keys').select('key').where('workspace_id', '=', ws.workspaceId).execute();
      expect(keys).toHaveLength(keyed);
      const listed = await call('GET', '/api/v1/executions?limit=100', { key: ws.apiKey });
      expect((listed.json.executions as Json[]).map((e) => e.execution_id).sort()).toEqual([...ids].sort());
    }
  }, 60_000);

  it(`a stop fired as soon as a 1-step run is accepted (3 stops at once, readers polling): one terminal state everywhere (${ROUNDS} rounds)`, async () => {
    const ws = await t.createWorkspace('stop-race', 1000);
    const wf = await workflow(ws.apiKey, [{ type: 'transform', expression: '{ "v": input.i }' }]);
    const outcomes: Array<{ id: string; stopped: boolean }> = [];
    for (let round = 0; round < ROUNDS; round++) {
      const run = await call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: { input: { i: round } } });
      expect(run.status).toBe(202);
      const id = run.json.execution_id as string;
      const reads: Json[] = [];
      const read = async () => {
        const a = await call('GET', `/api/v1/executions/${id}?include_step_results=true`, { key: ws.apiKey });
        expect(a.status).toBe(200);
        reads.push(a.json);
      };
      const stops = await Promise.all([
        call('POST', `/api/v1/executions/${id}/stop`, { key: ws.apiKey }),
        read(),
        call('POST', `/api/v1/executions/${id}/stop`, { key: ws.apiKey }),
        read(),
        call('POST', `/api/v1/executions/${id}/stop`, { key: ws.apiKey }),
      ]).then((all) => all.filter((x): x is Answer => x !== undefined));
      const won = stops.filter((s) => s.status === 200);
      expect(won.length, `round ${round}: ${stops.map((s) => s.status).join(',')}`).toBeLessThanOrEqual(1);
      for (const s of stops) {
        if (s.status === 200) expect(s.json).toStrictEqual({ execution_id: id, status: 'stopped' });
        else expectErrorShape(s, 400, 'execution_not_running');
      }
      const stopped = won.length === 1;
      outcomes.push({ id, stopped });
      // A read that saw a terminal state saw the final one (no flip-flop).
      for (const r of reads) if (r.status !== 'running') expect(r.status).toBe(stopped ? 'stopped' : 'success');
    }
    await eventually(async () => (await workspaceRow(ws.workspaceId)).running_executions === 0, 5000);
    // Two looks, some time apart, through GET and the list: the same single terminal state.
    const firstLook = new Map<string, Json>();
    for (const { id, stopped } of outcomes) {
      const e = (await call('GET', `/api/v1/executions/${id}?include_step_results=true`, { key: ws.apiKey })).json;
      firstLook.set(id, e);
      expect(e.completed_at).not.toBeNull();
      expect(e.error_code).toBeNull();
      const [step] = e.steps as Json[];
      if (stopped) {
        expect(e.status).toBe('stopped');
        expect(['pending', 'stopped']).toContain(step!.status);
        expect(step!.result).toBeNull();
      } else {
        expect(e.status).toBe('success');
        expect(step).toMatchObject({ status: 'completed', result: { v: expect.any(Number) }, error: null });
      }
    }
    await settle(300); // a moment later, nothing has changed:
    const list = await call('GET', `/api/v1/executions?workflow_id=${wf}&limit=100`, { key: ws.apiKey });
    const listed = new Map((list.json.executions as Json[]).map((x) => [x.execution_id as string, x]));
    expect(listed.size).toBe(ROUNDS);
    for (const { id } of outcomes) {
      const e = (await call('GET', `/api/v1/executions/${id}?include_step_results=true`, { key: ws.apiKey })).json;
      expect(e).toEqual(firstLook.get(id));
      expect(listed.get(id)).toMatchObject({ status: e.status, completed_at: e.completed_at });
    }
    const rows = await db().selectFrom('executions').select(['lease_owner', 'available_at']).where('workflow_id', '=', wf).execute();
    for (const r of rows) expect(r).toEqual({ lease_owner: null, available_at: null });
    expect(await workspaceRow(ws.workspaceId)).toEqual({ credits: 1000 - ROUNDS, running_executions: 0 });
    expect(outcomes.some((o) => o.stopped), 'the stop won at least once').toBe(true);
  }, 60_000);

  it(`the concurrency cap holds while slots churn: ${RACERS} concurrent run-async × 10 rounds, never more running than the cap`, async () => {
    const CAP = 3;
    const ws = await t.createWorkspace('cap-churn', 10_000);
    expect(await setMaxConcurrent(db(), ws.workspaceId, CAP)).toBe(true);
    const wf = await workflow(ws.apiKey, [{ type: 'transform', expression: 'input' }]);
    let racing = true;
    let samples = 0;
    let maxRunning = 0;
    let maxCounter = 0;
    const sampler = (async () => {
      while (racing) {
        const running = Number(
          (await db().selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n')).where('workspace_id', '=', ws.workspaceId).where('status', '=', 'running').executeTakeFirstOrThrow()).n,
        );
        const counter = (await workspaceRow(ws.workspaceId)).running_executions;
        maxRunning = Math.max(maxRunning, running);
        maxCounter = Math.max(maxCounter, counter);
        samples++;
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    let accepted = 0;
    const ids: string[] = [];
    const refusals: Answer[] = [];
    try {
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all(
          Array.from({ length: RACERS }, (_, i) => call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: { input: { round, i } } })),
        );
        for (const a of answers) {
          if (a.status === 202) {
            accepted++;
            ids.push(a.json.execution_id as string);
          } else refusals.push(a);
        }
        // Odd rounds pause briefly, even rounds follow at once: executions accepted by
        // one storm end (and free their slots) while the next storm is being refused.
        if (round % 2 === 1) await new Promise((r) => setTimeout(r, 30));
      }
    } finally {
      racing = false;
      await sampler;
    }
    expect(samples).toBeGreaterThan(10);
    expect(maxRunning, 'running executions never exceed the cap').toBeLessThanOrEqual(CAP);
    expect(maxCounter, 'running_executions never exceeds the cap').toBeLessThanOrEqual(CAP);
    expect(accepted, 'slots were freed and taken again during the test').toBeGreaterThan(CAP);
    await eventually(async () => (await workspaceRow(ws.workspaceId)).running_executions === 0, 10_000);
    const rows = await executionsOf(ws.workspaceId);
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(rows.every((r) => r.status === 'success')).toBe(true);
    // Refusals charged nothing: the debits are exactly the accepted runs.
    expect(await workspaceRow(ws.workspaceId)).toEqual({ credits: 10_000 - accepted, running_executions: 0 });
    // A refusal must be reported from the state it was refused in: a slot freed between
    // the refused UPDATE and a re-read once turned a 429 into a 402 (clients don't retry 402).
    console.info(`[races] cap ${CAP} (${backend}): ${accepted} of ${10 * RACERS} accepted over 10 rounds; ${samples} samples, max running ${maxRunning}`);
    const misreported = refusals.filter((a) => a.status !== 429 || a.json.error_code !== 'concurrent_execution_limit');
    expect(misreported.map((a) => `${a.status} ${a.json.error_code}`), 'every refusal is 429 concurrent_execution_limit').toEqual([]);
    for (const a of refusals) {
      expect(a.json).toEqual({ error: `Concurrent execution limit reached. This workspace allows ${CAP} concurrent executions.`, error_code: 'concurrent_execution_limit' });
      expect(Number(a.headers.get('retry-after'))).toBeGreaterThan(0);
    }
      }, 60_000);

  it('a run-async refused while slots are being freed is 429, never 402 (4 s of churn, cap 1, 30 at a time)', async () => {
    // Same property as above, hunted for longer: the refusal is reported from the state
    // it was refused in (see above).
    const ws = await t.createWorkspace('cap-churn-long', 100_000);
    expect(await setMaxConcurrent(db(), ws.workspaceId, 1)).toBe(true);
    const wf = await workflow(ws.apiKey, [{ type: 'transform', expression: 'input' }]);
    const codes = new Map<string, number>();
    let accepted = 0;
    const deadline = Date.now() + 4000;
    let storms = 0;
    while (Date.now() < deadline) {
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => call('POST', `/api/v1/workflows/${wf}/run-async`, { key: ws.apiKey, body: { input: i } })));
      storms++;
      for (const a of answers) {
        if (a.status === 202) accepted++;
        else codes.set(`${a.status} ${a.json.error_code}`, (codes.get(`${a.status} ${a.json.error_code}`) ?? 0) + 1);
      }
      if (codes.size > 1 || (codes.size === 1 && !codes.has('429 concurrent_execution_limit'))) break;
    }
    await eventually(async () => (await workspaceRow(ws.workspaceId)).running_executions === 0, 10_000);
    expect(await workspaceRow(ws.workspaceId)).toEqual({ credits: 100_000 - accepted, running_executions: 0 });
    expect(accepted, `slots churned (${storms} storms)`).toBeGreaterThan(1);
    expect([...codes.keys()], `refusals over ${storms} storms: ${JSON.stringify([...codes])}`).toEqual(['429 concurrent_execution_limit']);
  }, 30_000);
});
