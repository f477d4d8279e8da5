import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// Step definitions live apart from their runtimes: validating a workflow (and starting
// the server) loads no HTTP client and no SMTP client — those load on the first http or
// email step. Checked on the build, in a fresh process.

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function loadedPackages(module: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    await import(${JSON.stringify(join(ROOT, 'dist', module))});
    const loaded = Object.keys(createRequire(import.meta.url).cache)
      .map((path) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(path)?.[1])
      .filter(Boolean);
    console.log(JSON.stringify([...new Set(loaded)].sort()));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' })) as string[];
}

it('validating a workflow loads neither undici nor nodemailer', () => {
  const loaded = loadedPackages('workflows/validate-workflow.js');
  expect(loaded).toContain('jsonata'); // the check itself is real: CommonJS packages are seen
  expect(loaded).not.toContain('undici');
  expect(loaded).not.toContain('nodemailer');
});

it('starting the server loads neither until a step needs it', () => {
  const loaded = loadedPackages('server.js');
  expect(loaded).not.toContain('undici');
  expect(loaded).not.toContain('nodemailer');
});
