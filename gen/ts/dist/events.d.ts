import type { components } from "./schema.d.ts";
/** The event names of GET /api/v1/agent-runs/{run_id}/events. */
export declare const RUN_EVENT_NAMES: readonly ["run.status", "run.output.delta", "run.step", "run.requires_action", "run.completed", "run.failed", "run.cancelled", "run.incomplete", "run.expired"];
export type RunEventName = (typeof RUN_EVENT_NAMES)[number];
/** The events after which the run is over and the server ends the stream. */
export declare const TERMINAL_RUN_EVENTS: ReadonlySet<RunEventName>;
type Schemas = components["schemas"];
/** The JSON `data` of a run event: the contract's `AgentRunEvent` once the spec defines it. */
export type RunEventData = Schemas extends {
    AgentRunEvent: infer E;
} ? E : {
    type: RunEventName;
    run_id: number;
    [field: string]: unknown;
};
/** One event of a run. */
export interface RunEvent {
    /** The event's `id:`; pass it as `lastEventId` to resume after it. */
    id: string;
    event: RunEventName;
    data: RunEventData;
}
export interface StreamRunEventsOptions {
    /** Where the API is served (no `/api/v1`). */
    baseUrl: string;
    /** The access token, or a function asked before each (re)connection. */
    token?: string | (() => string | undefined | Promise<string | undefined>);
    /** Resume after this event id (otherwise the run is replayed from its first event). */
    lastEventId?: string;
    /** Aborting ends the iteration quietly and closes the connection. */
    signal?: AbortSignal;
    /** Wait before reconnecting, in ms (default 1000; the server's `retry:` field overrides it). */
    retryDelayMs?: number;
    /** Give up (throwing the last error) after this many reconnections in a row without an event (default 5). */
    maxReconnects?: number;
    /** A fetch implementation (default: the global one). */
    fetch?: (input: string, init: RequestInit) => Promise<Response>;
}
/**
 * Streams a run's events until its terminal event:
 *
 * ```ts
 * for await (const ev of streamRunEvents(run.id, { baseUrl, token })) {
 *   if (ev.event === "run.output.delta") process.stdout.write(ev.data.delta ?? "");
 * }
 * ```
 *
 * Throws ApiProblem for error responses (401, 404, …). A dropped connection is
 * re-opened with `Last-Event-ID` so no event is lost or repeated. Unknown event names
 * are skipped.
 */
export declare function streamRunEvents(runId: number | string, options: StreamRunEventsOptions): AsyncGenerator<RunEvent, void, undefined>;
/** One dispatched Server-Sent Event, as EventSource would report it. */
export interface ServerSentEvent {
    /** The last event id at dispatch time (`""` if none was ever set). */
    id: string;
    /** The `event:` field, or `"message"`. */
    event: string;
    /** The `data:` lines joined with `\n`. */
    data: string;
}
/**
 * Parses a text/event-stream body (the HTML standard's algorithm: CR, LF or CRLF line
 * ends, `:` comments, multi-line data, `id`, `event` and `retry` fields; an event cut off
 * by the end of the stream is dropped). Cancels the body when the iteration stops early.
 */
export declare function parseEventStream(body: ReadableStream<Uint8Array>, options?: {
    lastEventId?: string;
    onRetry?: (ms: number) => void;
}): AsyncGenerator<ServerSentEvent, void, undefined>;
export {};
