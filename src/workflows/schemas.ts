import { type Static, Type } from '@sinclair/typebox';
import { StepSchema } from '../steps/index.js';

export const MAX_STEPS = 100;

const workflowFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.Optional(Type.String({ maxLength: 10_000 })),
};

/** The body of POST /workflows and PUT /workflows/:id. */
export const WorkflowInput = Type.Object(
  { ...workflowFields, steps: Type.Array(StepSchema, { minItems: 1, maxItems: MAX_STEPS }) },
  { additionalProperties: false, title: 'WorkflowInput' },
);
export type WorkflowInput = Static<typeof WorkflowInput>;

/** The same body with steps left opaque: steps are checked one by one against their
 * own type's schema, so that an error names `steps[2].expression`, not "a union". */
export const WorkflowEnvelope = Type.Object(
  { ...workflowFields, steps: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_STEPS }) },
  { additionalProperties: false },
);

const Timestamp = Type.String({ description: 'YYYY-MM-DDTHH:MM:SS+00:00', examples: ['2026-01-15T10:30:00+00:00'] });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);
export const Id = Type.String({ pattern: '^[0-9a-f]{24}$', examples: ['665f1a2b3c4d5e6f7a8b9c0d'] });

export const Workflow = Type.Object(
  {
    id: Id,
    name: Type.String(),
    description: Type.String(),
    steps: Type.Array(StepSchema),
    created_by: Type.Union([Id, Type.Null()]),
    created_at: Timestamp,
    updated_at: Timestamp,
    last_run_at: NullableTimestamp,
  },
  { title: 'Workflow' },
);
export type Workflow = Static<typeof Workflow>;

export const WorkflowList = Type.Object({ workflows: Type.Array(Workflow), has_more: Type.Boolean({ description: 'true when a next page exists; its `after` is the last item’s id' }) }, { title: 'WorkflowList' });

export const DeletedWorkflow = Type.Object({ id: Id, name: Type.String(), deleted: Type.Literal(true) });

export { Timestamp, NullableTimestamp };
