/**
 * An error response of the API. `problem` is the typed `Problem` body; responses that
 * were not problem+json (a proxy's HTML 502, say) get a synthesized `about:blank` problem.
 */
export class ApiProblem extends Error {
    name = "ApiProblem";
    problem;
    /** The HTTP response it came from, when there was one (its body is already read). */
    response;
    constructor(problem, response) {
        super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`);
        this.problem = problem;
        this.response = response;
    }
    get status() {
        return this.problem.status;
    }
    /** The problem type, such as `/problems/precondition-failed`. */
    get type() {
        return this.problem.type;
    }
    get title() {
        return this.problem.title;
    }
    get detail() {
        return this.problem.detail;
    }
    /** The request's `X-Request-ID`, to find it in the server's logs. */
    get requestId() {
        return this.problem.request_id;
    }
    /** The invalid fields of a 422 (empty otherwise). */
    get errors() {
        return this.problem.errors ?? [];
    }
    /** Builds the error from an already parsed body (openapi-fetch's `error`) and its response. */
    static from(body, response) {
        return new ApiProblem(toProblem(body, response), response);
    }
    /** Reads an error response's body and builds the error from it. */
    static async fromResponse(response) {
        let body = "";
        try {
            const text = await response.text();
            body = text;
            body = JSON.parse(text);
        }
        catch {
            // not JSON (or unreadable): keep the text
        }
        return ApiProblem.from(body, response);
    }
}
/** Whether `err` is an ApiProblem, optionally with the given HTTP status. */
export function isApiProblem(err, status) {
    return err instanceof ApiProblem && (status === undefined || err.status === status);
}
function toProblem(body, response) {
    const requestId = response.headers.get("X-Request-ID") ?? "";
    if (isObject(body) && typeof body.type === "string" && typeof body.title === "string") {
        const p = body;
        return {
            ...p,
            type: body.type,
            title: body.title,
            status: typeof p.status === "number" ? p.status : response.status,
            request_id: typeof p.request_id === "string" ? p.request_id : requestId,
        };
    }
    const text = typeof body === "string" ? body.trim().slice(0, 500) : "";
    return {
        type: "about:blank",
        title: response.statusText || `HTTP ${response.status}`,
        status: response.status,
        ...(text ? { detail: text } : {}),
        request_id: requestId,
    };
}
function isObject(v) {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}
