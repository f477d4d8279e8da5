// Which expressions may run on the main thread: those whose every single evaluation
// step is provably cheap, so JSONata's own between-steps checks (time, depth, sequence
// length) bound the whole evaluation. Everything else runs in an evaluator process
// that can be killed (expression-pool.ts).
//
// One step is cheap when nothing in it can backtrack, sort, deduplicate, recurse or
// build a value much larger than the data it was given. The data is bounded separately
// (FAST_CONTEXT_CHARS, checked at run time); the rules below keep every value an
// evaluation can build within (size of the expression) × (size of the data):
// - no regex (catastrophic backtracking inside one call), no `^( )` sort, no `**`,
//   no `%`, no `#$i`/`@$v` bindings, no grouping `a{…}`, no `|…|` transforms;
// - no `:=` and no `function` / partial application: nothing can be bound, so nothing
//   recurses and no value is referenced more often than the expression mentions it;
// - a range only between two literals, at most MAX_LITERAL_RANGE apart;
// - only the built-ins below, each linear in its arguments and never larger than them;
// - a path step after the first is a field name (or `*`, with filters) or an
//   expression that yields a number or boolean: a step is evaluated once per item, so
//   one that could yield a copy of something bigger than its item (`items.($$)`,
//   `items.[$, $]`, `items.($ & $)` chained) would multiply the data at every step.
// Anything not understood here is simply not fast: the classification may be too
// cautious, never too trusting.

type Node = Record<string, unknown> & { type: string; value?: unknown };

const MAX_LITERAL_RANGE = 100;
const MAX_AST_DEPTH = 64;

/** Built-ins that return a number, boolean or short string, linear in their arguments. */
const SCALAR_FUNCTIONS = new Set([
  'count', 'sum', 'max', 'min', 'average', 'exists', 'boolean', 'not', 'number',
  'abs', 'floor', 'ceil', 'round', 'sqrt', 'power', 'length', 'contains', 'type', 'millis',
]);

/** Built-ins whose value is linear in, and no larger than, their arguments. */
const SIZED_FUNCTIONS = new Set([
  'substring', 'substringBefore', 'substringAfter', 'uppercase', 'lowercase', 'trim',
  'keys', 'lookup', 'append', 'reverse', 'merge', 'error', 'assert',
]);

/** Built-ins allowed only with this many arguments (`$string(x, true)` indents by depth;
 * `$now(picture)` formats). */
const ONLY_WITH_ARITY = new Map([
  ['string', 1],
  ['now', 0],
]);

const SCALAR_OPERATORS = new Set(['+', '-', '*', '/', '%', '=', '!=', '<', '<=', '>', '>=', 'and', 'or', 'in']);

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && typeof (value as Node).type === 'string';
}

/** `piped`: called by `x ~> $f(…)`, which passes x as a first argument. */
function allowedCall(node: Node, piped = false): boolean {
  const procedure = node.procedure;
  if (!isNode(procedure) || procedure.type !== 'variable' || typeof procedure.value !== 'string') return false;
  const name = procedure.value;
  const args = Array.isArray(node.arguments) ? node.arguments : [];
  const arity = ONLY_WITH_ARITY.get(name);
  if (arity !== undefined) return args.length + (piped ? 1 : 0) === arity;
  return SCALAR_FUNCTIONS.has(name) || SIZED_FUNCTIONS.has(name);
}

/** A node whose value is a number or boolean (or nothing), whatever its operands. */
function isScalar(node: Node): boolean {
  switch (node.type) {
    case 'number':
    case 'value':
      return true;
    case 'binary':
      return SCALAR_OPERATORS.has(node.value as string);
    case 'unary':
      return node.value === '-';
    case 'function':
      return isNode(node.procedure) && SCALAR_FUNCTIONS.has(node.procedure.value as string);
    case 'block': {
      const expressions = node.expressions as unknown[];
      return expressions.length === 1 && isNode(expressions[0]) && isScalar(expressions[0]);
    }
    case 'condition':
      return isNode(node.then) && isScalar(node.then) && (node.else === undefined || (isNode(node.else) && isScalar(node.else)));
    default:
      return false;
  }
}

function filtersBounded(stages: unknown, depth: number): boolean {
  if (stages === undefined) return true;
  if (!Array.isArray(stages)) return false;
  return stages.every((stage) => isNode(stage) && stage.type === 'filter' && bounded(stage.expr, depth));
}

function pathBounded(node: Node, depth: number): boolean {
  const steps = node.steps;
  if (!Array.isArray(steps) || steps.length === 0) return false;
  return steps.every((step, i) => {
    if (!isNode(step)) return false;
    if (i === 0 || step.type === 'name' || step.type === 'wildcard' || isScalar(step)) return bounded(step, depth);
    return false;
  });
}

function bounded(value: unknown, depth: number): boolean {
  if (!isNode(value) || depth > MAX_AST_DEPTH) return false;
  const node = value;
  const next = depth + 1;
  // Variable bindings and grouping, wherever the parser puts them.
  if ('group' in node || 'focus' in node || 'index' in node || 'tuple' in node || 'ancestor' in node) return false;
  if (!filtersBounded(node.stages, next) || !filtersBounded(node.predicate, next)) return false;
  switch (node.type) {
    case 'string':
    case 'number':
    case 'value':
    case 'name':
    case 'wildcard':
      return true;
    case 'variable':
      return node.value === '' || node.value === '$'; // `$` and `$$`: the context
    case 'path':
      return pathBounded(node, next);
    case 'binary':
      if (node.value === '..') {
        const [lhs, rhs] = [node.lhs as Node, node.rhs as Node];
        return lhs?.type === 'number' && rhs?.type === 'number' && (rhs.value as number) - (lhs.value as number) <= MAX_LITERAL_RANGE;
      }
      return (SCALAR_OPERATORS.has(node.value as string) || node.value === '&') && bounded(node.lhs, next) && bounded(node.rhs, next);
    case 'unary':
      if (node.value === '-') return bounded(node.expression, next);
      if (node.value === '[') return (node.expressions as unknown[]).every((item) => bounded(item, next));
      if (node.value === '{') return (node.lhs as unknown[][]).every((pair) => Array.isArray(pair) && pair.every((item) => bounded(item, next)));
      return false;
    case 'condition':
      return bounded(node.condition, next) && bounded(node.then, next) && (node.else === undefined || bounded(node.else, next));
    case 'block':
      return (node.expressions as unknown[]).every((item) => bounded(item, next));
    case 'function':
      return allowedCall(node) && (node.arguments as unknown[]).every((item) => bounded(item, next));
    case 'apply': // `x ~> $f(…)` is `$f(x, …)`
      return (
        isNode(node.rhs) && node.rhs.type === 'function' && allowedCall(node.rhs, true) && bounded(node.lhs, next) &&
        (node.rhs.arguments as unknown[]).every((item) => bounded(item, next))
      );
    default:
      return false;
  }
}

/** True when every evaluation step of this (parsed) expression is cheap; see above. */
export function isBoundedPerStep(ast: unknown): boolean {
  try {
    return bounded(ast, 0);
  } catch {
    return false; // an AST shape this file does not know
  }
}
