import { StepFailure } from '../step-errors.js';
import { DestinationBlockedError } from './guarded-dispatcher.js';

// Turns what undici and the socket layer throw into a step failure whose message says
// what went wrong in the user's terms and what to check. Everything on the way to a
// response is a retryable network_error, except the guard's refusal and a request
// that could not even be built from the step's fields.

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NODATA', 'EAI_FAIL', 'ENODATA']);
const CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)/;

export function networkFailure(error: unknown, url: URL): StepFailure {
  if (error instanceof StepFailure) return error;
  if (error instanceof DestinationBlockedError) return new StepFailure('destination_blocked', error.message);
  const code = (error as { code?: unknown }).code;
  const detail = (error as Error)?.message ?? String(error);
  const where = url.host;
  if (code === 'UND_ERR_INVALID_ARG') {
    return new StepFailure('expression_error', `The request could not be built: ${detail}. Check the step's method, headers and body.`);
  }
  const retryable = (message: string) => new StepFailure('network_error', message, true);
  if (code === 'ECONNREFUSED') return retryable(`Could not connect to ${where}: connection refused. Check the url's host and port, and that the server is running.`);
  if (typeof code === 'string' && DNS_CODES.has(code)) return retryable(`The host name ${url.hostname} could not be resolved (${code}). Check the url's host name.`);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return retryable(`Connecting to ${where} timed out. Check that the host is reachable from the SkipFlow server.`);
  if (typeof code === 'string' && CLOSED_CODES.has(code)) {
    return retryable(`The connection to ${where} was closed before a full response arrived (${detail}). The server may have crashed or dropped the request.`);
  }
  if (typeof code === 'string' && TLS_CODE.test(code)) return retryable(`The TLS connection to ${where} failed: ${detail}. Check the server's certificate and the url's host name.`);
  return retryable(`The request to ${where} failed: ${detail}${typeof code === 'string' ? ` (${code})` : ''}.`);
}
