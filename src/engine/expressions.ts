import jsonata from 'jsonata';

// JSONata is synchronous at heart and a user's expression is untrusted: every
// evaluation runs with JSONata's own guardrails — a time budget, a stack depth and a
// cap on sequence length (so `[1..100000000]` fails fast instead of allocating).

export const EXPRESSION_LIMITS = { maxDepth: 200, maxSequence: 1_000_000 } as const;

export class ExpressionError extends Error {}

interface CompiledEntry {
  expression: jsonata.Expression;
}

const CACHE_SIZE = 2_000;
const cache = new Map<string, CompiledEntry>();

function describe(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const e = error as { message: string; position?: number; code?: string };
    const where = typeof e.position === 'number' ? ` (at position ${e.position})` : '';
    return `${e.message}${where}`;
  }
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const e = error as { code: string; value?: unknown };
    if (e.code === 'D1012') return `evaluation took longer than ${String(e.value)} ms`;
    if (e.code === 'D1011') return `evaluation nested deeper than ${String(e.value)} levels`;
    if (e.code === 'D2015') return `a sequence grew beyond ${String(e.value)} items`;
    return `JSONata error ${e.code}`;
  }
  return String(error);
}

/** Compiles (with a cache); throws ExpressionError with JSONata's message. */
export function compile(source: string, timeoutMs: number): jsonata.Expression {
  const cacheKey = `${timeoutMs}\u0000${source}`;
  const hit = cache.get(cacheKey);
  if (hit) return hit.expression;
  let expression: jsonata.Expression;
  try {
    expression = jsonata(source, {
      timeout: timeoutMs,
      stack: EXPRESSION_LIMITS.maxDepth,
      sequence: EXPRESSION_LIMITS.maxSequence,
    });
  } catch (error) {
    throw new ExpressionError(describe(error));
  }
  if (cache.size >= CACHE_SIZE) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(cacheKey, { expression });
  return expression;
}

/** Checks that an expression compiles; returns the error message or null. */
export function compileError(source: string): string | null {
  try {
    compile(source, 1000);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Evaluates against a context object; undefined (no match) becomes null. */
export async function evaluate(source: string, context: unknown, timeoutMs: number): Promise<unknown> {
  const expression = compile(source, timeoutMs);
  try {
    const value = await expression.evaluate(context);
    return normalise(value);
  } catch (error) {
    throw new ExpressionError(describe(error));
  }
}

/** JSONata returns sequences (arrays with extra flags) and undefined; results are
 * stored as JSON, so reduce them to plain JSON values. */
function normalise(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'function') return null;
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ExpressionError('the expression produced a number that is not finite');
  }
  return JSON.parse(JSON.stringify(value)) as unknown;
}
