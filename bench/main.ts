import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { CLI, type Proc, startCeilingServer, startSkipflow } from './processes.js';
import { percentile, round } from './stats.js';

// `npm run bench [-- --quick]`: every row of the benchmark issue in one run, on this
// machine, against ceilings measured in the same run. Figures are only comparable as
// ratios within one run (2 noisy cores). Never run by `npm test`.

const execFileAsync = promisify(execFile);
const quick = process.argv.includes('--quick');
const S = quick
  ? { loadSeconds: 2, pgLoadSeconds: 1, w2Executions: 500, w4Sleepers: 1_000, w4DelaySeconds: 2, w5Rows: 20_000, latencySeconds: 1, pruneRows: 10_000 }
  : { loadSeconds: 10, pgLoadSeconds: 10, w2Executions: 5_000, w4Sleepers: 10_000, w4DelaySeconds: 5, w5Rows: 1_000_000, latencySeconds: 3, pruneRows: 100_000 };
const CONNECTIONS = 50;
/** `--only W1,W2,PG` runs just those sections (for working on one of them). */
const onlyArg = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const want = (section: string) => !onlyArg || onlyArg.split(',').includes(section);

type Row = { name: string; figures: Record<string, number | string>; target?: string; met?: boolean };
const rows: Row[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'skipflow-bench-'));

const benchStart = Date.now();
function log(message: string) {
  process.stderr.write(`[bench +${((Date.now() - benchStart) / 1000).toFixed(1)}s] ${message}\n`);
}

async function load(opts: { url: string; method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; amount?: number; connections?: number; seconds?: number }) {
  const result = await autocannon({
    url: opts.url,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    body: opts.body,
    connections: opts.connections ?? CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.seconds ?? S.loadSeconds }),
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    bad: result.non2xx + result.errors + result.timeouts,
  };
}

/** The W2 driver: `total` POSTs as fast as 50 keep-alive connections allow. */
async function submitMany(url: string, headers: Record<string, string>, body: string, total: number): Promise<{ seconds: number; bad: number }> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let next = 0;
  let bad = 0;
  const t0 = Date.now();
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          if (res.statusCode !== 202) bad++;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', () => {
        bad++;
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < total) {
        next++;
        await one();
      }
    }),
  );
  agent.destroy();
  return { seconds: (Date.now() - t0) / 1000, bad };
}

