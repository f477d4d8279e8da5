// Reading an http step's response: bounded, because the body is stored in the
// database with the step's result and handed to every later expression.

/** At most this many bytes of a response body are kept; the rest is not even downloaded. */
export const MAX_RESPONSE_BODY_BYTES = 256 * 1024;

/** A JSON body nested deeper than this is kept as its text: the step's result must stay storable and walkable. */
export const MAX_RESPONSE_JSON_DEPTH = 64;

export interface ReadableBody extends AsyncIterable<Uint8Array> {
  destroy(): unknown;
}

export interface ResponseBody {
  /** Parsed JSON when the content type is JSON and the whole body parses; else text; null when empty. */
  body: unknown;
  truncated: boolean;
}

const JSON_TYPE = /^(application|text)\/([\w.-]+\+)?json\s*(;|$)/i;

function decoder(contentType: string | undefined): TextDecoder {
  const charset = /;\s*charset="?([^";\s]+)/i.exec(contentType ?? '')?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8');
  } catch {
    return new TextDecoder('utf-8'); // an unknown charset label: UTF-8 is the best guess
  }
}

export async function readResponseBody(stream: ReadableBody, contentType: string | undefined, limit = MAX_RESPONSE_BODY_BYTES): Promise<ResponseBody> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream) {
    if (size + chunk.length > limit) {
      chunks.push(chunk.subarray(0, limit - size));
      truncated = true;
      break; // leaving the loop destroys the stream, which closes the connection
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  if (truncated) stream.destroy();
  const text = decoder(contentType).decode(Buffer.concat(chunks));
  if (text === '') return { body: null, truncated };
  // Too deep a body is kept as text, like JSON that does not parse: the step still
  // succeeds and shows what came back, and nothing later has to walk 100,000 levels.
  if (!truncated && JSON_TYPE.test(contentType ?? '') && !nestsDeeperThan(text, MAX_RESPONSE_JSON_DEPTH)) {
    try {
      return { body: JSON.parse(text) as unknown, truncated };
    } catch {
      // Declared JSON but is not: keep the text so the user can see what came back.
    }
  }
  return { body: text, truncated };
}

/** Whether JSON text nests arrays/objects deeper than `max`; one pass, brackets in strings ignored. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
