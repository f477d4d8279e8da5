import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { track } from './leaks.js';

// A real `skipflow` process (from dist/, built by `npm test` before the suite runs).

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface Child {
  readonly process: ChildProcess;
  output(): string;
  /** Resolves with the port once the server logs that it listens. */
  waitForPort(timeoutMs?: number): Promise<number>;
  exited(): Promise<number | null>;
}

export function spawnSkipflow(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  // Running until it exits: a test that ends with it alive leaked it.
  const untrack = track(`spawnSkipflow(${args.join(' ')})`, async () => {
    child.kill('SIGKILL');
    await exit;
  });
  void exit.then(untrack);
  return {
    process: child,
    output: () => out,
    exited: () => exit,
    async waitForPort(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const match = /"address":\{"address":"[^"]+","family":"IPv\d","port":(\d+)\}/.exec(out);
        if (match) return Number(match[1]);
        if (child.exitCode !== null) throw new Error(`skipflow exited early:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`skipflow did not start within ${timeoutMs} ms:\n${out}`);
    },
  };
}
