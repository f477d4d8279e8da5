import { evaluate } from '../expressions.js';
import { transformDefinition } from '../../steps/transform.js';
import type { StepType } from './step-type.js';


export const transformStep: StepType<typeof transformDefinition.schema> = {
  ...transformDefinition,
  async run(context, signal) {
    const source = context.fields.expression as string;
    const result = await evaluate(source, context.expressionContext, { deadline: context.deadline, signal, workspaceId: context.workspaceId });
    return { kind: 'completed', result };
  },
};
