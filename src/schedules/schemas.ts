import { type Static, Type } from '@sinclair/typebox';
import { Id, NullableTimestamp, Timestamp } from '../workflows/schemas.js';

// One schema per shape: validation, types and the OpenAPI document.

export const MAX_SCHEDULES_PER_WORKSPACE = 100;

const Overlap = Type.Union([Type.Literal('skip'), Type.Literal('allow')], { description: 'skip (default): a tick whose previous execution still runs creates nothing' });
const Catchup = Type.Union([Type.Literal('latest'), Type.Literal('skip')], { description: 'latest (default): after downtime the most recent missed tick runs once; skip drops them' });
const fields = {
  cron: Type.String({ minLength: 1, maxLength: 200, description: '5 fields (minute precision) or 6 (seconds first)', examples: ['0 9 * * 1-5'] }),
  timezone: Type.String({ minLength: 1, maxLength: 100, description: 'IANA time zone, default UTC', examples: ['Europe/Paris'] }),
  input: Type.Unknown({ description: 'the input of every execution it starts (any JSON, default null)' }),
  enabled: Type.Boolean(),
  overlap: Overlap,
  catchup: Catchup,
};

export const ScheduleInput = Type.Object(
  {
    cron: fields.cron,
    timezone: Type.Optional(fields.timezone),
    input: Type.Optional(fields.input),
    enabled: Type.Optional(fields.enabled),
    overlap: Type.Optional(fields.overlap),
    catchup: Type.Optional(fields.catchup),
  },
  { additionalProperties: false, title: 'ScheduleInput' },
);
export type ScheduleInput = Static<typeof ScheduleInput>;

export const SchedulePatch = Type.Partial(Type.Object(fields), { additionalProperties: false, title: 'SchedulePatch' });
export type SchedulePatch = Static<typeof SchedulePatch>;

export const Schedule = Type.Object(
  {
    schedule_id: Id,
    workflow_id: Id,
    cron: Type.String(),
    timezone: Type.String(),
    input: Type.Unknown(),
    enabled: Type.Boolean(),
    overlap: Overlap,
    catchup: Catchup,
    next_run_at: NullableTimestamp,
    upcoming: Type.Array(Timestamp, { description: 'the next 5 fire times; empty when disabled' }),
    last_run_at: NullableTimestamp,
    last_execution_id: Type.Union([Id, Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { title: 'Schedule' },
);
export type Schedule = Static<typeof Schedule>;

export const ScheduleList = Type.Object({ schedules: Type.Array(Schedule), has_more: Type.Boolean({ description: 'true when a next page exists; its `after` is the last item’s id' }) }, { title: 'ScheduleList' });
export const DeletedSchedule = Type.Object({ schedule_id: Id, deleted: Type.Literal(true) });
