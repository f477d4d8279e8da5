import { type Dispatcher, request } from 'undici';
import { StepFailure } from '../step-errors.js';
import { networkFailure } from './network-failure.js';

// Redirects are followed here rather than by an undici interceptor so that each hop
// is an ordinary new request through the guarded dispatcher: the SSRF check runs
// again for the new host, and the hop count and the rewriting below are ours.

export const MAX_REDIRECTS = 5;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Headers that must not follow a redirect to another origin (as fetch does). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}

export interface ExchangeOptions {
  dispatcher: Dispatcher;
  signal: AbortSignal;
  /** A status the step listed explicitly is returned as is, even a redirect. */
  keep(status: number): boolean;
}

export interface Exchange {
  response: Dispatcher.ResponseData;
  /** The URL that gave the final response. */
  url: URL;
  method: string;
}

export const isHttpUrl = (url: URL) => url.protocol === 'http:' || url.protocol === 'https:';

/** Where a redirect leads (RFC 9110 §15.4), or null when the response is not one to follow. */
function nextHop(current: OutgoingRequest, status: number, location: unknown): OutgoingRequest | null {
  if (!REDIRECT_STATUSES.has(status) || typeof location !== 'string') return null;
  let url: URL;
  try {
    url = new URL(location, current.url);
  } catch {
    throw new StepFailure('http_status', `The server answered ${status} with an invalid Location "${location}"; the redirect cannot be followed.`);
  }
  if (!isHttpUrl(url)) {
    throw new StepFailure(
      'destination_blocked',
      `The server redirected to "${url.protocol}" (${location}); an http step only follows redirects to http:// and https:// URLs.`,
    );
  }
  const headers = { ...current.headers };
  if (url.origin !== current.url.origin) for (const name of Object.keys(headers)) if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) delete headers[name];
  // 303 always, and 301/302 after a POST (what every client does), become a GET without a body.
  const toGet = (status === 303 && current.method !== 'HEAD') || ((status === 301 || status === 302) && current.method === 'POST');
  if (!toGet) return { ...current, url, headers };
  for (const name of Object.keys(headers)) if (/^content-/i.test(name)) delete headers[name];
  return { method: 'GET', url, headers, body: undefined };
}

function describe(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

export async function exchange(first: OutgoingRequest, options: ExchangeOptions): Promise<Exchange> {
  let current = first;
  for (let redirects = 0; ; redirects++) {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(current.url, {
        method: current.method as Dispatcher.HttpMethod,
        headers: current.headers,
        body: current.body,
        signal: options.signal,
        dispatcher: options.dispatcher,
      });
    } catch (error) {
      throw networkFailure(error, current.url); // names the hop that failed
    }
    const next = options.keep(response.statusCode) ? null : nextHop(current, response.statusCode, response.headers.location);
    if (next === null) return { response, url: current.url, method: current.method };
    await response.body.dump();
    if (redirects === MAX_REDIRECTS) {
      throw new StepFailure(
        'http_status',
        `${first.method} ${describe(first.url)} redirected more than ${MAX_REDIRECTS} times (the last hop was to ${describe(next.url)}); ` +
          'point the url at the final address, or list the redirect status in expect_status to get that response instead.',
      );
    }
    current = next;
  }
}
