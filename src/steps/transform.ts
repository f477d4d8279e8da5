import { Type } from '@sinclair/typebox';
import { ForEachFields, type StepDefinitionSpec, stepSchema } from './step-schema.js';

const schema = stepSchema('transform', {
  ...ForEachFields,
  expression: Type.String({ minLength: 1, maxLength: 100_000, description: 'JSONata; its value is the result' }),
});

export const transformDefinition = {
  type: 'transform',
  schema,
  defaultTimeoutMs: 1000,
  expressionFields: ['expression'],
  pure: true,
} as const satisfies StepDefinitionSpec<typeof schema>;