/** Samples a process's resident memory every 100 ms; stop() returns the peak. */
function sampleRss(proc: Proc): { stop(): { anon: number; file: number } } {
  let peak = { anon: 0, file: 0 };
  const timer = setInterval(() => {
    try {
      const now = proc.rssSplitMb();
      if (now.anon + now.file > peak.anon + peak.file) peak = now;
    } catch {
      // the process is gone
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
const peakRss: Array<{ anon: number; file: number }> = [];

function sqliteUrl(name: string) {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return { url: `sqlite:${join(dir, 'skipflow.db')}`, file: join(dir, 'skipflow.db') };
}

async function api(proc: Proc & { key: string }, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${proc.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${proc.key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function prepare(proc: Proc & { key: string }, url: string, steps: unknown[]) {
  const ws = await api(proc, 'GET', '/api/v1/workspace');
  execFileSync(process.execPath, [CLI, 'credits', 'add', '--workspace', String(ws.workspace_id), '--amount', '100000000'], {
    env: { ...process.env, SKIPFLOW_DATABASE_URL: url },
  });
  const wf = await api(proc, 'POST', '/api/v1/workflows', { name: 'bench', steps });
  return String(wf.id);
}

const THREE_TRANSFORMS = [
  { type: 'transform', expression: 'input.n + 1' },
  { type: 'transform', expression: 'steps[0] * 2' },
  { type: 'transform', expression: "{ 'total': steps[1], 'who': input.who }" },
];

async function waitUntil(check: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function ceilingSqlite(): number {
  const { file } = sqliteUrl('ceiling-sqlite');
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('create table t (id integer primary key, v text)');
  const insert = db.prepare('insert into t (v) values (?)');
  const tx = db.transaction((v: string) => insert.run(v));
  const end = Date.now() + (quick ? 1000 : 3000);
  let n = 0;
  const start = Date.now();
  while (Date.now() < end) {
    tx('x'.repeat(64));
    n++;
  }
  db.close();
  return n / ((Date.now() - start) / 1000);
}

async function main() {
  log(`mode ${quick ? 'quick' : 'full'}; ${cpus().length} cores; ${process.version}`);

  log('ceiling-http');
  const ceiling = await startCeilingServer();
  const http = await load({ url: `http://127.0.0.1:${ceiling.port}/ping` });
  await ceiling.stop();
  rows.push({ name: 'ceiling-http', figures: { 'req/s': round(http.rps, 0), 'p50 ms': http.p50, 'p99 ms': http.p99 } });

  log('ceiling-sqlite');
  const sqliteTps = ceilingSqlite();
  rows.push({ name: 'ceiling-sqlite', figures: { 'tx/s': round(sqliteTps, 0) } });

  if (want('W1')) {
  log("W1 run-async");
  const db1 = sqliteUrl('w1');
  const s1 = await startSkipflow({ SKIPFLOW_DATABASE_URL: db1.url });
  const wf1 = await prepare(s1, db1.url, THREE_TRANSFORMS);
  const headers = { authorization: `Bearer ${s1.key}`, 'content-type': 'application/json' };
  const peak1 = sampleRss(s1);
  const t1 = Date.now();
  const w1 = await load({ url: `http://127.0.0.1:${s1.port}/api/v1/workflows/${wf1}/run-async`, method: 'POST', headers, body: '{"input":{"n":1,"who":"bench"}}' });
  const loadEnded = Date.now();
  // The sustained rate: every execution W1 started, run to its end, over W1 and the drain.
  const reader1 = new BetterSqlite3(db1.file, { readonly: true });
  const open1 = reader1.prepare("select count(*) as n from executions where status = 'running'");
  await waitUntil(() => (open1.get() as { n: number }).n === 0, 600_000, 'W1 drain');
  const drained = Date.now();
  const started1 = (reader1.prepare('select count(*) as n from executions').get() as { n: number }).n;
  reader1.close();
  const rss1 = peak1.stop();
  rows.push({
    name: 'W1 run-async',
    figures: { 'req/s': round(w1.rps, 0), 'p50 ms': w1.p50, 'p99 ms': w1.p99, 'vs ceiling-http': round(w1.rps / http.rps), errors: w1.bad },
    target: '≥ 12,000 req/s, p99 ≤ 20 ms',
    met: w1.rps >= 12_000 && w1.p99 <= 20,
  });
  const sustained = started1 / ((drained - t1) / 1000);
  rows.push({
    name: 'W1 sustained',
    figures: { executions: started1, 'load s': round((loadEnded - t1) / 1000), 'drain s': round((drained - loadEnded) / 1000), 'executions/s': round(sustained, 0) },
    target: '≥ 5,000 executions/s over W1 and its drain',
    met: sustained >= 5_000,
  });
  peakRss.push(rss1);

  await s1.stop();

  // The same load on an api-only process: what the run-async path costs by itself,
  // without the worker sharing the event loop (W1 above runs both in one process).
  log('W1 api-only');
  const db1a = sqliteUrl('w1-api');
  const s1a = await startSkipflow({ SKIPFLOW_DATABASE_URL: db1a.url }, 'api');
  const wf1a = await prepare(s1a, db1a.url, THREE_TRANSFORMS);
  const w1a = await load({
    url: `http://127.0.0.1:${s1a.port}/api/v1/workflows/${wf1a}/run-async`,
    method: 'POST',
    headers: { authorization: `Bearer ${s1a.key}`, 'content-type': 'application/json' },
    body: '{"input":{"n":1,"who":"bench"}}',
  });
  await s1a.stop();
  rows.push({
    name: 'W1 api-only',
    figures: { 'req/s': round(w1a.rps, 0), 'p50 ms': w1a.p50, 'p99 ms': w1a.p99, 'vs ceiling-http': round(w1a.rps / http.rps), errors: w1a.bad },
  });
  }

  // W1 while `skipflow prune` deletes old executions (each with a step) alongside the
  // server: pruning works in batches of 500, so run-async's p99 should stay near W1's.
  if (want('W1P')) {
  log(`W1 while pruning ${S.pruneRows} old executions`);
  const dbp = sqliteUrl('w1p');
  const sp = await startSkipflow({ SKIPFLOW_DATABASE_URL: dbp.url, SKIPFLOW_RETENTION_DAYS: '0' });
  const wfp = await prepare(sp, dbp.url, THREE_TRANSFORMS);
  const wsp = String((await api(sp, 'GET', '/api/v1/workspace')).workspace_id);
  const seeder = new BetterSqlite3(dbp.file);
  seeder.pragma('busy_timeout = 10000');
  const old = Math.floor(Date.now() / 1000) - 90 * 86_400;
  seeder
    .prepare(
      `with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ?)
       insert into executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, completed_at, current_step, lease_token)
       select printf('%08x%016x', ? + i / 1000, i), ?, ?, 'v', 'bench', 'success', 'null', ? * 1000, ? * 1000, 1, 0 from n`,
    )
    .run(S.pruneRows, old, wsp, wfp, old, old);
  seeder.exec(`insert into execution_steps (execution_id, idx, type, status, result) select id, 0, 'transform', 'completed', '1' from executions where completed_at = ${old * 1000}`);
  seeder.close();
  const prune = execFileAsync(process.execPath, [CLI, 'prune', '--older-than-days', '30', '--json'], { env: { PATH: process.env.PATH ?? '', SKIPFLOW_DATABASE_URL: dbp.url } });
  const wp = await load({
    url: `http://127.0.0.1:${sp.port}/api/v1/workflows/${wfp}/run-async`,
    method: 'POST',
    headers: { authorization: `Bearer ${sp.key}`, 'content-type': 'application/json' },
    body: '{"input":{"n":1,"who":"bench"}}',
  });
  const pruned = JSON.parse((await prune).stdout) as { deleted: number };
  await sp.stop();
  rows.push({
    name: `W1 while pruning ${S.pruneRows} old executions`,
    // Compare with the W1 run-async row of the same run (no fixed target: 2 shared cores).
    figures: { 'req/s': round(wp.rps, 0), 'p50 ms': wp.p50, 'p99 ms': wp.p99, deleted: pruned.deleted, errors: wp.bad },
  });
  }

  // W3 on its own server, so W1's backlog draining in the worker does not share the
  // CPU: once polling a running execution (a database read per request), once polling
  // a finished one (served from the terminal cache).
  if (want('W3')) {
  log('W3 poll');
  const db3 = sqliteUrl('w3');
  const s3 = await startSkipflow({ SKIPFLOW_DATABASE_URL: db3.url });
  const h3 = { authorization: `Bearer ${s3.key}` };
  const sleeping = await api(s3, 'POST', `/api/v1/workflows/${String((await api(s3, 'POST', '/api/v1/workflows', { name: 'sleep', steps: [{ type: 'delay', seconds: 600 }] })).id)}/run-async`, {});
  const quickWf = String((await api(s3, 'POST', '/api/v1/workflows', { name: 'quick', steps: THREE_TRANSFORMS })).id);
  const finishedRun = await api(s3, 'POST', `/api/v1/workflows/${quickWf}/run-async`, { input: { n: 1 } });
  await new Promise((r) => setTimeout(r, 500));
  const w3 = await load({ url: `http://127.0.0.1:${s3.port}/api/v1/executions/${String(sleeping.execution_id)}`, headers: h3 });
  rows.push({
    name: 'W3 poll (running)',
    figures: { 'req/s': round(w3.rps, 0), 'p50 ms': w3.p50, 'p99 ms': w3.p99, 'vs ceiling-http': round(w3.rps / http.rps), errors: w3.bad },
    target: '≥ 50% of ceiling-http',
    met: w3.rps >= 0.5 * http.rps,
  });
  const w3f = await load({ url: `http://127.0.0.1:${s3.port}/api/v1/executions/${String(finishedRun.execution_id)}`, headers: h3 });
  rows.push({
    name: 'W3 poll (finished)',
    figures: { 'req/s': round(w3f.rps, 0), 'p50 ms': w3f.p50, 'p99 ms': w3f.p99, 'vs ceiling-http': round(w3f.rps / http.rps), errors: w3f.bad },
  });
  await s3.stop();
  }

  if (want('W2')) {
  log(`W2 end-to-end (${S.w2Executions} executions)`);
  const db2 = sqliteUrl('w2');
  const s2 = await startSkipflow({ SKIPFLOW_DATABASE_URL: db2.url });
  const wf2 = await prepare(s2, db2.url, THREE_TRANSFORMS);
  const reader2 = new BetterSqlite3(db2.file, { readonly: true });
  const done2 = reader2.prepare("select count(*) as n from executions where status = 'success'");
  const steps2 = reader2.prepare("select count(*) as n from execution_steps where status = 'completed' and result is not null");
  const peak2 = sampleRss(s2);
  const t0 = Date.now();
  const submit = await submitMany(
    `http://127.0.0.1:${s2.port}/api/v1/workflows/${wf2}/run-async`,
    { authorization: `Bearer ${s2.key}`, 'content-type': 'application/json' },
    '{"input":{"n":1,"who":"bench"}}',
    S.w2Executions,
  );
  const submitSeconds = submit.seconds;
  await waitUntil(() => (done2.get() as { n: number }).n >= S.w2Executions, 300_000, 'W2');
  const w2Seconds = (Date.now() - t0) / 1000;
  const storedSteps = (steps2.get() as { n: number }).n;
  reader2.close();
  peakRss.push(peak2.stop());
  await s2.stop();

  const w2Rate = S.w2Executions / w2Seconds;
  rows.push({
    name: 'W2 end-to-end',
    figures: {
      'executions/s': round(w2Rate, 0),
      'wall s': round(w2Seconds),
      'submit s': round(submitSeconds),
      'checkpoints/s': round((storedSteps) / w2Seconds, 0),
      'vs ceiling-sqlite': round(storedSteps / w2Seconds / sqliteTps),
      'steps stored': storedSteps,
      errors: submit.bad,
    },
    target: '≥ 5,000 executions/s',
    met: w2Rate >= 5_000,
  });
  const worst = peakRss.reduce((a, b) => (a.anon + a.file >= b.anon + b.file ? a : b));
  rows.push({
    name: 'peak RSS W1+W2',
    figures: { 'MiB': round(worst.anon + worst.file, 0), 'anonymous MiB': round(worst.anon, 0), 'file-backed MiB': round(worst.file, 0) },
    target: '≤ 150 MiB',
    met: worst.anon + worst.file <= 150,
  });
  }

  if (want('W4')) {
  log(`W4 sleepers (${S.w4Sleepers} × ${S.w4DelaySeconds} s)`);
  const db4 = sqliteUrl('w4');
  const s4 = await startSkipflow({ SKIPFLOW_DATABASE_URL: db4.url });
  // Warm up with as many zero-second delays as there will be sleepers: the same code
  // path and request volume, so the heap has grown to its working size before
  // "RSS before" and the difference is what sleeping executions retain.
  const wfWarm = await prepare(s4, db4.url, [{ type: 'delay', seconds: 0 }]);
  const h4 = { authorization: `Bearer ${s4.key}`, 'content-type': 'application/json' };
  await load({ url: `http://127.0.0.1:${s4.port}/api/v1/workflows/${wfWarm}/run-async`, method: 'POST', headers: h4, body: '{}', amount: S.w4Sleepers });
  const wf4 = String((await api(s4, 'POST', '/api/v1/workflows', { name: 'sleep', steps: [{ type: 'delay', seconds: S.w4DelaySeconds }] })).id);
  const reader4 = new BetterSqlite3(db4.file, { readonly: true });
  const asleep = reader4.prepare("select count(*) as n from execution_steps where phase = 'sleep'");
  await new Promise((r) => setTimeout(r, 1000));
  const rssBefore = s4.rssMb();
  await load({ url: `http://127.0.0.1:${s4.port}/api/v1/workflows/${wf4}/run-async`, method: 'POST', headers: h4, body: '{}', amount: S.w4Sleepers });
  await waitUntil(() => (asleep.get() as { n: number }).n >= S.w4Sleepers, 120_000, 'W4 sleeping');
  const rssAfter = s4.rssMb();
  const finished = reader4.prepare(`select count(*) as n from executions where workflow_id = ? and status = 'success'`);
  await waitUntil(() => (finished.get(wf4) as { n: number }).n >= S.w4Sleepers, 120_000, 'W4 waking');
  const lateness = (reader4.prepare(`select s.completed_at - s.wake_at as late from execution_steps s join executions e on e.id = s.execution_id where e.workflow_id = ?`).all(wf4) as { late: number }[])
    .map((r) => r.late)
    .sort((a, b) => a - b);
  reader4.close();
  await s4.stop();
  const growth = rssAfter - rssBefore;
  const lateP99 = percentile(lateness, 99);
  rows.push({
    name: 'W4 sleepers',
    figures: {
      'RSS before MB': round(rssBefore, 1),
      'RSS asleep MB': round(rssAfter, 1),
      'growth MB': round(growth, 1),
      'late p50 ms': percentile(lateness, 50),
      'late p99 ms': lateP99,
      'late max ms': lateness[lateness.length - 1] ?? NaN,
      early: lateness.filter((l) => l < 0).length,
    },
    target: 'growth < 30 MB, p99 lateness < 1 s, never early',
    met: growth < 30 && lateP99 < 1000 && lateness[0]! >= 0,
  });
  }

  if (want('W5')) {
  log(`W5 list at scale (${S.w5Rows} executions)`);
  const db5 = sqliteUrl('w5');
  const s5 = await startSkipflow({ SKIPFLOW_DATABASE_URL: db5.url });
  const wf5 = await prepare(s5, db5.url, THREE_TRANSFORMS);
  const ws5 = String((await api(s5, 'GET', '/api/v1/workspace')).workspace_id);
  const writer = new BetterSqlite3(db5.file);
  writer.pragma('busy_timeout = 10000');
  const base = Math.floor(Date.now() / 1000) - S.w5Rows;
  writer
    .prepare(
      `with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ?)
       insert into executions (id, workspace_id, workflow_id, version_id, workflow_name, status, input, created_at, completed_at, current_step, lease_token)
       select printf('%08x%016x', ? + i, i), ?, ?, 'v', 'bench', 'success', 'null', (? + i) * 1000, (? + i) * 1000, 3, 0 from n`,
    )
    .run(S.w5Rows, base, ws5, wf5, base, base);
  writer.exec('analyze');
  const deepId = (writer.prepare('select id from executions where workspace_id = ? order by id desc limit 1 offset ?').get(ws5, Math.floor(S.w5Rows * 0.9)) as { id: string }).id;
  writer.close();
  log('W5 rows in place; timing pages');
  const h5 = { authorization: `Bearer ${s5.key}` };
  // Alternate first and deep pages so that both see the same machine noise.
  const firstMs: number[] = [];
  const deepMs: number[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const timed = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const t = process.hrtime.bigint();
      request({ host: '127.0.0.1', port: s5.port, path, headers: h5, agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
      }).on('error', reject).end();
    });
  const end5 = Date.now() + S.latencySeconds * 2000;
  while (Date.now() < end5) {
    firstMs.push(await timed('/api/v1/executions?limit=20'));
    deepMs.push(await timed(`/api/v1/executions?limit=20&after=${deepId}`));
  }
  agent.destroy();
  log('W5 pages timed; stopping');
  await s5.stop();
  firstMs.sort((a, b) => a - b);
  deepMs.sort((a, b) => a - b);
  const first = percentile(firstMs, 50);
  const deep = percentile(deepMs, 50);
  const ratio = deep / first;
  rows.push({
    name: 'W5 list at scale',
    figures: { rows: S.w5Rows, requests: firstMs.length * 2, 'first page p50 ms': round(first, 3), 'deep page p50 ms': round(deep, 3), 'deep/first': round(ratio) },
    target: 'ratio ≤ 1.5',
    met: ratio <= 1.5,
  });
  }

  if (want('PG')) await postgresRows();
  report();
}

// The PostgreSQL rows: one api process and 1 or 2 worker processes on a fresh
// database, W1 (run-async under load) and W2 (end to end), to show how throughput
// scales with workers. Skipped when PostgreSQL does not answer.
const PG_URL = process.env.SKIPFLOW_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function freshPgDatabase(): Promise<{ url: string; drop(): Promise<void>; count(sql: string, params?: unknown[]): Promise<number> }> {
  const name = `skipflow_bench_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  const reader = new pg.Client({ connectionString: url.toString() });
  await reader.connect();
  return {
    url: url.toString(),
    count: async (text, params = []) => Number((await reader.query(text, params)).rows[0].n),
    drop: async () => {
      await reader.end();
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** Single-row INSERT commits per second on PostgreSQL, over 1 and over 50 connections. */
async function pgCeiling(): Promise<{ one: number; fifty: number }> {
  const database = await freshPgDatabase();
  const pool = new pg.Pool({ connectionString: database.url, max: 50 });
  try {
    await pool.query('create table t (id bigserial primary key, v text)');
    const seconds = quick ? 1 : 3;
    const run = async (connections: number) => {
      let n = 0;
      const end = Date.now() + seconds * 1000;
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: connections }, async () => {
          const client = await pool.connect();
          try {
            while (Date.now() < end) {
              await client.query('insert into t (v) values ($1)', ['x'.repeat(64)]);
              n++;
            }
          } finally {
            client.release();
          }
        }),
      );
      return n / ((Date.now() - t0) / 1000);
    };
    return { one: await run(1), fifty: await run(50) };
  } finally {
    await pool.end();
    await database.drop();
  }
}

async function postgresRows() {
  try {
    const probe = new pg.Client({ connectionString: PG_URL });
    await probe.connect();
    await probe.end();
  } catch {
    log(`PostgreSQL not reachable at ${PG_URL}; skipping the PostgreSQL rows`);
    return;
  }
  const ceiling = await pgCeiling();
  rows.push({ name: 'ceiling-pg', figures: { 'commits/s 1 conn': round(ceiling.one, 0), 'commits/s 50 conns': round(ceiling.fifty, 0) } });
  const w2: Record<number, number> = {};
  for (const workers of [1, 2]) {
    log(`PostgreSQL, 1 api + ${workers} worker(s)`);
    const database = await freshPgDatabase();
    const api = await startSkipflow({ SKIPFLOW_DATABASE_URL: database.url }, 'api');
    const procs: Proc[] = [api];
    try {
      for (let i = 0; i < workers; i++) procs.push(await startSkipflow({ SKIPFLOW_DATABASE_URL: database.url }, 'worker'));
      const wf = await prepare(api, database.url, THREE_TRANSFORMS);
      const headers = { authorization: `Bearer ${api.key}`, 'content-type': 'application/json' };
      const url = `http://127.0.0.1:${api.port}/api/v1/workflows/${wf}/run-async`;
      const w1 = await load({ url, method: 'POST', headers, body: '{"input":{"n":1,"who":"bench"}}', seconds: S.pgLoadSeconds });
      rows.push({
        name: `PG W1 ${workers}w`,
        figures: { 'req/s': round(w1.rps, 0), 'p50 ms': w1.p50, 'p99 ms': w1.p99, 'vs ceiling-pg 50': round(w1.rps / ceiling.fifty), errors: w1.bad },
        ...(workers === 1 ? { target: '≥ 3,000 req/s, p99 ≤ 50 ms', met: w1.rps >= 3_000 && w1.p99 <= 50 } : {}),
      });
      // Let W1's executions drain, then time W2 from an idle start.
      const deadline = Date.now() + 300_000;
      while ((await database.count("select count(*) as n from executions where status = 'running'")) > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      const before = await database.count("select count(*) as n from executions where status = 'success'");
      const t0 = Date.now();
      await submitMany(url, headers, '{"input":{"n":1,"who":"bench"}}', S.w2Executions);
      while ((await database.count("select count(*) as n from executions where status = 'success'")) < before + S.w2Executions) {
        if (Date.now() > t0 + 300_000) throw new Error('PG W2 did not finish');
        await new Promise((r) => setTimeout(r, 20));
      }
      const seconds = (Date.now() - t0) / 1000;
      w2[workers] = S.w2Executions / seconds;
      rows.push({
        name: `PG W2 ${workers}w`,
        figures: { 'executions/s': round(w2[workers]!, 0), 'wall s': round(seconds), 'vs ceiling-pg 50': round(w2[workers]! / ceiling.fifty) },
        ...(workers === 1
          ? { target: '≥ 1,500 executions/s', met: w2[1]! >= 1_500 }
          : { target: '2 workers never slower than 1', met: w2[2]! >= w2[1]! }),
      });
    } finally {
      for (const p of procs.reverse()) await p.stop();
      await database.drop();
    }
  }
  const last = rows[rows.length - 1]!;
  last.figures['vs 1 worker'] = round(w2[2]! / w2[1]!);
}

function report() {
  const lines = rows.map((r) => {
    const figures = Object.entries(r.figures).map(([k, v]) => `${k} ${v}`).join(', ');
    const target = r.target ? ` | target ${r.target}: ${r.met ? 'MET' : 'not met'}` : '';
    return `${r.name.padEnd(18)} ${figures}${target}`;
  });
  process.stdout.write(`\n${lines.join('\n')}\n`);
  const dir = new URL('./results/', new URL('../../bench/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    new URL('latest.json', dir),
    JSON.stringify({ at: new Date().toISOString(), quick, node: process.version, cores: cpus().length, cpu: cpus()[0]?.model, rows }, null, 2),
  );
  process.stdout.write(`\nwritten to bench/results/latest.json\n`);
}

try {
  await main();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
