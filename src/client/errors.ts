// Every failure the client reports is a SkipFlowError: the API's own answer (status,
// its stable `error_code`, its message, the X-Request-Id to quote in a bug report), or
// status 0 for what never got an answer (network, timeout, a stream that ended early).

export class SkipFlowError extends Error {
  override readonly name = 'SkipFlowError';
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  /** Seconds the server asked to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | null;

  constructor(args: { status: number; code: string; message: string; requestId?: string | null; retryAfterSeconds?: number | null; cause?: unknown }) {
    super(args.message, args.cause === undefined ? undefined : { cause: args.cause });
    this.status = args.status;
    this.code = args.code;
    this.requestId = args.requestId ?? null;
    this.retryAfterSeconds = args.retryAfterSeconds ?? null;
  }
}

/** The error of a non-2xx response, from the API's `{ error, error_code }` body. */
export async function errorOf(response: Response): Promise<SkipFlowError> {
  const requestId = response.headers.get('x-request-id');
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
  let message = `HTTP ${response.status}`;
  let code = 'http_error';
  try {
    const body = (await response.json()) as { error?: unknown; error_code?: unknown };
    if (typeof body.error === 'string') message = body.error;
    if (typeof body.error_code === 'string') code = body.error_code;
  } catch {
    // not the API's JSON (a proxy's page): keep the status as the message
  }
  return new SkipFlowError({ status: response.status, code, message, requestId, retryAfterSeconds: retryAfter });
}

/** Retry-After as seconds: a number, or an HTTP date. */
export function parseRetryAfter(value: string | null): number | null {
  if (value === null || value.trim() === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}
