import type { Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely';

// Row types of the schema built by db/migrations. Times are integer milliseconds since
// the epoch; JSON values are stored as text so both backends share one code path.

/** An execution's status; the transitions between them are in executions/status.ts. */
export type ExecutionStatus = 'running' | 'success' | 'failed' | 'stopped';
/** A step's status. */
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'stopped';
/** What a `running` step is doing. */
export type StepPhase = 'attempt' | 'sleep' | 'backoff' | 'wait';

export interface WorkspaceTable {
  id: string;
  name: string;
  credits: number;
  /** 1: unlimited credits (shown as `credits: null`); `credits` is then not debited. */
  credits_unlimited: Generated<number>;
  max_concurrent_executions: number | null;
  created_at: number;
}

export interface ApiKeyTable {
  id: string;
  workspace_id: string;
  name: string;
  prefix: string;
  secret_hash: string;
  /** Comma-separated scope names. */
  scopes: string;
  created_at: number;
  last_used_at: number | null;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface WorkflowTable {
  id: string;
  workspace_id: string;
  name: string;
  description: string;
  /** The immutable version that new executions snapshot. */
  version_id: string;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

export interface WorkflowVersionTable {
  id: string;
  workflow_id: string;
  workspace_id: string;
  name: string;
  /** JSON array of step definitions. */
  steps: string;
  created_at: number;
}

export interface ExecutionTable {
  id: string;
  workspace_id: string;
  workflow_id: string;
  version_id: string;
  workflow_name: string;
  status: ExecutionStatus;
  /** JSON text of the run's input. */
  input: string;
  error: string | null;
  error_code: string | null;
  error_step_index: number | null;
  created_at: number;
  completed_at: number | null;
  /** Index of the step the engine works on next. */
  current_step: Generated<number>;
  /** When a worker may claim it: now for new work, the wake-up time of a sleeping one,
   * the lease expiry of a claimed one; null once terminal. */
  available_at: number | null;
  lease_owner: string | null;
  /** Fencing token: bumped by every claim; every worker write must carry the current one. */
  lease_token: Generated<number>;
  /** Takeovers of the current step: claims of a lease its holder let lapse (a dead or
   * frozen worker). Reset when the execution moves to another step. */
  interruptions: Generated<number>;
  /** How it was started (executions/trigger.ts): the type, and the whole object as JSON
   * (null on executions from before triggers were recorded: run-async). */
  trigger_type: Generated<string>;
  trigger: string | null;
  /** The execution this one retries (at most one retry per execution: unique). */
  retry_of: string | null;
  /** 0 for a top-level execution; a sub-workflow's child is its parent's depth + 1. */
  depth: Generated<number>;
}

/** A step's row is written when the step first changes (it starts, or ends at once):
 * until then the step is `pending` and has no row (see executions/store.ts). */
export interface ExecutionStepTable {
  execution_id: string;
  idx: number;
  name: string | null;
  type: string;
  status: StepStatus;
  /** JSON text of the result, null until completed. */
  result: string | null;
  error: string | null;
  error_code: string | null;
  attempts: Generated<number>;
  /** Times a worker died while this step was in flight (docs/api.md#execution: 5 → worker_lost). */
  interruptions: Generated<number>;
  /** What a `running` step is doing: `attempt` (in flight on a worker), `sleep` (a
   * delay until wake_at) or `backoff` (waiting until wake_at to retry); null otherwise. */
  phase: StepPhase | null;
  /** Durable wake-up time of a delay or of a retry backoff (of a `wait`: its expiry). */
  wake_at: number | null;
  /** JSON: what a waiting step waits for (`{ type: "approval", message }`, a child
   * execution), or a for_each's progress; null otherwise. */
  detail: string | null;
  /** Run time of the last attempt in milliseconds; null before it ran. */
  duration_ms: number | null;
  started_at: number | null;
  completed_at: number | null;
  /** 1 on a retry's steps copied from the execution it retries (not run again). */
  reused: Generated<number>;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** Where completion notifications go (notifications/). */
export interface WebhookEndpointTable {
  id: string;
  workspace_id: string;
  url: string;
  /** whsec_…: kept readable, since it signs every delivery. */
  secret: string;
  /** Comma-separated event names. */
  events: string;
  workflow_id: string | null;
  /** 1 or 0. */
  enabled: Generated<number>;
  created_at: number;
}

/** The outbox: one row per notification, written with the execution's final status. */
export interface WebhookDeliveryTable {
  id: string;
  workspace_id: string;
  execution_id: string;
  endpoint_id: string;
  event: string;
  status: DeliveryStatus;
  attempts: Generated<number>;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  delivered_at: number | null;
  created_at: number;
  /** When a sender may claim it: the next attempt, or a claimed one's lease expiry. */
  available_at: number | null;
  lease_owner: string | null;
  lease_token: Generated<number>;
}

export interface IdempotencyKeyTable {
  workspace_id: string;
  key: string;
  fingerprint: string;
  status_code: number;
  body: string;
  created_at: number;
  expires_at: number;
}

export interface RateWindowTable {
  workspace_id: string;
  window_start: number;
  count: number;
}

export interface BootstrapTable {
  name: string;
  value: string;
}

/** A cron schedule (schedules/): `next_run_at` is the stored fire time of its next
 * tick, null while disabled; `version` is bumped by every edit (the tick claim checks it). */
export interface ScheduleTable {
  id: string;
  workspace_id: string;
  workflow_id: string;
  cron: string;
  timezone: string;
  /** JSON text of the input each execution gets. */
  input: string;
  enabled: number;
  overlap: string;
  catchup: string;
  next_run_at: number | null;
  version: Generated<number>;
  last_run_at: number | null;
  last_execution_id: string | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

/** A workspace's secret, encrypted (src/secrets/cipher.ts). */
export interface SecretTable {
  workspace_id: string;
  name: string;
  /** `v1.` + base64(iv | tag | ciphertext); never the plain value. */
  value: string;
  created_at: number;
  updated_at: number;
}

/** One row per tick that started an execution: unique per (schedule, tick). */
export interface ScheduleTickTable {
  schedule_id: string;
  scheduled_for: number;
  execution_id: string;
}

/** An inbound webhook (webhooks/): the URL token is stored only as its SHA-256. */
export interface WebhookTable {
  id: string;
  workspace_id: string;
  workflow_id: string;
  name: string;
  token_hash: string;
  token_prefix: string;
  mode: string;
  sync_timeout_seconds: number;
  /** JSON text of the signature settings, secret included; null when unsigned. */
  signature: string | null;
  dedupe_header: string | null;
  created_at: number;
  last_received_at: number | null;
}

/** One item of a for_each step: `completed` (with its result) or `waiting` (for its child). */
export interface ExecutionStepItemTable {
  execution_id: string;
  idx: number;
  item_index: number;
  status: 'completed' | 'waiting';
  result: string | null;
  detail: string | null;
}

export interface Database {
  workspaces: WorkspaceTable;
  api_keys: ApiKeyTable;
  workflows: WorkflowTable;
  workflow_versions: WorkflowVersionTable;
  executions: ExecutionTable;
  execution_steps: ExecutionStepTable;
  webhook_endpoints: WebhookEndpointTable;
  webhook_deliveries: WebhookDeliveryTable;
  idempotency_keys: IdempotencyKeyTable;
  rate_windows: RateWindowTable;
  bootstrap: BootstrapTable;
  schedules: ScheduleTable;
  schedule_ticks: ScheduleTickTable;
  webhooks: WebhookTable;
  secrets: SecretTable;
  execution_step_items: ExecutionStepItemTable;
}

/** Either the database or an open transaction: store functions take it first. */
export type Executor = Kysely<Database> | Transaction<Database>;

export type WorkspaceRow = Selectable<WorkspaceTable>;
export type ApiKeyRow = Selectable<ApiKeyTable>;
export type WorkflowRow = Selectable<WorkflowTable>;
export type WorkflowVersionRow = Selectable<WorkflowVersionTable>;
export type ExecutionRow = Selectable<ExecutionTable>;
export type ExecutionStepRow = Selectable<ExecutionStepTable>;
export type NewExecutionStep = Insertable<ExecutionStepTable>;
