import { Type } from '@sinclair/typebox';
import { Id, NullableTimestamp, Timestamp } from '../workflows/schemas.js';
import { EVENTS } from './events.js';

const Event = Type.Union(EVENTS.map((e) => Type.Literal(e)));
const Events = Type.Array(Event, { minItems: 1, uniqueItems: true, description: 'default: all three' });
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'http:// or https:// URL that receives the POSTs' });

export const WebhookEndpoint = Type.Object(
  { endpoint_id: Id, url: Type.String(), events: Type.Array(Event), workflow_id: Type.Union([Id, Type.Null()]), enabled: Type.Boolean(), created_at: Timestamp },
  { title: 'WebhookEndpoint' },
);
export const CreatedWebhookEndpoint = Type.Object(
  { ...WebhookEndpoint.properties, secret: Type.String({ description: 'whsec_…: the signing secret, shown only in this response' }) },
  { title: 'CreatedWebhookEndpoint' },
);
export const WebhookEndpointList = Type.Object({ endpoints: Type.Array(WebhookEndpoint), has_more: Type.Boolean({ description: 'always false: this list is not paginated' }) });
export const DeletedWebhookEndpoint = Type.Object({ endpoint_id: Id, deleted: Type.Literal(true) });

export const CreateEndpointBody = Type.Object(
  { url: Url, events: Type.Optional(Events), workflow_id: Type.Optional(Type.Union([Id, Type.Null()])) },
  { additionalProperties: false },
);
export const UpdateEndpointBody = Type.Object(
  { url: Type.Optional(Url), events: Type.Optional(Events), enabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

export const Delivery = Type.Object(
  {
    delivery_id: Id,
    endpoint_id: Id,
    event: Event,
    status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
    attempts: Type.Integer(),
    last_status_code: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    next_attempt_at: NullableTimestamp,
    delivered_at: NullableTimestamp,
    created_at: Timestamp,
  },
  { title: 'Delivery' },
);
export const DeliveryList = Type.Object({ deliveries: Type.Array(Delivery), has_more: Type.Boolean({ description: 'always false: this list is not paginated' }) });
