import { type EvaluateOptions, compileError, evaluate } from './expressions.js';

// `{{ expr }}` templates in step fields. A string that is exactly one
// template takes the expression's value with its JSON type; a string that mixes text
// and templates stays a string, each value rendered as text (objects as JSON).

type Segment = { text: string } | { expr: string };

const OPEN = '{{';
const CLOSE = '}}';

export class TemplateSyntaxError extends Error {}

export function parseTemplate(value: string): Segment[] {
  const segments: Segment[] = [];
  let rest = value;
  while (rest.length > 0) {
    const start = rest.indexOf(OPEN);
    if (start === -1) {
      segments.push({ text: rest });
      break;
    }
    if (start > 0) segments.push({ text: rest.slice(0, start) });
    const end = rest.indexOf(CLOSE, start + OPEN.length);
    if (end === -1) throw new TemplateSyntaxError(`"{{" at position ${value.length - rest.length + start} is never closed with "}}"`);
    const expr = rest.slice(start + OPEN.length, end).trim();
    if (expr === '') throw new TemplateSyntaxError('empty template "{{ }}"');
    segments.push({ expr });
    rest = rest.slice(end + CLOSE.length);
  }
  return segments;
}

export function hasTemplate(value: string): boolean {
  return value.includes(OPEN);
}

/** Returns an error message for a string whose templates do not parse or compile. */
export function templateError(value: string): string | null {
  if (!hasTemplate(value)) return null;
  let segments: Segment[];
  try {
    segments = parseTemplate(value);
  } catch (error) {
    return (error as Error).message;
  }
  for (const segment of segments) {
    if ('expr' in segment) {
      const message = compileError(segment.expr);
      if (message) return `template "{{ ${segment.expr} }}" does not compile: ${message}`;
    }
  }
  return null;
}

function asText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

async function renderString(value: string, context: unknown, options: EvaluateOptions): Promise<unknown> {
  if (!hasTemplate(value)) return value;
  const segments = parseTemplate(value);
  const only = segments.length === 1 ? segments[0] : undefined;
  if (only && 'expr' in only) return evaluate(only.expr, context, options);
  let out = '';
  for (const segment of segments) {
    out += 'text' in segment ? segment.text : asText(await evaluate(segment.expr, context, options));
  }
  return out;
}

/** Sets `key` as an own data property, whatever it is: a plain `out[key] = value`
 * with key "__proto__" would set the prototype instead, and the key would be lost. */
export function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Renders every string inside a JSON value (objects and arrays included); every key
 * comes out as written. All the templates share `options.deadline` and `signal`. */
export async function renderTemplates(value: unknown, context: unknown, options: EvaluateOptions): Promise<unknown> {
  if (typeof value === 'string') return renderString(value, context, options);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) out.push(await renderTemplates(item, context, options));
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setOwn(out, key, await renderTemplates(item, context, options));
    return out;
  }
  return value;
}

/** Visits every string of a JSON value with its path (`headers.Authorization`, `to[0]`). */
export function forEachString(value: unknown, path: string, visit: (value: string, path: string) => void): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((item, i) => forEachString(item, `${path}[${i}]`, visit));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) forEachString(item, path ? `${path}.${key}` : key, visit);
  }
}
