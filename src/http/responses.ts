import { type TSchema, Type } from '@sinclair/typebox';
import { ERROR_STATUS, type ErrorCode } from '../errors.js';

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'What went wrong and what to do' }),
    error_code: Type.Union(Object.keys(ERROR_STATUS).map((c) => Type.Literal(c))),
  },
  { title: 'Error' },
);

/** The response map of a route: its success plus the errors it can answer. */
export function responses(success: Record<number, TSchema>, codes: readonly ErrorCode[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = { ...success };
  for (const code of ['unauthorized', 'rate_limited', 'internal_error', ...codes] as ErrorCode[]) {
    out[ERROR_STATUS[code]] = ErrorBody;
  }
  return out;
}
