import { evaluate, timeoutMessage } from '../expressions.js';
import { StepFailure } from '../step-errors.js';
import { transformDefinition } from '../../steps/transform.js';
import type { StepType } from './step-type.js';


export const transformStep: StepType<typeof transformDefinition.schema> = {
  ...transformDefinition,
  // Running past the budget is the expression's own bound (not retried), whichever of
  // the evaluator and the framework's timer notices first.
  timeoutFailure: (timeoutMs) => new StepFailure('expression_error', timeoutMessage(timeoutMs)),
  async run(context, signal) {
    const source = context.fields.expression as string;
    const result = await evaluate(source, context.expressionContext, context.timeoutMs, signal);
    return { kind: 'completed', result };
  },
};
