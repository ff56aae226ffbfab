import type { components } from "./schema.d.ts";
type Schemas = components["schemas"];
/** The body of every webhook delivery; narrow it on `type`. */
export type WebhookEvent = Schemas["WebhookEvent"];
/** Every event type. */
export type WebhookEventType = Schemas["WebhookEventType"];
/** The event of one type, with `data` typed: the task, user or agent run as the API returns it. */
export type WebhookEventOf<T extends WebhookEventType> = WebhookEvent extends infer E ? E extends {
    type: infer U;
} ? T extends U ? Omit<E, "type"> & {
    type: T;
} : never : never : never;
/** The Standard Webhooks headers every delivery carries. */
export declare const WEBHOOK_HEADERS: readonly ["webhook-id", "webhook-timestamp", "webhook-signature"];
export type Webhook = Schemas["Webhook"];
export type WebhookCreate = Schemas["WebhookCreate"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export {};
