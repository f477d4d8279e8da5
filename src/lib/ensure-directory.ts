import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

// `mkdirSync(path, { recursive: true })` never returns on Node 20 when a parent
// refuses creation with ENOENT although it exists (e.g. anything under /proc): it
// retries the parent for ever, and `serve` hung silently on such a database path.
// This walks up to the nearest existing ancestor and creates each missing level
// once, so every failure is thrown, naming the directory that could not be made.

export function ensureDirectory(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    if (exists(dir)) break;
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // created meanwhile by another process
    }
  }
}

function exists(dir: string): boolean {
  try {
    statSync(dir);
    return true;
  } catch {
    return false;
  }
}
