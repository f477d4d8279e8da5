import type { Static } from '@sinclair/typebox';
import type * as W from '../workflows/schemas.js';
import type * as E from '../executions/schemas.js';
import type * as S from '../workspaces/routes.js';

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

/** One frame of GET /executions/:id/events. */
export type ExecutionEvent = { event: 'execution'; id: string | null; data: Omit<Execution, 'steps'> } | { event: 'step'; id: string | null; data: Step };
