import { ApiProblem } from "./problem.js";
/** The event names of GET /api/v1/agent-runs/{run_id}/events. */
export const RUN_EVENT_NAMES = [
    "run.status",
    "run.output.delta",
    "run.step",
    "run.requires_action",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.incomplete",
    "run.expired",
];
/** The events after which the run is over and the server ends the stream. */
export const TERMINAL_RUN_EVENTS = new Set([
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.incomplete",
    "run.expired",
]);
const everyRunEventListed = true;
void everyRunEventListed;
/** Statuses worth reconnecting after; other errors are thrown as ApiProblem at once. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
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
export async function* streamRunEvents(runId, options) {
    const { signal } = options;
    const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const base = options.baseUrl.replace(/\/+$/, "");
    const url = `${base}/api/v1/agent-runs/${encodeURIComponent(String(runId))}/events`;
    const maxReconnects = options.maxReconnects ?? 5;
    let delay = options.retryDelayMs ?? 1000;
    let lastEventId = options.lastEventId ?? "";
    let failures = 0;
    while (!signal?.aborted) {
        let failure;
        let wait = delay;
        try {
            const headers = new Headers({ Accept: "text/event-stream", "Cache-Control": "no-cache" });
            const token = typeof options.token === "function" ? await options.token() : options.token;
            if (token)
                headers.set("Authorization", `Bearer ${token}`);
            if (lastEventId)
                headers.set("Last-Event-ID", lastEventId);
            const response = await doFetch(url, { method: "GET", headers, ...(signal ? { signal } : {}) });
            if (!response.ok) {
                const problem = await ApiProblem.fromResponse(response);
                if (!RETRYABLE_STATUS.has(response.status))
                    throw new Fatal(problem);
                failure = problem;
                wait = retryAfterMs(response) ?? delay;
            }
            else if (!response.body || !isEventStream(response)) {
                throw new Fatal(new Error(`expected text/event-stream, got ${response.headers.get("Content-Type") ?? "no body"}`));
            }
            else {
                const events = parseEventStream(response.body, {
                    lastEventId,
                    onRetry: (ms) => {
                        delay = ms;
                    },
                });
                for await (const ev of events) {
                    lastEventId = ev.id;
                    if (!isRunEventName(ev.event))
                        continue;
                    failures = 0;
                    let data;
                    try {
                        data = JSON.parse(ev.data);
                    }
                    catch {
                        throw new Fatal(new Error(`event ${ev.id} (${ev.event}) has no JSON data: ${ev.data.slice(0, 200)}`));
                    }
                    yield { id: ev.id, event: ev.event, data };
                    if (TERMINAL_RUN_EVENTS.has(ev.event))
                        return;
                }
                failure = new Error(`the event stream of run ${runId} ended before the run did`);
                wait = delay;
            }
        }
        catch (err) {
            if (err instanceof Fatal)
                throw err.cause;
            if (signal?.aborted)
                return;
            failure = err; // network error: reconnect
            wait = delay;
        }
        failures++;
        if (failures > maxReconnects)
            throw failure;
        await sleep(wait, signal);
    }
}
/**
 * Parses a text/event-stream body (the HTML standard's algorithm: CR, LF or CRLF line
 * ends, `:` comments, multi-line data, `id`, `event` and `retry` fields; an event cut off
 * by the end of the stream is dropped). Cancels the body when the iteration stops early.
 */
export async function* parseEventStream(body, options = {}) {
    const reader = body.getReader();
    const decoder = new TextDecoder("utf-8"); // drops a leading BOM
    let buffer = "";
    let lastEventId = options.lastEventId ?? "";
    let eventType = "";
    let data = [];
    let done = false;
    try {
        while (!done) {
            const chunk = await reader.read();
            done = chunk.done;
            buffer += done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
            let pos = 0;
            for (;;) {
                const lf = buffer.indexOf("\n", pos);
                const cr = buffer.indexOf("\r", pos);
                let end;
                let next;
                if (cr >= 0 && (lf < 0 || cr < lf)) {
                    if (cr === buffer.length - 1 && !done)
                        break; // maybe the CR of a CRLF cut in two
                    end = cr;
                    next = buffer.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
                }
                else if (lf >= 0) {
                    end = lf;
                    next = lf + 1;
                }
                else {
                    break;
                }
                const line = buffer.slice(pos, end);
                pos = next;
                if (line === "") {
                    // dispatch
                    if (data.length > 0) {
                        yield { id: lastEventId, event: eventType || "message", data: data.join("\n") };
                    }
                    data = [];
                    eventType = "";
                    continue;
                }
                if (line.startsWith(":"))
                    continue; // comment (keep-alive)
                const colon = line.indexOf(":");
                const field = colon < 0 ? line : line.slice(0, colon);
                let value = colon < 0 ? "" : line.slice(colon + 1);
                if (value.startsWith(" "))
                    value = value.slice(1);
                switch (field) {
                    case "data":
                        data.push(value);
                        break;
                    case "event":
                        eventType = value;
                        break;
                    case "id":
                        if (!value.includes("\0"))
                            lastEventId = value;
                        break;
                    case "retry":
                        if (/^[0-9]+$/.test(value))
                            options.onRetry?.(Number(value));
                        break;
                    default:
                        break; // unknown fields are ignored
                }
            }
            buffer = buffer.slice(pos);
        }
    }
    finally {
        if (!done)
            await reader.cancel().catch(() => undefined);
        reader.releaseLock();
    }
}
/** Marks an error that must not lead to a reconnection. */
class Fatal {
    cause;
    constructor(cause) {
        this.cause = cause;
    }
}
function isRunEventName(name) {
    return RUN_EVENT_NAMES.includes(name);
}
function isEventStream(response) {
    return (response.headers.get("Content-Type") ?? "").toLowerCase().startsWith("text/event-stream");
}
function retryAfterMs(response) {
    const v = response.headers.get("Retry-After");
    return v && /^[0-9]+$/.test(v) ? Number(v) * 1000 : undefined;
}
function sleep(ms, signal) {
    return new Promise((resolve) => {
        if (signal?.aborted)
            return resolve();
        const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            resolve();
        };
        const timer = setTimeout(done, ms);
        signal?.addEventListener("abort", done, { once: true });
    });
}
