import { Type } from '@sinclair/typebox';
import { evaluate, timeoutMessage } from '../expressions.js';
import { StepFailure } from '../step-errors.js';
import { type StepType, stepSchema } from './step-type.js';

const schema = stepSchema('transform', {
  expression: Type.String({ minLength: 1, maxLength: 100_000, description: 'JSONata; its value is the result' }),
});

export const transformStep: StepType<typeof schema> = {
  type: 'transform',
  schema,
  defaultTimeoutMs: 1000,
  expressionFields: ['expression'],
  pure: true,
  // Running past the budget is the expression's own bound (not retried), whichever of
  // the evaluator and the framework's timer notices first.
  timeoutFailure: (timeoutMs) => new StepFailure('expression_error', timeoutMessage(timeoutMs)),
  async run(context, signal) {
    const source = context.fields.expression as string;
    const result = await evaluate(source, context.expressionContext, context.timeoutMs, signal);
    return { kind: 'completed', result };
  },
};
