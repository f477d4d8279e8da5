import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
import { firstSchemaError } from './schema-errors.js';

// Route schemas are TypeBox; the same schemas validate requests (here), type the
// handlers (the type provider) and describe the API (@fastify/swagger). Validation
// uses TypeBox's compiler rather than Ajv so that every message names the field in
// SPEC's convention. Query strings arrive as text and are converted first.

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const convert = httpPart === 'querystring' || httpPart === 'params' || httpPart === 'headers';
  return (data: unknown) => {
    const value = convert ? Value.Convert(schema, data) : data;
    const error = firstSchemaError(schema, value);
    return error ? { error } : { value };
  };
};
