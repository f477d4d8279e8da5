import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
import { firstSchemaError } from './schema-errors.js';

// Route schemas are TypeBox; the same schemas validate requests (here), type the
// handlers (the type provider) and describe the API (@fastify/swagger). Validation
// uses TypeBox's compiler rather than Ajv so that every message names the field in
// docs/api.md's convention. Query strings arrive as text and are converted first.

const INTEGER_TEXT = /^-?\d+$/;
const NUMBER_TEXT = /^-?\d+(\.\d+)?$/;

/** Value.Convert is lenient ("1.5" → 1, "0x10" → 16, " 5" → 5); a query parameter
 * declared as a number must be written as one, or it stays text and fails the check. */
function convertStrictly(schema: TSchema, data: unknown): unknown {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  if (!properties || typeof data !== 'object' || data === null) return Value.Convert(schema, data);
  const original = { ...(data as Record<string, unknown>) }; // Convert may write into its argument
  const converted = Value.Convert(schema, { ...original });
  if (typeof converted !== 'object' || converted === null) return converted;
  const out = { ...(converted as Record<string, unknown>) };
  for (const [name, property] of Object.entries(properties)) {
    const raw = original[name];
    if (typeof raw !== 'string') continue;
    if (property.type === 'integer' && !INTEGER_TEXT.test(raw)) out[name] = raw;
    else if (property.type === 'number' && !NUMBER_TEXT.test(raw)) out[name] = raw;
  }
  return out;
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const convert = httpPart === 'querystring' || httpPart === 'params' || httpPart === 'headers';
  return (data: unknown) => {
    const value = convert ? convertStrictly(schema, data) : data;
    const error = firstSchemaError(schema, value);
    return error ? { error } : { value };
  };
};
