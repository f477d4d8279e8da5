import { Type } from '@sinclair/typebox';
import { hasTemplate } from '../engine/template.js';
import { ForEachFields, type StepDefinitionSpec, stepSchema } from './step-schema.js';

// The `email` step's fields and their write-time checks.

const Addresses = Type.Union([
  Type.String({ minLength: 1, maxLength: 10_000 }),
  Type.Array(Type.String({ minLength: 1, maxLength: 1000 }), { minItems: 1, maxItems: 100 }),
]);

const schema = stepSchema('email', {
  ...ForEachFields,
  to: Addresses,
  cc: Type.Optional(Addresses),
  bcc: Type.Optional(Addresses),
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: 'default: the SMTP URL’s user when it is an address, else skipflow@localhost' })),
  subject: Type.String({ maxLength: 10_000 }),
  text: Type.Optional(Type.String({ maxLength: 1_000_000, description: 'plain-text body; give text, html or both' })),
  html: Type.Optional(Type.String({ maxLength: 1_000_000, description: 'HTML body; give text, html or both' })),
});

function check(step: Record<string, unknown>): [string, string] | null {
  if (step.text === undefined && step.html === undefined) return ['text', 'give "text", "html" or both'];
  for (const field of ['to', 'cc', 'bcc', 'from']) {
    const value = step[field];
    const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
    const at = list.findIndex((item) => typeof item === 'string' && !hasTemplate(item) && !item.includes('@'));
    if (at !== -1) {
      return [Array.isArray(value) ? `${field}[${at}]` : field, `${JSON.stringify(list[at])} is not an email address (like ada@example.com) or a {{ }} template`];
    }
  }
  return null;
}

export const emailDefinition = {
  type: 'email',
  schema,
  defaultTimeoutMs: 30_000,
  expressionFields: [],
  usesSecrets: true,
  check,
} as const satisfies StepDefinitionSpec<typeof schema>;
