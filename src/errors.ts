// The one catalogue of API error codes (docs/api.md#errors, docs/errors.md). A code never changes meaning once
// shipped; docs/errors.md lists the same table and a test keeps the two equal.

export const ERROR_STATUS = {
  invalid_request: 400,
  execution_not_running: 400,
  execution_not_retryable: 400,
  secrets_not_configured: 400,
  step_not_waiting: 400,
  unauthorized: 401,
  invalid_signature: 401,
  insufficient_credits: 402,
  insufficient_scope: 403,
  not_found: 404,
  idempotency_key_in_use: 409,
  already_retried: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  request_header_fields_too_large: 431,
  rate_limited: 429,
  concurrent_execution_limit: 429,
  internal_error: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class ApiError extends Error {
  readonly statusCode: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = ERROR_STATUS[code];
    this.headers = headers;
  }
}

export const notFound = (what: string): ApiError =>
  new ApiError('not_found', `${what} not found. Check the id and that it belongs to this workspace.`);

export const invalid = (message: string): ApiError => new ApiError('invalid_request', message);
