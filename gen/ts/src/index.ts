// @enterprise-automation/api-client: the generated types plus a small typed client.
export type { paths, components, operations } from "./schema.d.ts";
export {
  createApiClient,
  createApiSession,
  bearerAuth,
  apiKeyAuth,
  unwrap,
  etagOf,
  login,
  refreshTokens,
  logout,
  type ApiClient,
  type ApiClientOptions,
  type ApiSession,
  type ApiSessionOptions,
  type CallResult,
  type TokenPair,
  type Tokens,
} from "./client.ts";
export { ApiProblem, isApiProblem, type Problem, type FieldError } from "./problem.ts";
export {
  streamRunEvents,
  parseEventStream,
  RUN_EVENT_NAMES,
  TERMINAL_RUN_EVENTS,
  type RunEvent,
  type RunEventName,
  type RunEventData,
  type ServerSentEvent,
  type StreamRunEventsOptions,
} from "./events.ts";

import type { components } from "./schema.d.ts";
type Schemas = components["schemas"];
export type User = Schemas["User"];
export type UserCreate = Schemas["UserCreate"];
export type UserUpdate = Schemas["UserUpdate"];
export type Task = Schemas["Task"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskUpdate = Schemas["TaskUpdate"];
export type TaskStatus = Schemas["TaskStatus"];
export type TaskPriority = Schemas["TaskPriority"];
export { WEBHOOK_HEADERS, type WebhookEvent, type WebhookEventOf, type WebhookEventType, type Webhook, type WebhookCreate, type WebhookDelivery } from "./webhooks.ts";
