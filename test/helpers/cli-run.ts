import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Runs the built `skipflow` binary (dist/: `npm run build` first) to completion.

export const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function skipflow(args: string[], env: Record<string, string>): Promise<CliResult> {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env };
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { env: base, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The one JSON object a --json command printed (and nothing else on stdout). */
export function onlyJson(res: CliResult): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const lines = res.stdout.split('\n');
  if (lines.length !== 2 || lines[1] !== '') throw new Error(`expected exactly one JSON line, got:\n${res.stdout}\n(stderr: ${res.stderr})`);
  return JSON.parse(lines[0]!);
}
