// The dashboard's one way to the API: the same /api/v1 every client uses, with the key
// the user pasted. Every failure becomes an ApiFailure carrying the API's own message
// and stable code, which the screens show as they are.

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** The server has no such route (an older or smaller SkipFlow): the screen hides the feature. */
  get routeMissing(): boolean {
    return this.status === 404 && this.message.startsWith('No route');
  }
}

export interface Api {
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  send<T>(method: 'POST' | 'PUT' | 'DELETE' | 'PATCH', path: string, body?: unknown): Promise<T>;
  /** The raw response of a streaming GET (Server-Sent Events). */
  stream(path: string, signal: AbortSignal): Promise<Response>;
}

async function failureOf(response: Response): Promise<ApiFailure> {
  try {
    const body = (await response.json()) as { error?: unknown; error_code?: unknown };
    if (typeof body.error === 'string' && typeof body.error_code === 'string') {
      return new ApiFailure(response.status, body.error_code, body.error);
    }
  } catch {
    // not JSON: fall through to a generic message
  }
  return new ApiFailure(response.status, 'http_error', `The server answered ${response.status}.`);
}

export function createApi(key: string, onUnauthorized: () => void): Api {
  const headers = (json: boolean): Record<string, string> => ({
    authorization: `Bearer ${key}`,
    ...(json ? { 'content-type': 'application/json' } : {}),
  });

  async function call<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const response = await fetch(`/api/v1${path}`, {
      method,
      headers: headers(body !== undefined),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
    if (!response.ok) {
      const failure = await failureOf(response);
      if (failure.status === 401) onUnauthorized();
      throw failure;
    }
    return (await response.json()) as T;
  }

  return {
    get: (path, signal) => call('GET', path, undefined, signal),
    send: (method, path, body) => call(method, path, body),
    async stream(path, signal) {
      const response = await fetch(`/api/v1${path}`, { headers: { ...headers(false), accept: 'text/event-stream' }, signal });
      if (!response.ok) throw await failureOf(response);
      return response;
    },
  };
}

/** Checks a key before keeping it: the workspace is what every key may read. */
export async function verifyKey(key: string): Promise<void> {
  const response = await fetch('/api/v1/workspace', { headers: { authorization: `Bearer ${key}` } });
  if (!response.ok) throw await failureOf(response);
}

export function errorText(error: unknown): string {
  if (error instanceof ApiFailure) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
