import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpiredKeys } from '../src/idempotency/idempotency.js';
import { addCredits, setMaxConcurrent } from '../src/workspaces/store.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#idempotency on run-async and stop: a success is stored with its key and
// replayed byte-identically with both replay headers, starting and charging nothing;
// the same key for another request is 422; keys are per workspace; malformed keys are
// 400; errors are not stored; expired records are neither replayed nor kept; and
// concurrent duplicates create exactly one execution.

type Res = Awaited<ReturnType<TestServer['request']>>;

const ROUNDS = 5;
const RACERS = 50;

describeEachBackend('idempotency keys', (backend) => {
  let t: TestServer;
  let wf: string; // a workflow that sleeps, so its executions stay running
  let wf2: string;

  const db = () => t.server.deps.db.db;
  const createWorkflow = async (name: string, key?: string) => {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', key, body: { name, steps: [{ type: 'delay', seconds: 60 }] } });
    expect(res.statusCode).toBe(201);
    return res.json().id as string;
  };
  const runAsync = (workflowId: string, opts: { idem?: string; body?: unknown; key?: string } = {}) =>
    t.request({
      method: 'POST',
      url: `/api/v1/workflows/${workflowId}/run-async`,
      key: opts.key,
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      headers: opts.idem !== undefined ? { 'idempotency-key': opts.idem } : {},
    });
  const stop = (executionId: string, idem?: string) =>
    t.request({ method: 'POST', url: `/api/v1/executions/${executionId}/stop`, headers: idem !== undefined ? { 'idempotency-key': idem } : {} });
  const countExecutions = async (where: { workspaceId?: string; workflowId?: string } = {}) => {
    let q = db().selectFrom('executions').select((eb) => eb.fn.countAll<number>().as('n'));
    if (where.workspaceId) q = q.where('workspace_id', '=', where.workspaceId);
    if (where.workflowId) q = q.where('workflow_id', '=', where.workflowId);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };
  const credits = async (workspaceId: string) =>
    Number((await db().selectFrom('workspaces').select('credits').where('id', '=', workspaceId).executeTakeFirstOrThrow()).credits);
  const expectReplayOf = (res: Res, original: Res) => {
    expect(res.statusCode).toBe(original.statusCode);
    expect(res.body).toBe(original.body);
    expect(res.headers['x-idempotent-replayed']).toBe('true');
    expect(res.headers['idempotent-replayed']).toBe('true');
    expect(res.headers['content-type']).toBe(original.headers['content-type']);
  };
  const expectFresh = (res: Res) => {
    expect(res.headers['x-idempotent-replayed']).toBeUndefined();
    expect(res.headers['idempotent-replayed']).toBeUndefined();
  };
  const expectError = (res: Res, status: number, code: string) => {
    expect({ status: res.statusCode, code: res.json().error_code }).toEqual({ status, code });
    expect(typeof res.json().error).toBe('string');
  };

  beforeAll(async () => {
    t = await startTestServer(backend);
    wf = await createWorkflow('Idempotent');
    wf2 = await createWorkflow('Idempotent 2');
  });
  afterAll(() => t?.close());

  describe('replay', () => {
    it('replays the same status and byte-identical body with both headers, starting and charging nothing', async () => {
      const first = await runAsync(wf, { idem: 'replay-1', body: { input: { a: 1, b: 2 } } });
      expect(first.statusCode).toBe(202);
      expectFresh(first);
      const count = await countExecutions();
      const balance = await credits(t.workspaceId);

      for (let i = 0; i < 3; i++) expectReplayOf(await runAsync(wf, { idem: 'replay-1', body: { input: { a: 1, b: 2 } } }), first);
      // The same JSON with keys in another order and other whitespace is the same request.
      expectReplayOf(await runAsync(wf, { idem: 'replay-1', body: '{ "input" : { "b": 2, "a": 1 } }' }), first);
      expect(await countExecutions()).toBe(count);
      expect(await credits(t.workspaceId)).toBe(balance);

      // The replay is the stored response, even once the execution has moved on.
      const id = first.json().execution_id as string;
      expect((await stop(id)).statusCode).toBe(200);
      const later = await runAsync(wf, { idem: 'replay-1', body: { input: { b: 2, a: 1 } } });
      expectReplayOf(later, first);
      expect(later.json().status).toBe('running');
    });

    it('treats no body and an empty JSON object as the same request', async () => {
      const first = await runAsync(wf, { idem: 'empty-body' });
      expect(first.statusCode).toBe(202);
      expectReplayOf(await runAsync(wf, { idem: 'empty-body', body: {} }), first);
      expectReplayOf(await runAsync(wf, { idem: 'empty-body', body: '' }), first);
    });

    it('answers 422 idempotency_key_reused for the same key with another body or path, and creates nothing', async () => {
      const first = await runAsync(wf, { idem: 'reuse-1', body: { input: { a: 1, b: 2 } } });
      expect(first.statusCode).toBe(202);
      const count = await countExecutions();
      const balance = await credits(t.workspaceId);

      expectError(await runAsync(wf, { idem: 'reuse-1', body: { input: { a: 1, b: 3 } } }), 422, 'idempotency_key_reused');
      expectError(await runAsync(wf, { idem: 'reuse-1', body: { input: { a: 1 } } }), 422, 'idempotency_key_reused');
      expectError(await runAsync(wf, { idem: 'reuse-1' }), 422, 'idempotency_key_reused');
      expectError(await runAsync(wf, { idem: 'reuse-1', body: { inputs: { a: 1, b: 2 } } }), 422, 'idempotency_key_reused');
      // Another path: another workflow's run-async, and a stop.
      expectError(await runAsync(wf2, { idem: 'reuse-1', body: { input: { a: 1, b: 2 } } }), 422, 'idempotency_key_reused');
      expectError(await stop(first.json().execution_id as string, 'reuse-1'), 422, 'idempotency_key_reused');
      expect(await countExecutions()).toBe(count);
      expect(await credits(t.workspaceId)).toBe(balance);
      // The stop above was rejected before it did anything.
      expect((await t.request({ method: 'GET', url: `/api/v1/executions/${first.json().execution_id}` })).json().status).toBe('running');
      // The original request still replays.
      expectReplayOf(await runAsync(wf, { idem: 'reuse-1', body: { input: { b: 2, a: 1 } } }), first);
    });

    it('scopes keys to the workspace: the same key in two workspaces is two executions', async () => {
      const other = await t.createWorkspace('Second', 100);
      const otherWf = await createWorkflow('Theirs', other.apiKey);
      const mine = await runAsync(wf, { idem: 'shared-key', body: { input: 1 } });
      const theirs = await runAsync(otherWf, { idem: 'shared-key', body: { input: 1 }, key: other.apiKey });
      expect(mine.statusCode).toBe(202);
      expect(theirs.statusCode).toBe(202);
      expectFresh(theirs);
      expect(theirs.json().execution_id).not.toBe(mine.json().execution_id);
      expect(theirs.json().workflow_id).toBe(otherWf);
      expect(await countExecutions({ workspaceId: other.workspaceId })).toBe(1);
      expect(await credits(other.workspaceId)).toBe(99);
      // Each workspace replays its own.
      expectReplayOf(await runAsync(otherWf, { idem: 'shared-key', body: { input: 1 }, key: other.apiKey }), theirs);
      expectReplayOf(await runAsync(wf, { idem: 'shared-key', body: { input: 1 } }), mine);
      // Workspace 2 using the key on workspace 1's workflow is a 404 (not a replay, not a 422).
      expectError(await runAsync(wf, { idem: 'shared-key', body: { input: 1 }, key: other.apiKey }), 404, 'not_found');
    });
  });

  describe('malformed keys', () => {
    it('answers 400 for an empty, too long, spaced or non-ASCII key, and starts nothing', async () => {
      const count = await countExecutions();
      for (const key of ['', 'a'.repeat(257), 'has space', ' lead', 'tab\there', 'clé', 'ключ', 'emoji-😀']) {
        const res = await runAsync(wf, { idem: key, body: { input: 1 } });
        expect({ key, status: res.statusCode }).toEqual({ key, status: 400 });
        expectError(res, 400, 'invalid_request');
      }
      const running = await runAsync(wf2, { body: { input: 1 } });
      const id = running.json().execution_id as string;
      expectError(await stop(id, ''), 400, 'invalid_request');
      expectError(await stop(id, 'x'.repeat(257)), 400, 'invalid_request');
      expect((await t.request({ method: 'GET', url: `/api/v1/executions/${id}` })).json().status).toBe('running');
      expect(await countExecutions()).toBe(count + 1);
    });

    it('accepts keys of 1 and 256 printable ASCII characters', async () => {
      const printable = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
      for (const key of ['k', 'b'.repeat(256), printable]) {
        const first = await runAsync(wf, { idem: key });
        expect({ key, status: first.statusCode }).toEqual({ key, status: 202 });
        expectReplayOf(await runAsync(wf, { idem: key }), first);
      }
    });
  });

  describe('errors are not stored', () => {
    it('a 402 leaves the key free: add credits, retry with the same key, get the 202', async () => {
      const poor = await t.createWorkspace('Poor', 0);
      const poorWf = await createWorkflow('Poor wf', poor.apiKey);
      const denied = await runAsync(poorWf, { idem: 'after-topup', body: { input: 'x' }, key: poor.apiKey });
      expectError(denied, 402, 'insufficient_credits');
      expect(await countExecutions({ workspaceId: poor.workspaceId })).toBe(0);

      expect(await addCredits(db(), poor.workspaceId, 1)).toBe(1);
      const accepted = await runAsync(poorWf, { idem: 'after-topup', body: { input: 'x' }, key: poor.apiKey });
      expect(accepted.statusCode).toBe(202);
      expectFresh(accepted);
      expect(await credits(poor.workspaceId)).toBe(0);
      expect(await countExecutions({ workspaceId: poor.workspaceId })).toBe(1);
      // Now stored: the retry is a replay, not a 402.
      expectReplayOf(await runAsync(poorWf, { idem: 'after-topup', body: { input: 'x' }, key: poor.apiKey }), accepted);
    });

    it('a 400 from stop on a finished execution leaves the key free', async () => {
      const res = await runAsync(wf, { body: { input: 1 } });
      const id = res.json().execution_id as string;
      expect((await stop(id)).statusCode).toBe(200);
      expectError(await stop(id, 'stop-error'), 400, 'execution_not_running');
      const row = await db().selectFrom('idempotency_keys').select('key').where('key', '=', 'stop-error').executeTakeFirst();
      expect(row).toBeUndefined();
    });
  });

  describe('expiry', () => {
    it('does not replay an expired record, and purgeExpiredKeys removes expired records only', async () => {
      const first = await runAsync(wf, { idem: 'expiring', body: { input: 1 } });
      expect(first.statusCode).toBe(202);
      const kept = await runAsync(wf, { idem: 'kept', body: { input: 1 } });
      const stored = await db().selectFrom('idempotency_keys').select(['created_at', 'expires_at']).where('key', '=', 'kept').executeTakeFirstOrThrow();
      expect(Number(stored.expires_at) - Number(stored.created_at)).toBeGreaterThanOrEqual(24 * 3600 * 1000);

      await db().updateTable('idempotency_keys').set({ expires_at: Date.now() - 1000 }).where('key', '=', 'expiring').execute();
      const count = await countExecutions();
      const again = await runAsync(wf, { idem: 'expiring', body: { input: 1 } });
      expect(again.statusCode).toBe(202);
      expectFresh(again);
      expect(again.json().execution_id).not.toBe(first.json().execution_id);
      expect(await countExecutions()).toBe(count + 1);
      // The new record replaced the expired one and replays.
      expectReplayOf(await runAsync(wf, { idem: 'expiring', body: { input: 1 } }), again);

      // An expired record with another fingerprint is not a 422 either.
      await db().updateTable('idempotency_keys').set({ expires_at: Date.now() - 1000 }).where('key', '=', 'expiring').execute();
      const different = await runAsync(wf2, { idem: 'expiring', body: { input: 2 } });
      expect(different.statusCode).toBe(202);
      expectFresh(different);

      // Purge: expire two records; exactly they go, the fresh ones stay.
      await db().updateTable('idempotency_keys').set({ expires_at: Date.now() - 1000 }).where('key', 'in', ['expiring', 'replay-1']).execute();
      const before = Number((await db().selectFrom('idempotency_keys').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
      const purged = await purgeExpiredKeys(db(), Date.now());
      expect(purged).toBe(2);
      const keys = (await db().selectFrom('idempotency_keys').select('key').execute()).map((r) => r.key);
      expect(keys).toHaveLength(before - 2);
      expect(keys).not.toContain('expiring');
      expect(keys).not.toContain('replay-1');
      expect(keys).toContain('kept');
      expectReplayOf(await runAsync(wf, { idem: 'kept', body: { input: 1 } }), kept);
      expect(await purgeExpiredKeys(db(), Date.now())).toBe(0);
    });
  });

  describe('stop', () => {
    it('a stop retried with its Idempotency-Key replays the 200 (not a 400)', async () => {
      const run = await runAsync(wf, { body: { input: 1 } });
      const id = run.json().execution_id as string;
      const first = await stop(id, 'stop-key');
      expect(first.statusCode).toBe(200);
      expectFresh(first);
      expect(first.json()).toStrictEqual({ execution_id: id, status: 'stopped' });
      for (let i = 0; i < 2; i++) expectReplayOf(await stop(id, 'stop-key'), first);
      // An empty JSON body is the same stop request.
      expectReplayOf(await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, body: {}, headers: { 'idempotency-key': 'stop-key' } }), first);
      // Without the key it is a new stop: 400.
      expectError(await stop(id), 400, 'execution_not_running');
      // The same key on another execution's stop is another request.
      const other = (await runAsync(wf, { body: { input: 2 } })).json().execution_id as string;
      expectError(await stop(other, 'stop-key'), 422, 'idempotency_key_reused');
    });
  });

  describe('concurrent duplicates', () => {
    /** Fires RACERS identical requests at once; checks the documented outcome and returns the 202. */
    const checkRace = (responses: Res[]) => {
      const fresh = responses.filter((r) => r.statusCode >= 200 && r.statusCode < 300 && r.headers['x-idempotent-replayed'] === undefined);
      expect(fresh).toHaveLength(1);
      const original = fresh[0]!;
      for (const res of responses) {
        if (res === original) continue;
        if (res.statusCode === 409) {
          expect(res.json().error_code).toBe('idempotency_key_in_use');
          expect(res.headers['retry-after']).toBe('5');
          continue;
        }
        expect({ status: res.statusCode, body: res.body }).toEqual({ status: original.statusCode, body: original.body });
        expect(res.headers['x-idempotent-replayed']).toBe('true');
        expect(res.headers['idempotent-replayed']).toBe('true');
      }
      return original;
    };

    it(`${RACERS} concurrent run-async with one key create exactly one execution and debit one credit (${ROUNDS} rounds)`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const raceWf = await createWorkflow(`Race ${round}`);
        const balance = await credits(t.workspaceId);
        const key = `race-${round}`;
        const responses = await Promise.all(Array.from({ length: RACERS }, () => runAsync(raceWf, { idem: key, body: { input: { round } } })));
        const original = checkRace(responses);
        expect(await countExecutions({ workflowId: raceWf })).toBe(1);
        const [row] = await db().selectFrom('executions').select('id').where('workflow_id', '=', raceWf).execute();
        expect(row!.id).toBe(original.json().execution_id);
        expect(await credits(t.workspaceId)).toBe(balance - 1);
      }
    });

    it('concurrent duplicates with exactly one credit left get the 202 or its replay, never a 402', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const ws = await t.createWorkspace(`Last credit ${round}`, 1);
        const raceWf = await createWorkflow('Last credit', ws.apiKey);
        const responses = await Promise.all(
          Array.from({ length: 20 }, () => runAsync(raceWf, { idem: 'last-credit', body: { input: 1 }, key: ws.apiKey })),
        );
        const statuses = responses.map((r) => r.statusCode).sort();
        expect(statuses.filter((s) => s !== 202 && s !== 409)).toEqual([]);
        checkRace(responses);
        expect(await countExecutions({ workspaceId: ws.workspaceId })).toBe(1);
        expect(await credits(ws.workspaceId)).toBe(0);
      }
    });

    it('concurrent duplicates at the concurrency limit get the 202 or its replay, never a 429', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const ws = await t.createWorkspace(`One slot ${round}`, 100);
        await setMaxConcurrent(db(), ws.workspaceId, 1);
        const raceWf = await createWorkflow('One slot', ws.apiKey);
        const responses = await Promise.all(
          Array.from({ length: 20 }, () => runAsync(raceWf, { idem: 'one-slot', body: { input: 1 }, key: ws.apiKey })),
        );
        expect(responses.map((r) => r.statusCode).filter((s) => s !== 202 && s !== 409)).toEqual([]);
        checkRace(responses);
        expect(await countExecutions({ workspaceId: ws.workspaceId })).toBe(1);
        expect(await credits(ws.workspaceId)).toBe(99);
      }
    });

    it('concurrent stops with one key stop once and all answer the 200 (or 409), never a 400', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const id = (await runAsync(wf, { body: { input: round } })).json().execution_id as string;
        const responses = await Promise.all(Array.from({ length: 20 }, () => stop(id, `stop-race-${round}`)));
        expect(responses.map((r) => r.statusCode).filter((s) => s !== 200 && s !== 409)).toEqual([]);
        const original = checkRace(responses);
        expect(original.json()).toStrictEqual({ execution_id: id, status: 'stopped' });
      }
    });
  });
});
