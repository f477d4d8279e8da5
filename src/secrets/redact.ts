// Redaction: every value of a secret a step used becomes [REDACTED] in what is stored
// of that step (its result and its error) and in what is logged about it. It can only
// find the value as it was: a secret the endpoint or a template transformed (encoded
// in base64, hashed, split) is not recognised — docs/secrets.md says so.

export const REDACTED = '[REDACTED]';

/** Longest first, so that a secret containing another is replaced whole. */
function ordered(values: Iterable<string>): string[] {
  return [...new Set(values)].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
}

export function redactText(text: string, values: Iterable<string>): string {
  let out = text;
  for (const value of ordered(values)) if (out.includes(value)) out = out.split(value).join(REDACTED);
  return out;
}

/** A copy of a JSON value with every occurrence of the values replaced, in strings and keys. */
export function redactValue(value: unknown, values: Iterable<string>): unknown {
  const list = ordered(values);
  if (list.length === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return redactText(v, list);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) Object.defineProperty(out, redactText(k, list), { value: walk(item), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return v;
  };
  return walk(value);
}
