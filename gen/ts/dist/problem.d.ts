import type { components } from "./schema.d.ts";
/** An `application/problem+json` body, exactly as the contract defines it. */
export type Problem = components["schemas"]["Problem"];
/** One invalid field of a 422 problem. */
export type FieldError = components["schemas"]["FieldError"];
/**
 * An error response of the API. `problem` is the typed `Problem` body; responses that
 * were not problem+json (a proxy's HTML 502, say) get a synthesized `about:blank` problem.
 */
export declare class ApiProblem extends Error {
    readonly name = "ApiProblem";
    readonly problem: Problem;
    /** The HTTP response it came from, when there was one (its body is already read). */
    readonly response: Response | undefined;
    constructor(problem: Problem, response?: Response);
    get status(): number;
    /** The problem type, such as `/problems/precondition-failed`. */
    get type(): string;
    get title(): string;
    get detail(): string | undefined;
    /** The request's `X-Request-ID`, to find it in the server's logs. */
    get requestId(): string;
    /** The invalid fields of a 422 (empty otherwise). */
    get errors(): FieldError[];
    /** Builds the error from an already parsed body (openapi-fetch's `error`) and its response. */
    static from(body: unknown, response: Response): ApiProblem;
    /** Reads an error response's body and builds the error from it. */
    static fromResponse(response: Response): Promise<ApiProblem>;
}
/** Whether `err` is an ApiProblem, optionally with the given HTTP status. */
export declare function isApiProblem(err: unknown, status?: number): err is ApiProblem;
