import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../src/errors.js';
import { STEP_ERROR_CODES } from '../src/engine/step-errors.js';

// docs/errors.md and the code's catalogues must list the same codes (and statuses).

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const section = (title: string) => doc.split(`## ${title}`)[1]!.split('\n## ')[0]!;
const rows = (text: string) =>
  text
    .split('\n')
    .filter((line) => /^\| .*`[a-z_]+`/.test(line) && !line.includes("---"))
    .map((line) => line.split('|').map((cell) => cell.trim()));

describe('docs/errors.md', () => {
  it('lists exactly the API error codes, with their statuses', () => {
    const documented = Object.fromEntries(rows(section('API error codes')).map((cells) => [cells[2]!.replace(/`/g, ''), Number(cells[1])]));
    expect(documented).toEqual(ERROR_STATUS);
  });

  it('lists exactly the step error codes', () => {
    const documented = rows(section('Step error codes')).slice(0).filter((c) => c[1]!.startsWith('`')).map((cells) => cells[1]!.replace(/`/g, ''));
    expect([...documented].sort()).toEqual([...STEP_ERROR_CODES].sort());
  });
});
