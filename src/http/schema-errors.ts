import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck, type ValueError, ValueErrorType } from '@sinclair/typebox/compiler';
import { invalid, type ApiError } from '../errors.js';

// Turns TypeBox's errors into the documented message convention, naming the exact
// field (`/steps/2/retry/max_attempts` → `steps[2].retry.max_attempts`), and saying
// what would be right: an unknown field names the nearest known one ("did you mean"),
// a value outside an enum lists the allowed values. Every problem is reported, not
// only the first, so a definition is fixed in one round trip.

export function fieldPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out === '' ? key : `.${key}`;
  }
  return out;
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

export function checker(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** Edit distance, for "did you mean" (field names are short). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function nearest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

/** Schema option: the hint added when the body has a field the schema does not know. */
export const UNKNOWN_FIELD_HINT = 'x-unknown-field-hint';

function constValues(schema: TSchema): string[] | null {
  const anyOf = (schema as { anyOf?: Array<{ const?: unknown }> }).anyOf;
  if (!Array.isArray(anyOf) || anyOf.length === 0 || !anyOf.every((s) => typeof s.const === 'string' || typeof s.const === 'number')) return null;
  return anyOf.map((s) => String(s.const));
}

function describe(error: ValueError, root: TSchema, prefix: string): string {
  const path = fieldPath(error.path, prefix);
  const at = path === '' ? 'request body' : path;
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const name = error.path.split('/').at(-1)!.replace(/~1/g, '/').replace(/~0/g, '~');
    const known = Object.keys((error.schema as { properties?: Record<string, unknown> }).properties ?? {});
    const guess = nearest(name, known);
    const hint = error.path.split('/').length === 2 ? (root as Record<string, unknown>)[UNKNOWN_FIELD_HINT] : undefined;
    return `${at}: unknown field${guess ? `; did you mean "${guess}"?` : known.length ? `; known fields: ${known.join(', ')}` : ''}${typeof hint === 'string' ? ` (${hint})` : ''}`;
  }
  const allowed = constValues(error.schema);
  if (allowed) return `${at}: must be one of ${allowed.join(', ')}, got ${JSON.stringify(error.value)}`;
  const message = error.message.charAt(0).toLowerCase() + error.message.slice(1);
  return `${at}: ${message}`;
}

/** Every violation, as messages naming their fields (empty when valid). A missing
 * field is reported once, not again as "expected string". */
export function schemaProblems(schema: TSchema, value: unknown, prefix = ''): string[] {
  const check = checker(schema);
  if (check.Check(value)) return [];
  const messages: string[] = [];
  const paths = new Set<string>();
  for (const error of check.Errors(value)) {
    if (paths.has(error.path)) continue;
    paths.add(error.path);
    messages.push(describe(error, schema, prefix));
  }
  return messages.length > 0 ? messages : ['the request is invalid'];
}

/** One invalid_request error that lists every problem, or null when valid. */
export function schemaError(schema: TSchema, value: unknown, prefix = ''): ApiError | null {
  const problems = schemaProblems(schema, value, prefix);
  return problems.length === 0 ? null : invalid(joinProblems(problems));
}

/** Kept for callers written before every problem was reported; it now reports them all. */
export const firstSchemaError = schemaError;

export function joinProblems(problems: readonly string[]): string {
  return problems.length === 1 ? problems[0]! : `${problems.length} problems: ${problems.join('; ')}`;
}
