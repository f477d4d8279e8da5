import { Type } from '@sinclair/typebox';
import { formatTimestamp, parseTimestampWithOffset } from '../../lib/time.js';
import { StepFailure } from '../step-errors.js';
import { type StepType, stepSchema } from './step-type.js';

const MAX_SECONDS = 31_536_000;

const schema = stepSchema('delay', {
  seconds: Type.Optional(
    Type.Union([Type.Number({ minimum: 0, maximum: MAX_SECONDS }), Type.String({ maxLength: 1000 })], {
      description: `0–${MAX_SECONDS} seconds, or a {{ }} template giving such a number`,
    }),
  ),
  until: Type.Optional(Type.String({ maxLength: 1000, description: 'ISO 8601 timestamp with an offset' })),
});

function wakeTime(fields: Record<string, unknown>, now: number): number {
  if (fields.until !== undefined) {
    const at = typeof fields.until === 'string' ? parseTimestampWithOffset(fields.until) : null;
    if (at === null) {
      throw new StepFailure('expression_error', `until: "${String(fields.until)}" is not an ISO 8601 timestamp with an offset`);
    }
    return at;
  }
  const seconds = typeof fields.seconds === 'string' ? Number(fields.seconds) : fields.seconds;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0 || seconds > MAX_SECONDS) {
    throw new StepFailure('expression_error', `seconds: ${JSON.stringify(fields.seconds)} is not a number of seconds between 0 and ${MAX_SECONDS}`);
  }
  return now + Math.round(seconds * 1000);
}

export const delayStep: StepType<typeof schema> = {
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
  async run(context) {
    // The wake-up time is fixed the first time the step runs and stored durably, so
    // a restart neither shortens nor lengthens the wait, and it never fires early.
    const until = context.wakeAt ?? wakeTime(context.fields, context.now());
    if (context.now() < until) return { kind: 'sleep', until };
    return { kind: 'completed', result: { waited_until: formatTimestamp(until) } };
  },
};
