import { StepFailure } from './step-errors.js';

// A step's result is stored as JSON text and handed to every later expression, so
// before it is stored it must be something the database, the API and the next
// worker can all read back: bounded in size and in depth, and serializable at all.
// JSON.stringify recurses once per level, so a result nested 100,000 levels deep
// (a hostile http response, a runaway transform) overflowed the stack at the very
// moment it was checkpointed: the worker took that for a crash, gave the execution
// up, and the step ran (and re-sent its request) again after every lease. This
// serializer is iterative — it keeps its own stack, never the call stack — and it
// stops as soon as a bound is crossed, so a 100 MB result is refused without first
// building a 100 MB string. Its output is exactly JSON.stringify's for JSON values
// (toJSON, undefined/functions skipped or null, non-finite numbers as null).

export const DEFAULT_MAX_RESULT_BYTES = 1024 * 1024;
/** Far below what JSON.stringify, JSON.parse and JSONata can walk, far above what real data nests. */
export const MAX_RESULT_DEPTH = 128;

export interface ResultLimits {
  /** UTF-8 bytes of the JSON text. */
  readonly maxBytes: number;
  /** Nesting of arrays and objects; the top-level value's own container is level 1. */
  readonly maxDepth: number;
}

export type StorableResult = { ok: true; text: string; bytes: number } | { ok: false; failure: StepFailure };

class Refused extends Error {
  constructor(readonly failure: StepFailure) {
    super(failure.message);
  }
}

interface Frame {
  readonly container: object;
  /** Array items, or the object's own enumerable keys. */
  readonly keys: readonly string[] | null;
  readonly items: readonly unknown[] | null;
  next: number;
  wrote: boolean;
}

const tooLarge = (limits: ResultLimits) =>
  new StepFailure(
    'result_too_large',
    `The step's result is larger than ${limits.maxBytes} bytes as JSON, so it was not stored. ` +
      'Return only what later steps need (select fields, filter the list, ask the API for a smaller page).',
  );

const notStorable = (why: string) => new StepFailure('result_not_storable', `The step's result cannot be stored: ${why}.`);

/** What JSON.stringify would serialize for `value` under `key`: toJSON applied, boxed primitives unwrapped. */
function prepared(value: unknown, key: string): unknown {
  let v = value;
  if (typeof v === 'object' && v !== null && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    try {
      v = (v as { toJSON(key: string): unknown }).toJSON(key);
    } catch (error) {
      throw new Refused(notStorable(`its toJSON() failed (${(error as Error)?.message ?? String(error)})`));
    }
  }
  if (v instanceof Number || v instanceof String || v instanceof Boolean) return v.valueOf();
  return v;
}

const skipped = (v: unknown) => v === undefined || typeof v === 'function' || typeof v === 'symbol';

export function storableResult(value: unknown, limits: ResultLimits): StorableResult {
  const out: string[] = [];
  let length = 0; // UTF-16 units so far: never more than the UTF-8 bytes they become
  const stack: Frame[] = [];
  const onPath = new Set<object>();
  const emit = (text: string) => {
    out.push(text);
    length += text.length;
    if (length > limits.maxBytes) throw new Refused(tooLarge(limits));
  };
  // Writes a scalar, or opens a container and pushes its frame.
  const write = (v: unknown) => {
    if (v === null || skipped(v)) return emit('null');
    switch (typeof v) {
      case 'string':
        return emit(JSON.stringify(v));
      case 'number':
        return emit(Number.isFinite(v) ? String(v) : 'null');
      case 'boolean':
        return emit(v ? 'true' : 'false');
      case 'bigint':
        throw new Refused(notStorable('it contains a BigInt, which JSON cannot represent'));
      default:
        break;
    }
    const container = v as object;
    if (onPath.has(container)) throw new Refused(notStorable('it contains itself (a cycle)'));
    if (stack.length >= limits.maxDepth) {
      throw new Refused(notStorable(`it nests deeper than ${limits.maxDepth} levels of arrays and objects; flatten it or return only the part later steps need`));
    }
    onPath.add(container);
    const isArray = Array.isArray(container);
    emit(isArray ? '[' : '{');
    stack.push({ container, items: isArray ? (container as unknown[]) : null, keys: isArray ? null : Object.keys(container), next: 0, wrote: false });
  };

  try {
    write(prepared(value, ''));
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      if (frame.items) {
        if (frame.next < frame.items.length) {
          const index = frame.next++;
          if (index > 0) emit(',');
          write(prepared(frame.items[index], String(index)));
          continue;
        }
        emit(']');
      } else {
        const keys = frame.keys!;
        let wroteOne = false;
        while (frame.next < keys.length) {
          const key = keys[frame.next++]!;
          const v = prepared((frame.container as Record<string, unknown>)[key], key);
          if (skipped(v)) continue;
          emit(`${frame.wrote ? ',' : ''}${JSON.stringify(key)}:`);
          frame.wrote = true;
          write(v);
          wroteOne = true;
          break;
        }
        if (wroteOne) continue;
        emit('}');
      }
      onPath.delete(frame.container);
      stack.pop();
    }
  } catch (error) {
    if (error instanceof Refused) return { ok: false, failure: error.failure };
    throw error;
  }
  const text = out.join('');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) return { ok: false, failure: tooLarge(limits) };
  return { ok: true, text, bytes };
}
