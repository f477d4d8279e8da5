// The scopes of docs/api.md#api-keys-and-scopes. The product's three keep their exact meaning; the rest are
// SkipFlow's. `workflows:delete` is never granted unless asked for, except to the
// all-scope key made with a workspace.

export const SCOPES = [
  'workflows:read',
  'workflows:write',
  'workflows:delete',
  'workflows:execute',
  'executions:read',
  'workspace:read',
  'secrets:read',
  'secrets:write',
] as const;

export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Parses "a,b,c"; throws with the offending name. */
export function parseScopes(list: string): Scope[] {
  const names = [...new Set(list.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  if (names.length === 0) throw new Error(`no scopes given; choose from ${SCOPES.join(', ')}`);
  for (const name of names) {
    if (!isScope(name)) throw new Error(`unknown scope "${name}"; choose from ${SCOPES.join(', ')}`);
  }
  return names as Scope[];
}
