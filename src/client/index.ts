import { SkipFlowError, errorOf } from './errors.js';
import { type RetryOptions, isRetryable, retryDelayMs, sleep } from './retry.js';
import { parseSse } from './sse.js';
import type {
  DeletedWorkflow, Execution, ExecutionEvent, ExecutionList, ExecutionListItem, ExecutionStatus, RetryAccepted, RunAccepted, Step, StopResult,
  Workflow, WorkflowInput, WorkflowList, Workspace, StopManyResult, Schedule, ScheduleInput, SchedulePatch, ScheduleList, DeletedSchedule,
  Webhook, WebhookInput, WebhookList, DeletedWebhook, Secret, SecretList, DeletedSecret, WebhookEndpoint, CreatedWebhookEndpoint,
  WebhookEndpointList, DeletedWebhookEndpoint, CreateEndpointBody, UpdateEndpointBody, DeliveryList,
} from './types.js';

// `skipflow/client`: a typed client of the SkipFlow API over the platform's fetch
// (Node 20, browsers, Deno; no other runtime dependency, no node: import). See
// docs/client.md.

export { SkipFlowError } from './errors.js';
export type { RetryOptions } from './retry.js';
export type * from './types.js';

export interface SkipFlowClientOptions {
  /** e.g. http://127.0.0.1:3000 (without /api/v1). */
  baseUrl: string;
  apiKey: string;
  /** How requests that are safe to repeat are retried (GETs, and POSTs sent with an Idempotency-Key). */
  retry?: RetryOptions;
  /** Another fetch (tests, instrumentation). */
  fetch?: typeof fetch;
}

export interface ExecutionFilters {
  workflowId?: string;
  status?: ExecutionStatus | string;
  limit?: number;
  after?: string;
  /** Further query parameters, passed as they are. */
  query?: Record<string, string>;
}

