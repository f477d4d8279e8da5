import { Type } from '@sinclair/typebox';
import { hasTemplate } from '../engine/template.js';
import { ForEachFields, type StepDefinitionSpec, stepSchema } from './step-schema.js';

// The `http` step's fields and their write-time checks (a literal url, method,
// header or status is checked when the workflow is written; templates after
// rendering, by the engine).

const isHttpUrl = (url: URL) => url.protocol === 'http:' || url.protocol === 'https:';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const Scalar = Type.Union([Type.String({ maxLength: 100_000 }), Type.Number(), Type.Boolean(), Type.Null()]);
const Template = Type.String({ maxLength: 100_000, description: 'a {{ }} template giving the value' });

const schema = stepSchema('http', {
  ...ForEachFields,
  method: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: `${HTTP_METHODS.join(', ')}; default GET` })),
  url: Type.String({ minLength: 1, maxLength: 16_384, description: 'absolute http:// or https:// URL' }),
  headers: Type.Optional(Type.Union([Type.Record(Type.String(), Scalar), Template], { description: 'request headers; a null value is not sent' })),
  query: Type.Optional(
    Type.Union([Type.Record(Type.String(), Type.Union([Scalar, Type.Array(Scalar)])), Template], { description: 'appended to the url’s query string' }),
  ),
  body: Type.Optional(Type.Unknown({ description: 'a JSON value (sent as application/json) or a string (sent as is)' })),
  expect_status: Type.Optional(
    Type.Union([Type.Array(Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Template]), { minItems: 1, maxItems: 100 }), Template], {
      description: 'accepted statuses; default any 2xx',
    }),
  ),
});

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const isTemplate = (value: unknown) => typeof value === 'string' && hasTemplate(value);

/** Why `url` is not an http(s) URL, or null; a template is judged by its literal scheme, if any. */
function urlProblem(url: string): string | null {
  if (hasTemplate(url)) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url.slice(0, url.indexOf('{{')))?.[1];
    return scheme && !/^https?$/i.test(scheme) ? `uses ${scheme.toLowerCase()}:; an http step only reaches http:// and https:// URLs` : null;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not an absolute URL; write it as http://host/path or https://host/path`;
  }
  return isHttpUrl(parsed) ? null : `"${url}" uses ${parsed.protocol}; an http step only reaches http:// and https:// URLs`;
}

export function methodProblem(method: unknown): string | null {
  return typeof method === 'string' && (HTTP_METHODS as readonly string[]).includes(method.toUpperCase())
    ? null
    : `${JSON.stringify(method)} is not a method; use one of ${HTTP_METHODS.join(', ')}`;
}

function check(step: Record<string, unknown>): [string, string] | null {
  const url = urlProblem(step.url as string);
  if (url) return ['url', url];
  if (step.method !== undefined && !isTemplate(step.method)) {
    const problem = methodProblem(step.method);
    if (problem) return ['method', problem];
  }
  if (typeof step.headers === 'object' && step.headers !== null) {
    for (const [name, value] of Object.entries(step.headers)) {
      if (!TOKEN.test(name)) return [`headers.${name}`, 'is not a valid header name'];
      if (typeof value === 'string' && /[\r\n\0]/.test(value)) return [`headers.${name}`, 'must not contain line breaks'];
    }
  } else if (typeof step.headers === 'string' && !hasTemplate(step.headers)) return ['headers', 'must be an object (or a {{ }} template giving one)'];
  if (typeof step.query === 'string' && !hasTemplate(step.query)) return ['query', 'must be an object (or a {{ }} template giving one)'];
  const expect = step.expect_status;
  if (typeof expect === 'string' && !hasTemplate(expect)) return ['expect_status', 'must be a list of status codes (or a {{ }} template giving one)'];
  if (Array.isArray(expect)) {
    const at = expect.findIndex((item) => typeof item === 'string' && !hasTemplate(item));
    if (at !== -1) return [`expect_status[${at}]`, 'must be an integer status code between 100 and 599 (or a {{ }} template)'];
  }
  return null;
}

export const httpDefinition = {
  type: 'http',
  schema,
  defaultTimeoutMs: 30_000,
  expressionFields: [],
  usesSecrets: true,
  check,
} as const satisfies StepDefinitionSpec<typeof schema>;
