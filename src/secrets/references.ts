import jsonata from 'jsonata';
import { forEachString, hasTemplate, parseTemplate } from '../engine/template.js';

// Which secrets an expression or a step's templates name. `secrets` is a root name of
// the expression context (only while an http or email step's templates render), so a
// reference is a path that starts at the root with `secrets`: `secrets.TOKEN`, or
// `$$.secrets.TOKEN`. A `secrets` further down a path (`input.secrets`) is ordinary
// data. Only named references are allowed — the engine decrypts exactly the secrets a
// step names, no more — so a bare `secrets` (or `$lookup(secrets, x)`) is refused
// when the workflow is written.

type Node = { type?: string; value?: unknown; steps?: Node[] } & Record<string, unknown>;

/** A named reference (`TOKEN`), or null for a `secrets` not followed by a name. */
export type SecretRef = string | null;

function visit(node: unknown, rooted: boolean, out: SecretRef[]): void {
  if (Array.isArray(node)) {
    for (const item of node) visit(item, rooted, out);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const n = node as Node;
  if (n.type === 'path' && Array.isArray(n.steps)) {
    const [first, second, third] = n.steps;
    const rootVariable = first?.type === 'variable' && (first.value === '' || first.value === '$');
    if (rooted && first?.type === 'name' && first.value === 'secrets') out.push(second?.type === 'name' ? String(second.value) : null);
    else if (first?.type === 'variable' && first.value === '$' && second?.type === 'name' && second.value === 'secrets') out.push(third?.type === 'name' ? String(third.value) : null);
    else if (rooted && rootVariable && second?.type === 'name' && second.value === 'secrets') out.push(third?.type === 'name' ? String(third.value) : null);
    // The first step is evaluated where the path is; the later ones relative to it.
    n.steps.forEach((step, i) => {
      for (const [key, value] of Object.entries(step)) if (key !== 'value' && key !== 'type') visit(value, i === 0 ? rooted : false, out);
    });
    for (const [key, value] of Object.entries(n)) if (key !== 'steps' && key !== 'type') visit(value, rooted, out);
    return;
  }
  if (n.type === 'name' && n.value === 'secrets' && rooted) out.push(null);
  for (const [key, value] of Object.entries(n)) if (key !== 'type' && key !== 'value') visit(value, rooted, out);
}

/** The secret references of one JSONata expression ([] when it does not compile). */
export function expressionSecretRefs(source: string): SecretRef[] {
  let ast: unknown;
  try {
    ast = jsonata(source).ast();
  } catch {
    return [];
  }
  const out: SecretRef[] = [];
  visit(ast, true, out);
  return out;
}

/** Every secret reference in the templates of `value` (a step field), with its path. */
export function templateSecretRefs(value: unknown, path: string): Array<{ path: string; ref: SecretRef }> {
  const out: Array<{ path: string; ref: SecretRef }> = [];
  forEachString(value, path, (text, at) => {
    if (!hasTemplate(text)) return;
    let segments;
    try {
      segments = parseTemplate(text);
    } catch {
      return;
    }
    for (const segment of segments) if ('expr' in segment) for (const ref of expressionSecretRefs(segment.expr)) out.push({ path: at, ref });
  });
  return out;
}

const cache = new WeakMap<object, readonly string[]>();

/** The names of the secrets a step definition's templated fields use (cached per definition). */
export function stepSecretNames(def: Record<string, unknown>, untemplated: ReadonlySet<string>): readonly string[] {
  let names = cache.get(def);
  if (names === undefined) {
    const set = new Set<string>();
    for (const [field, value] of Object.entries(def)) {
      if (untemplated.has(field)) continue;
      for (const { ref } of templateSecretRefs(value, field)) if (ref !== null) set.add(ref);
    }
    names = [...set];
    cache.set(def, names);
  }
  return names;
}
