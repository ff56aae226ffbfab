// Hand-written: the types of the webhook events this API posts to subscribed endpoints
// (described in openapi.yaml under `x-webhooks`, their schemas in components), so that a
// Node receiver can type its handler. Verify the signature first, with any Standard
// Webhooks implementation (the `standardwebhooks` package, for one).
import type { components } from "./schema.d.ts";

type Schemas = components["schemas"];

/** The body of every webhook delivery; narrow it on `type`. */
export type WebhookEvent = Schemas["WebhookEvent"];
/** Every event type. */
export type WebhookEventType = Schemas["WebhookEventType"];

/** The event of one type, with `data` typed: the task, user or agent run as the API returns it. */
export type WebhookEventOf<T extends WebhookEventType> = WebhookEvent extends infer E
  ? E extends { type: infer U }
    ? T extends U
      ? Omit<E, "type"> & { type: T }
      : never
    : never
  : never;

/** The Standard Webhooks headers every delivery carries. */
export const WEBHOOK_HEADERS = ["webhook-id", "webhook-timestamp", "webhook-signature"] as const;

export type Webhook = Schemas["Webhook"];
export type WebhookCreate = Schemas["WebhookCreate"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
