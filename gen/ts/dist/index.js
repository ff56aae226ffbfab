export { createApiClient, createApiSession, bearerAuth, apiKeyAuth, unwrap, etagOf, login, refreshTokens, logout, } from "./client.js";
export { ApiProblem, isApiProblem } from "./problem.js";
export { streamRunEvents, parseEventStream, RUN_EVENT_NAMES, TERMINAL_RUN_EVENTS, } from "./events.js";
export { WEBHOOK_HEADERS } from "./webhooks.js";
