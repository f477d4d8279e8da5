import { type Static, Type } from '@sinclair/typebox';
import { Id, NullableTimestamp, Timestamp } from '../workflows/schemas.js';

const Mode = Type.Union([Type.Literal('async'), Type.Literal('sync')], { description: 'async (default): 202 once committed; sync: 200 with the result if it ends within sync_timeout_seconds' });
const HeaderName = Type.String({ minLength: 1, maxLength: 100, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" });

export const HmacSignature = Type.Object(
  {
    type: Type.Literal('hmac_sha256'),
    header: HeaderName,
    prefix: Type.Optional(Type.String({ maxLength: 100, description: 'text before the digest, e.g. "sha256=" (default "")' })),
    encoding: Type.Union([Type.Literal('hex'), Type.Literal('base64')]),
    secret: Type.String({ minLength: 1, maxLength: 1024 }),
  },
  { additionalProperties: false },
);
export const StandardWebhooksSignature = Type.Object(
  { type: Type.Literal('standard_webhooks'), secret: Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$', maxLength: 1024, description: 'whsec_ + base64 of the key' }) },
  { additionalProperties: false },
);
/** Stripe's own scheme (Stripe-Signature: t=…,v1=…): the timestamp is part of the
 * signed text, so it is not a plain HMAC of the body. The secret is used as given. */
export const StripeSignature = Type.Object(
  { type: Type.Literal('stripe'), secret: Type.String({ pattern: '^whsec_[!-~]+$', maxLength: 1024, description: "the endpoint's signing secret, whsec_…" }) },
  { additionalProperties: false },
);
export type SignatureSettings = Static<typeof HmacSignature> | Static<typeof StandardWebhooksSignature> | Static<typeof StripeSignature>;

export const WebhookInput = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    mode: Type.Optional(Mode),
    sync_timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 })),
    signature: Type.Optional(Type.Union([HmacSignature, StandardWebhooksSignature, StripeSignature])),
    dedupe_header: Type.Optional(HeaderName),
  },
  { additionalProperties: false, title: 'WebhookInput' },
);
export type WebhookInput = Static<typeof WebhookInput>;

/** The signature settings as shown: never the secret. */
const SignatureView = Type.Union([
  Type.Object({ type: Type.Literal('hmac_sha256'), header: Type.String(), prefix: Type.String(), encoding: Type.Union([Type.Literal('hex'), Type.Literal('base64')]) }),
  Type.Object({ type: Type.Literal('standard_webhooks') }),
  Type.Object({ type: Type.Literal('stripe') }),
  Type.Null(),
]);

export const Webhook = Type.Object(
  {
    webhook_id: Id,
    workflow_id: Id,
    name: Type.String(),
    url: Type.String({ description: 'full secret URL in the create response only; later the token is cut to 8 characters' }),
    mode: Mode,
    sync_timeout_seconds: Type.Integer(),
    signature: SignatureView,
    dedupe_header: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    last_received_at: NullableTimestamp,
  },
  { title: 'Webhook' },
);
export type Webhook = Static<typeof Webhook>;

export const WebhookList = Type.Object({ webhooks: Type.Array(Webhook), has_more: Type.Boolean({ description: 'true when a next page exists; its `after` is the last item’s id' }) }, { title: 'WebhookList' });
export const DeletedWebhook = Type.Object({ webhook_id: Id, deleted: Type.Literal(true) });

export const SyncResult = Type.Object(
  { execution_id: Id, status: Type.String(), result: Type.Unknown({ description: "the last step's result" }), error: Type.Union([Type.String(), Type.Null()]) },
  { title: 'WebhookSyncResult' },
);
