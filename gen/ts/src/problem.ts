// Hand-written: RFC 9457 problem details as a typed Error.
import type { components } from "./schema.d.ts";

/** An `application/problem+json` body, exactly as the contract defines it. */
export type Problem = components["schemas"]["Problem"];
/** One invalid field of a 422 problem. */
export type FieldError = components["schemas"]["FieldError"];

/**
 * An error response of the API. `problem` is the typed `Problem` body; responses that
 * were not problem+json (a proxy's HTML 502, say) get a synthesized `about:blank` problem.
 */
export class ApiProblem extends Error {
  override readonly name = "ApiProblem";
  readonly problem: Problem;
  /** The HTTP response it came from, when there was one (its body is already read). */
  readonly response: Response | undefined;

  constructor(problem: Problem, response?: Response) {
    super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.problem = problem;
    this.response = response;
  }

  get status(): number {
    return this.problem.status;
  }
  /** The problem type, such as `/problems/precondition-failed`. */
  get type(): string {
    return this.problem.type;
  }
  get title(): string {
    return this.problem.title;
  }
  get detail(): string | undefined {
    return this.problem.detail;
  }
  /** The request's `X-Request-ID`, to find it in the server's logs. */
  get requestId(): string {
    return this.problem.request_id;
  }
  /** The invalid fields of a 422 (empty otherwise). */
  get errors(): FieldError[] {
    return this.problem.errors ?? [];
  }

  /** Builds the error from an already parsed body (openapi-fetch's `error`) and its response. */
  static from(body: unknown, response: Response): ApiProblem {
    return new ApiProblem(toProblem(body, response), response);
  }

  /** Reads an error response's body and builds the error from it. */
  static async fromResponse(response: Response): Promise<ApiProblem> {
    let body: unknown = "";
    try {
      const text = await response.text();
      body = text;
      body = JSON.parse(text);
    } catch {
      // not JSON (or unreadable): keep the text
    }
    return ApiProblem.from(body, response);
  }
}

/** Whether `err` is an ApiProblem, optionally with the given HTTP status. */
export function isApiProblem(err: unknown, status?: number): err is ApiProblem {
  return err instanceof ApiProblem && (status === undefined || err.status === status);
}

function toProblem(body: unknown, response: Response): Problem {
  const requestId = response.headers.get("X-Request-ID") ?? "";
  if (isObject(body) && typeof body.type === "string" && typeof body.title === "string") {
    const p = body as Partial<Problem>;
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
