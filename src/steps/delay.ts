import { Type } from '@sinclair/typebox';
import { parseTimestampWithOffset } from '../lib/time.js';
import { type StepDefinitionSpec, stepSchema } from './step-schema.js';

export const MAX_SECONDS = 31_536_000;

const schema = stepSchema('delay', {
  seconds: Type.Optional(
    Type.Union([Type.Number({ minimum: 0, maximum: MAX_SECONDS }), Type.String({ maxLength: 1000 })], {
      description: `0–${MAX_SECONDS} seconds, or a {{ }} template giving such a number`,
    }),
  ),
  until: Type.Optional(Type.String({ maxLength: 1000, description: 'ISO 8601 timestamp with an offset' })),
});

export const delayDefinition = {
  type: 'delay',
  schema,
  defaultTimeoutMs: 1000,
  expressionFields: [],
  check(step) {
    const hasSeconds = step.seconds !== undefined;
    const hasUntil = step.until !== undefined;
    if (hasSeconds === hasUntil) return ['seconds', 'give exactly one of "seconds" or "until"'];
    if (typeof step.seconds === 'string' && !step.seconds.includes('{{')) {
      return ['seconds', 'must be a number (or a {{ }} template)'];
    }
    if (typeof step.until === 'string' && !step.until.includes('{{') && parseTimestampWithOffset(step.until) === null) {
      return ['until', `"${step.until}" is not an ISO 8601 timestamp with an offset (e.g. 2026-01-15T10:30:00+00:00)`];
    }
    return null;
  },
} as const satisfies StepDefinitionSpec<typeof schema>;
