// The shapes of the API objects the dashboard reads (see docs/api.md). Fields that some
// servers do not have yet are optional, and the screens show them only when present.

export type ExecutionStatus = 'running' | 'success' | 'failed' | 'stopped';
export const EXECUTION_STATUSES: readonly ExecutionStatus[] = ['running', 'success', 'failed', 'stopped'];
export const TRIGGER_TYPES = ['api', 'schedule', 'webhook', 'retry', 'workflow'] as const;

export interface Trigger {
  type: string;
  [field: string]: unknown;
}

export interface ExecutionListItem {
  execution_id: string;
  workflow_id: string;
  workflow_name: string;
  status: ExecutionStatus;
  started_at: string;
  completed_at: string | null;
  created_at: string;
  trigger?: Trigger;
  retry_of?: string | null;
}

export interface Step {
  index: number;
  name: string | null;
  type: string;
  status: string;
  result: unknown;
  error: string | null;
  error_code: string | null;
  attempts: number;
  started_at: string | null;
  completed_at: string | null;
  duration_ms?: number | null;
  reused?: boolean;
  progress?: { total: number; completed: number } | null;
}

export interface WaitingFor {
  step_index: number;
  type: string;
  message?: string | null;
  expires_at?: string | null;
}

export interface Execution extends ExecutionListItem {
  input: unknown;
  error: string | null;
  error_code: string | null;
  error_step_index: number | null;
  waiting_for?: WaitingFor | null;
  steps?: Step[];
}

export interface ExecutionList {
  executions: ExecutionListItem[];
  has_more?: boolean;
}

export interface WorkflowStep {
  type: string;
  name?: string;
  [field: string]: unknown;
}

export interface Workflow {
  id: string;
  name: string;
  description: string;
  steps: WorkflowStep[];
  created_at: string;
  updated_at: string;
  last_run_at: string | null;
}

export interface Workspace {
  workspace_id: string;
  name: string;
  credits: number;
  max_concurrent_executions: number | null;
}

export interface Delivery {
  delivery_id: string;
  endpoint_id: string;
  event: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
  created_at: string;
}

export interface Schedule {
  schedule_id: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  next_run_at: string | null;
  upcoming?: string[];
  last_run_at?: string | null;
  last_error?: string | null;
}

export interface Webhook {
  webhook_id: string;
  name?: string | null;
  url: string;
  mode?: string;
  last_received_at?: string | null;
}

export interface Secret {
  name: string;
  created_at: string;
  updated_at: string;
}
