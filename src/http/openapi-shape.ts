// What turns the route schemas into a document that generators and people can use:
// - every route gets an operationId (its own, or one derived from method and path)
//   and its scope in `security`;
// - every schema with a `title` (Workflow, Execution, StepResult, Error, …) becomes a
//   named component, referenced from wherever it appears;
// - a union of string constants (TypeBox's literal unions) becomes an `enum`.
// The route schemas stay the one source: this only reshapes what they say.

type Json = Record<string, unknown>;

interface RouteLike {
  method: string | string[];
  url: string;
  config?: { scope?: string };
}

/** `POST /api/v1/workflows/:id/run-async` → `postWorkflowsIdRunAsync` (when a route names none). */
export function derivedOperationId(method: string, url: string): string {
  const words = url
    .replace(/^\/api\/v1\//, '')
    .split(/[/_-]+/)
    .filter(Boolean)
    .map((w) => w.replace(/^:/, ''));
  return [method.toLowerCase(), ...words.map((w) => w.charAt(0).toUpperCase() + w.slice(1))].join('');
}

/** The per-route part (@fastify/swagger's `transform`). */
export function shapeRoute({ schema, url, route }: { schema: unknown; url: string; route: RouteLike }): { schema: Json; url: string } {
  const shaped: Json = { ...((schema as Json | undefined) ?? {}) };
  const method = Array.isArray(route.method) ? route.method[0]! : route.method;
  shaped.operationId ??= derivedOperationId(method, route.url);
  const scope = route.config?.scope;
  if (scope === 'public') shaped.security = [];
  else if (scope) shaped.security = [{ bearer: [scope] }];
  return { schema: shaped, url };
}

function isStringConstUnion(node: Json): node is { anyOf: Array<{ const: string }> } {
  const anyOf = node.anyOf;
  return Array.isArray(anyOf) && anyOf.length > 0 && anyOf.every((a) => a && typeof a === 'object' && typeof (a as Json).const === 'string' && Object.keys(a as Json).every((k) => k === 'const' || k === 'type'));
}

/** The whole-document part (@fastify/swagger's `transformObject`). */
export function shapeDocument(doc: Json): Json {
  const components = ((doc.components as Json | undefined) ??= {});
  const schemas = ((components.schemas as Json | undefined) ??= {}) as Record<string, Json>;
  const byTitle = new Map<string, string>(); // title → canonical JSON

  const visit = (node: unknown, top: boolean): unknown => {
    if (Array.isArray(node)) return node.map((n) => visit(n, false));
    if (!node || typeof node !== 'object') return node;
    let obj = Object.fromEntries(Object.entries(node as Json).map(([k, v]) => [k, visit(v, false)])) as Json;
    if (isStringConstUnion(obj)) {
      const { anyOf, ...rest } = obj;
      obj = { ...rest, type: 'string', enum: anyOf.map((a) => a.const) };
    }
    const title = obj.title;
    if (!top && typeof title === 'string' && /^[A-Za-z][A-Za-z0-9]*$/.test(title)) {
      const text = JSON.stringify(obj);
      let name = title;
      for (let n = 2; byTitle.has(name) && byTitle.get(name) !== text; n++) name = `${title}${n}`;
      byTitle.set(name, text);
      schemas[name] = obj;
      return { $ref: `#/components/schemas/${name}` };
    }
    return obj;
  };

  const paths = doc.paths as Record<string, Record<string, Json>> | undefined;
  for (const ops of Object.values(paths ?? {})) {
    for (const [method, op] of Object.entries(ops)) ops[method] = visit(op, true) as Json;
  }
  return doc;
}
