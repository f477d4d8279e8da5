import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { invalid, type ApiError } from '../errors.js';

// Turns TypeBox's first error into the documented message convention, naming the exact field:
// `/steps/2/retry/max_attempts` → `steps[2].retry.max_attempts`.

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

/** Returns an invalid_request error for the first violation, or null when valid. */
export function firstSchemaError(schema: TSchema, value: unknown, prefix = ''): ApiError | null {
  const check = checker(schema);
  if (check.Check(value)) return null;
  const error = check.Errors(value).First();
  if (!error) return invalid('the request is invalid');
  const path = fieldPath(error.path, prefix);
  // "Unexpected property" errors point at the property itself; say its name.
  const message = error.message.charAt(0).toLowerCase() + error.message.slice(1);
  return invalid(path === '' ? `request body: ${message}` : `${path}: ${message}`);
}
