import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface Proc {
  child: ChildProcess;
  port: number;
  output(): string;
  stop(): Promise<void>;
  rssMb(): number;
  /** Resident memory split: anonymous (heap, stacks) and file-backed (mapped files). */
  rssSplitMb(): { anon: number; file: number };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

export function spawnNode(args: string[], env: Record<string, string>, port: number, readyUrl: string | RegExp): Promise<Proc> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const proc: Proc = {
    child,
    port,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
    rssMb: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
    },
    rssSplitMb: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      return { anon: kb('RssAnon') / 1024, file: (kb('RssFile') + kb('RssShmem')) / 1024 };
    },
  };
  const ready = typeof readyUrl === 'string' ? async () => (await fetch(readyUrl)).ok : async () => readyUrl.test(out);
  return waitFor(ready, 30_000, args.join(' ')).then(() => proc);
}

export async function startSkipflow(env: Record<string, string>, role = 'all'): Promise<Proc & { key: string }> {
  const port = await freePort();
  const proc = await spawnNode(
    [CLI, 'serve', '--port', String(port), '--role', role],
    { SKIPFLOW_RATE_LIMIT: '0', LOG_LEVEL: 'info', ...env },
    port,
    role === 'worker' ? /"msg":"SkipFlow started"/ : `http://127.0.0.1:${port}/api/v1/openapi.json`,
  );
  const key = /sk_live_[0-9A-Za-z]{43}/.exec(proc.output())?.[0] ?? '';
  return { ...proc, key };
}

export async function startCeilingServer(): Promise<Proc> {
  const port = await freePort();
  const script = fileURLToPath(new URL('./ceiling-server.js', import.meta.url));
  return spawnNode([script, String(port)], {}, port, `http://127.0.0.1:${port}/ping`);
}
