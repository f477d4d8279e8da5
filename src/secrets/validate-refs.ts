import type { StepDefinitionSpec } from '../steps/step-schema.js';
import { UNTEMPLATED_FIELDS } from '../steps/step-schema.js';
import { expressionSecretRefs, templateSecretRefs } from './references.js';
import { SECRET_NAME } from './store.js';

// Where a workflow may use secrets, checked when it is written: in the templates of
// http and email steps only, always by name. In `if`, in a transform's expression and
// in other steps' templates `secrets` does not exist, so naming it there is an error
// rather than a silent null.

/** [field path, message] for the first misuse of `secrets` in a step, or null. */
export function secretRefProblem(fields: Record<string, unknown>, type: StepDefinitionSpec): [string, string] | null {
  const nowhere = (where: string) => `secrets are not available in ${where}; use {{ secrets.NAME }} only in the fields of http and email steps`;
  if (typeof fields.if === 'string' && expressionSecretRefs(fields.if).length > 0) return ['if', nowhere('"if"')];
  if (typeof fields.for_each === 'string' && expressionSecretRefs(fields.for_each).length > 0) return ['for_each', nowhere('"for_each"')];
  for (const name of type.expressionFields) {
    const source = fields[name];
    if (typeof source === 'string' && expressionSecretRefs(source).length > 0) return [name, nowhere(`a ${type.type} step's ${name}`)];
  }
  const expressionFields = new Set(type.expressionFields);
  for (const [name, value] of Object.entries(fields)) {
    if (UNTEMPLATED_FIELDS.has(name) || expressionFields.has(name)) continue;
    for (const { path, ref } of templateSecretRefs(value, name)) {
      if (!type.usesSecrets) return [path, nowhere(`a ${type.type} step`)];
      if (ref === null) return [path, 'name the secret: write {{ secrets.NAME }}'];
      if (!SECRET_NAME.test(ref)) return [path, `"${ref}" is not a secret name (letters, digits and _, not starting with a digit, at most 64)`];
    }
  }
  return null;
}
