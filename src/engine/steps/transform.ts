import { Type } from '@sinclair/typebox';
import { evaluate } from '../expressions.js';
import { type StepType, stepSchema } from './step-type.js';

const schema = stepSchema('transform', {
  expression: Type.String({ minLength: 1, maxLength: 100_000, description: 'JSONata; its value is the result' }),
});

export const transformStep: StepType<typeof schema> = {
  type: 'transform',
  schema,
  defaultTimeoutMs: 1000,
  expressionFields: ['expression'],
  async run(context, signal) {
    const source = context.fields.expression as string;
    const result = await evaluate(source, context.expressionContext, { deadline: context.deadline, signal, workspaceId: context.workspaceId });
    return { kind: 'completed', result };
  },
};