export interface PageOptions {
  limit?: number;
  after?: string;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Call {
  method: Method;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Sent as Idempotency-Key; makes a POST safe to retry. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

const LONG_POLL_MAX_SECONDS = 60;

export class SkipFlowClient {
  readonly #baseUrl: string;
  readonly #apiKey: string;
  readonly #retry: RetryOptions;
  readonly #fetch: typeof fetch;

  constructor(options: SkipFlowClientOptions) {
    if (!options.baseUrl) throw new TypeError('SkipFlowClient: baseUrl is required');
    if (!options.apiKey) throw new TypeError('SkipFlowClient: apiKey is required');
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#apiKey = options.apiKey;
    this.#retry = options.retry ?? {};
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  #url(path: string, query: Call['query'] = {}): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
    const search = params.toString();
    return `${this.#baseUrl}/api/v1${path}${search ? `?${search}` : ''}`;
  }

  async #once(call: Call, accept = 'application/json', extraHeaders: Record<string, string> = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}`, accept, ...extraHeaders };
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    if (call.idempotencyKey !== undefined) headers['idempotency-key'] = call.idempotencyKey;
    let response: Response;
    try {
      response = await this.#fetch(this.#url(call.path, call.query), {
        method: call.method,
        headers,
        ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
        ...(call.signal ? { signal: call.signal } : {}),
      });
    } catch (error) {
      if (call.signal?.aborted) throw error;
      throw new SkipFlowError({ status: 0, code: 'network_error', message: `Could not reach ${this.#baseUrl}: ${(error as Error).message}`, cause: error });
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** One call; retried when it is safe to repeat and the failure is transient. */
  async #request<T>(call: Call): Promise<T> {
    const repeatable = call.method === 'GET' || call.idempotencyKey !== undefined;
    const maxAttempts = repeatable ? Math.max(1, this.#retry.maxAttempts ?? 5) : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await this.#once(call);
        try {
          return (await response.json()) as T;
        } catch (error) {
          // The answer was cut off: the same as no answer.
          throw new SkipFlowError({ status: 0, code: 'network_error', message: `The response from ${this.#baseUrl} was cut off: ${(error as Error).message}`, cause: error });
        }
      } catch (error) {
        if (attempt >= maxAttempts || !isRetryable(error) || call.signal?.aborted) throw error;
        await sleep(retryDelayMs(this.#retry, attempt, error as SkipFlowError), call.signal);
      }
    }
  }

  readonly workflows = {
    create: (input: WorkflowInput): Promise<Workflow> => this.#request({ method: 'POST', path: '/workflows', body: input }),
    get: (id: string): Promise<Workflow> => this.#request({ method: 'GET', path: `/workflows/${encodeURIComponent(id)}` }),
    list: (page: PageOptions = {}): Promise<WorkflowList> => this.#request({ method: 'GET', path: '/workflows', query: { ...page } }),
    iterate: (page: PageOptions = {}): AsyncGenerator<Workflow> => this.#iterate((after) => this.workflows.list({ ...page, after }).then((p) => ({ items: p.workflows, hasMore: p.has_more, last: p.workflows.at(-1)?.id })), page.after),
    update: (id: string, input: WorkflowInput): Promise<Workflow> => this.#request({ method: 'PUT', path: `/workflows/${encodeURIComponent(id)}`, body: input }),
    delete: (id: string): Promise<DeletedWorkflow> => this.#request({ method: 'DELETE', path: `/workflows/${encodeURIComponent(id)}` }),
    /** Starts an execution. Sends an Idempotency-Key (a fresh one unless given) and
     * retries transient failures with the same key: at most one execution results. */
    runAsync: (id: string, options: { input?: unknown; idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<RunAccepted> =>
      this.#request({
        method: 'POST',
        path: `/workflows/${encodeURIComponent(id)}/run-async`,
        body: options.input === undefined ? {} : { input: options.input },
        idempotencyKey: options.idempotencyKey ?? globalThis.crypto.randomUUID(),
        ...(options.signal ? { signal: options.signal } : {}),
      }),
  };

  readonly executions = {
    get: (id: string, options: { includeStepResults?: boolean; wait?: number; signal?: AbortSignal } = {}): Promise<Execution> =>
      this.#request({
        method: 'GET',
        path: `/executions/${encodeURIComponent(id)}`,
        query: { include_step_results: options.includeStepResults ?? false, wait: options.wait },
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    list: (filters: ExecutionFilters = {}): Promise<ExecutionList> =>
      this.#request({
        method: 'GET',
        path: '/executions',
        query: { workflow_id: filters.workflowId, status: filters.status, limit: filters.limit, after: filters.after, ...filters.query },
      }),
    iterate: (filters: ExecutionFilters = {}): AsyncGenerator<ExecutionListItem> =>
      this.#iterate((after) => this.executions.list({ ...filters, after }).then((p) => ({ items: p.executions, hasMore: p.has_more, last: p.executions.at(-1)?.execution_id })), filters.after),
    stop: (id: string, options: { idempotencyKey?: string } = {}): Promise<StopResult> =>
      this.#request({ method: 'POST', path: `/executions/${encodeURIComponent(id)}/stop`, body: {}, idempotencyKey: options.idempotencyKey ?? globalThis.crypto.randomUUID() }),
    /** Re-runs a failed or stopped execution, from its failed step (default) or from the start. */
    retry: (id: string, options: { from?: 'failed_step' | 'start'; idempotencyKey?: string } = {}): Promise<RetryAccepted> =>
      this.#request({
        method: 'POST',
        path: `/executions/${encodeURIComponent(id)}/retry`,
        body: options.from === undefined ? {} : { from: options.from },
        idempotencyKey: options.idempotencyKey ?? globalThis.crypto.randomUUID(),
      }),
    /** Stops every running execution that matches (all of the workspace's without filters). */
    stopMany: (filters: { workflowId?: string; createdBefore?: string } = {}): Promise<StopManyResult> =>
      this.#request({
        method: 'POST',
        path: '/executions/stop',
        body: { ...(filters.workflowId === undefined ? {} : { workflow_id: filters.workflowId }), ...(filters.createdBefore === undefined ? {} : { created_before: filters.createdBefore }) },
      }),
    /** The completion notifications of an execution. */
    deliveries: (id: string): Promise<DeliveryList> => this.#request({ method: 'GET', path: `/executions/${encodeURIComponent(id)}/deliveries` }),
    /** Decides a waiting approval step: it completes with `data` and `comment`. */
    approve: (id: string, index: number, options: { data?: unknown; comment?: string; idempotencyKey?: string } = {}): Promise<Step> =>
      this.#request({
        method: 'POST',
        path: `/executions/${encodeURIComponent(id)}/steps/${index}/approve`,
        body: { ...(options.data === undefined ? {} : { data: options.data }), ...(options.comment === undefined ? {} : { comment: options.comment }) },
        idempotencyKey: options.idempotencyKey ?? globalThis.crypto.randomUUID(),
      }),
    /** Rejects a waiting approval step: it fails with `rejected`. */
    reject: (id: string, index: number, options: { comment?: string; idempotencyKey?: string } = {}): Promise<Step> =>
      this.#request({
        method: 'POST',
        path: `/executions/${encodeURIComponent(id)}/steps/${index}/reject`,
        body: options.comment === undefined ? {} : { comment: options.comment },
        idempotencyKey: options.idempotencyKey ?? globalThis.crypto.randomUUID(),
      }),
    /** Long-polls until the execution is no longer running; throws a SkipFlowError with
     * code `wait_timeout` after `timeoutMs` (default: no limit). */
    waitFor: async (id: string, options: { timeoutMs?: number; includeStepResults?: boolean; signal?: AbortSignal } = {}): Promise<Execution> => {
      const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        const wait = Math.max(0, Math.min(LONG_POLL_MAX_SECONDS, Math.floor(left / 1000)));
        const execution = await this.executions.get(id, { includeStepResults: options.includeStepResults ?? false, wait, ...(options.signal ? { signal: options.signal } : {}) });
        if (execution.status !== 'running') return execution;
        if (Date.now() >= deadline) {
          throw new SkipFlowError({ status: 0, code: 'wait_timeout', message: `Execution ${id} was still running after ${options.timeoutMs} ms.` });
        }
        if (wait === 0) await sleep(Math.min(250, Math.max(0, deadline - Date.now())), options.signal);
      }
    },
    /** The execution's step and status changes as they happen, until it ends. A stream
     * that drops is reopened with Last-Event-ID, so nothing is missed or repeated. */
    events: (id: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ExecutionEvent> => this.#events(id, options.signal),
  };

  readonly workspace = {
    get: (): Promise<Workspace> => this.#request({ method: 'GET', path: '/workspace' }),
  };

  readonly schedules = {
    create: (workflowId: string, body: ScheduleInput): Promise<Schedule> =>
      this.#request({ method: 'POST', path: `/workflows/${encodeURIComponent(workflowId)}/schedules`, body }),
    get: (id: string): Promise<Schedule> => this.#request({ method: 'GET', path: `/schedules/${encodeURIComponent(id)}` }),
    list: (filters: { workflowId?: string } & PageOptions = {}): Promise<ScheduleList> =>
      this.#request({ method: 'GET', path: '/schedules', query: { workflow_id: filters.workflowId, limit: filters.limit, after: filters.after } }),
    iterate: (filters: { workflowId?: string } & PageOptions = {}): AsyncGenerator<Schedule> =>
      this.#iterate((after) => this.schedules.list({ ...filters, after }).then((p) => ({ items: p.schedules, hasMore: p.has_more, last: p.schedules.at(-1)?.schedule_id })), filters.after),
    update: (id: string, patch: SchedulePatch): Promise<Schedule> => this.#request({ method: 'PATCH', path: `/schedules/${encodeURIComponent(id)}`, body: patch }),
    delete: (id: string): Promise<DeletedSchedule> => this.#request({ method: 'DELETE', path: `/schedules/${encodeURIComponent(id)}` }),
  };

  readonly webhooks = {
    /** The answer's `url` holds the webhook's secret token: it is shown only here. */
    create: (workflowId: string, body: WebhookInput = {}): Promise<Webhook> =>
      this.#request({ method: 'POST', path: `/workflows/${encodeURIComponent(workflowId)}/webhooks`, body }),
    get: (id: string): Promise<Webhook> => this.#request({ method: 'GET', path: `/webhooks/${encodeURIComponent(id)}` }),
    list: (filters: { workflowId?: string } & PageOptions = {}): Promise<WebhookList> =>
      this.#request({ method: 'GET', path: '/webhooks', query: { workflow_id: filters.workflowId, limit: filters.limit, after: filters.after } }),
    iterate: (filters: { workflowId?: string } & PageOptions = {}): AsyncGenerator<Webhook> =>
      this.#iterate((after) => this.webhooks.list({ ...filters, after }).then((p) => ({ items: p.webhooks, hasMore: p.has_more, last: p.webhooks.at(-1)?.webhook_id })), filters.after),
    delete: (id: string): Promise<DeletedWebhook> => this.#request({ method: 'DELETE', path: `/webhooks/${encodeURIComponent(id)}` }),
  };

  readonly secrets = {
    /** Creates or replaces a secret; its value is never returned. */
    set: (name: string, value: string): Promise<Secret> => this.#request({ method: 'PUT', path: `/secrets/${encodeURIComponent(name)}`, body: { value } }),
    list: (): Promise<SecretList> => this.#request({ method: 'GET', path: '/secrets' }),
    delete: (name: string): Promise<DeletedSecret> => this.#request({ method: 'DELETE', path: `/secrets/${encodeURIComponent(name)}` }),
  };

  readonly webhookEndpoints = {
    /** The answer's `secret` (whsec_…) signs every notification: it is shown only here. */
    create: (body: CreateEndpointBody): Promise<CreatedWebhookEndpoint> => this.#request({ method: 'POST', path: '/webhook-endpoints', body }),
    get: (id: string): Promise<WebhookEndpoint> => this.#request({ method: 'GET', path: `/webhook-endpoints/${encodeURIComponent(id)}` }),
    list: (): Promise<WebhookEndpointList> => this.#request({ method: 'GET', path: '/webhook-endpoints' }),
    update: (id: string, patch: UpdateEndpointBody): Promise<WebhookEndpoint> =>
      this.#request({ method: 'PATCH', path: `/webhook-endpoints/${encodeURIComponent(id)}`, body: patch }),
    delete: (id: string): Promise<DeletedWebhookEndpoint> => this.#request({ method: 'DELETE', path: `/webhook-endpoints/${encodeURIComponent(id)}` }),
  };

  async *#iterate<T>(page: (after: string | undefined) => Promise<{ items: T[]; hasMore: boolean; last: string | undefined }>, start?: string): AsyncGenerator<T> {
    let after = start;
    for (;;) {
      const { items, hasMore, last } = await page(after);
      yield* items;
      if (!hasMore || last === undefined) return;
      after = last;
    }
  }

  async *#events(id: string, signal?: AbortSignal): AsyncGenerator<ExecutionEvent> {
    let lastEventId: string | null = null;
    let failures = 0;
    const maxAttempts = Math.max(1, this.#retry.maxAttempts ?? 5);
    for (;;) {
      let response: Response;
      try {
        response = await this.#once({ method: 'GET', path: `/executions/${encodeURIComponent(id)}/events`, ...(signal ? { signal } : {}) }, 'text/event-stream', lastEventId === null ? {} : { 'last-event-id': lastEventId });
      } catch (error) {
        if (++failures >= maxAttempts || !isRetryable(error) || signal?.aborted) throw error;
        await sleep(retryDelayMs(this.#retry, failures, error as SkipFlowError), signal);
        continue;
      }
      let ended = false;
      try {
        for await (const frame of parseSse(response.body!)) {
          failures = 0;
          if (frame.id !== null) lastEventId = frame.id;
          if (frame.event !== 'execution' && frame.event !== 'step') continue;
          const event = { event: frame.event, id: frame.id, data: JSON.parse(frame.data) } as ExecutionEvent;
          yield event;
        }
        // The server ends the stream only once the execution has ended (a dropped
        // connection is an error instead: chunked encoding cut short).
        ended = true;
      } catch (error) {
        if (signal?.aborted) throw error;
        // The stream broke: reopen it below.
      }
      if (ended) return;
      if (++failures >= maxAttempts) {
        throw new SkipFlowError({ status: 0, code: 'network_error', message: `The event stream of execution ${id} kept dropping.` });
      }
      await sleep(retryDelayMs(this.#retry, failures, new SkipFlowError({ status: 0, code: 'network_error', message: '' })), signal);
    }
  }
}

export type { Step };
