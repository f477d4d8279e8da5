import { formatTimestamp, parseTimestampWithOffset } from '../../lib/time.js';
import { StepFailure } from '../step-errors.js';
import { MAX_SECONDS, delayDefinition } from '../../steps/delay.js';
import type { StepType } from './step-type.js';

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

export const delayStep: StepType<typeof delayDefinition.schema> = {
  ...delayDefinition,
  async run(context) {
    // The wake-up time is fixed the first time the step runs and stored durably, so
    // a restart neither shortens nor lengthens the wait, and it never fires early.
    const until = context.wakeAt ?? wakeTime(context.fields, context.now());
    if (context.now() < until) return { kind: 'sleep', until };
    return { kind: 'completed', result: { waited_until: formatTimestamp(until) } };
  },
};
