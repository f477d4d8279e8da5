import type { Static } from '@sinclair/typebox';
import type * as W from '../workflows/schemas.js';
import type * as E from '../executions/schemas.js';
import type * as S from '../workspaces/routes.js';
import type * as Sch from '../schedules/schemas.js';
import type * as Wh from '../webhooks/schemas.js';
import type * as Sec from '../secrets/routes.js';
import type * as N from '../notifications/schemas.js';
import type * as F from '../executions/list-filters.js';

// The client's types are the API's own schemas (the ones that validate requests and
// document the OpenAPI), as TypeBox statics: written once. Type-only imports: nothing
// of the server reaches the client's JavaScript.

export type Workflow = Static<typeof W.Workflow>;
export type WorkflowInput = Static<typeof W.WorkflowInput>;
export type WorkflowList = Static<typeof W.WorkflowList>;
export type DeletedWorkflow = Static<typeof W.DeletedWorkflow>;
export type Execution = Static<typeof E.Execution>;
export type ExecutionListItem = Static<typeof E.ExecutionListItem>;
export type ExecutionList = Static<typeof E.ExecutionList>;
export type ExecutionStatus = Execution['status'];
export type Step = Static<typeof E.StepResult>;
export type RunAccepted = Static<typeof E.RunAccepted>;
/** A retry's 202: run-async's body plus the id of the execution it retries. */
export type RetryAccepted = RunAccepted & { retry_of: string };
export type StopResult = Static<typeof E.StopResult>;
export type Workspace = Static<typeof S.Workspace>;
export type StopManyResult = Static<typeof F.StopManyResult>;
export type Schedule = Static<typeof Sch.Schedule>;
export type ScheduleInput = Static<typeof Sch.ScheduleInput>;
export type SchedulePatch = Static<typeof Sch.SchedulePatch>;
export type ScheduleList = Static<typeof Sch.ScheduleList>;
export type DeletedSchedule = Static<typeof Sch.DeletedSchedule>;
export type Webhook = Static<typeof Wh.Webhook>;
export type WebhookInput = Static<typeof Wh.WebhookInput>;
export type WebhookList = Static<typeof Wh.WebhookList>;
export type DeletedWebhook = Static<typeof Wh.DeletedWebhook>;
export type Secret = Static<typeof Sec.SecretView>;
export type SecretList = Static<typeof Sec.SecretList>;
export type DeletedSecret = Static<typeof Sec.DeletedSecret>;
export type WebhookEndpoint = Static<typeof N.WebhookEndpoint>;
export type CreatedWebhookEndpoint = Static<typeof N.CreatedWebhookEndpoint>;
export type WebhookEndpointList = Static<typeof N.WebhookEndpointList>;
export type DeletedWebhookEndpoint = Static<typeof N.DeletedWebhookEndpoint>;
export type CreateEndpointBody = Static<typeof N.CreateEndpointBody>;
export type UpdateEndpointBody = Static<typeof N.UpdateEndpointBody>;
export type DeliveryList = Static<typeof N.DeliveryList>;

/** One frame of GET /executions/:id/events. */
export type ExecutionEvent = { event: 'execution'; id: string | null; data: Omit<Execution, 'steps'> } | { event: 'step'; id: string | null; data: Step };
