import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS whose typings claim an ES default export; at runtime the
// default import is the function itself.
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

// docs/api.md#idempotency: a request's fingerprint is its method, its path without the query string,
// and its body canonicalised as RFC 8785 JSON (an empty body counts as `{}`), so
// `{"a":1,"b":2}` and `{ "b": 2, "a": 1 }` are the same request.

export function fingerprint(method: string, url: string, body: unknown): string {
  const path = url.split('?')[0]!;
  const canonical = canonicalize(body === undefined || body === null ? {} : body) ?? '{}';
  return createHash('sha256').update(`${method.toUpperCase()}\n${path}\n${canonical}`).digest('hex');
}
