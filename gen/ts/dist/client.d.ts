import { type FetchResponse, type MaybeOptionalInit, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.d.ts";
type HttpMethod = "get" | "put" | "post" | "patch" | "delete";
/** The paths that have an operation for this method. */
export type PathsWith<M extends HttpMethod> = {
    [P in keyof paths]: paths[P] extends {
        [K in M]: unknown;
    } ? P : never;
}[keyof paths];
type Operation<P extends keyof paths, M extends HttpMethod> = Extract<paths[P][M], Record<string | number, any>>;
type InitArgs<Init> = undefined extends Init ? [init?: Init] : [init: Init];
/**
 * One method of the client. Unlike openapi-fetch's own signature (which infers the
 * options object generically and so lets misspelled fields through when the required
 * ones are present), the options are checked against the operation exactly: an unknown
 * body, query, path or header field does not compile. (`parseAs` is not reflected in
 * the types: `data` is always the JSON body.)
 */
export type ApiMethod<M extends HttpMethod> = <P extends PathsWith<M>>(url: P, ...init: InitArgs<MaybeOptionalInit<paths[P], M>>) => Promise<FetchResponse<Operation<P, M>, {}, `${string}/${string}`>>;
/** The typed client (openapi-fetch's, with exact option types) over every path of openapi.yaml. */
export interface ApiClient {
    GET: ApiMethod<"get">;
    PUT: ApiMethod<"put">;
    POST: ApiMethod<"post">;
    PATCH: ApiMethod<"patch">;
    DELETE: ApiMethod<"delete">;
    /** Adds openapi-fetch middleware. */
    use(...middleware: Middleware[]): void;
    /** Removes openapi-fetch middleware. */
    eject(...middleware: Middleware[]): void;
}
export type TokenPair = components["schemas"]["TokenPair"];
/** What a session needs to keep (and may persist) between page loads. */
export type Tokens = Pick<TokenPair, "access_token" | "refresh_token">;
type MaybePromise<T> = T | Promise<T>;
export interface ApiClientOptions {
    /** Where the API is served, such as `https://automation.example.com` (no `/api/v1`). */
    baseUrl: string;
    /** The access token to send as `Authorization: Bearer …`; asked before every request. */
    getToken?: () => MaybePromise<string | undefined>;
    /**
     * Called when a request is answered 401: returns a new access token (after storing it
     * so that `getToken` returns it from now on) or undefined to give up. The request is
     * then retried once with the new token. Concurrent 401s share one refresh.
     */
    refresh?: () => Promise<string | undefined>;
    /**
     * An API key (`eak_…`, from `POST /api/v1/api-keys`) to send as `X-API-Key` instead of a
     * session: for scripts and services. It acts for its owner within its scopes; key
     * management itself needs a session. Do not combine it with `getToken`.
     */
    apiKey?: string;
    /** A fetch implementation (default: the global one). */
    fetch?: (input: Request) => Promise<Response>;
    /** Headers sent with every request. */
    headers?: Record<string, string>;
}
/** Creates the typed client. */
export declare function createApiClient(options: ApiClientOptions): ApiClient;
/** The middleware behind createApiClient's `apiKey`: sends the key as `X-API-Key`. */
export declare function apiKeyAuth(apiKey: string): Middleware;
/**
 * The middleware behind createApiClient: adds the bearer token and, on a 401, refreshes
 * once and retries the request once.
 */
export declare function bearerAuth(getToken: (() => MaybePromise<string | undefined>) | undefined, refresh: (() => Promise<string | undefined>) | undefined): Middleware;
/** The result of any client call. */
export type CallResult<T> = {
    data: T;
    error?: never;
    response: Response;
} | {
    data?: never;
    error: unknown;
    response: Response;
};
/**
 * Returns the data of a successful call or throws its problem as an ApiProblem:
 * `const task = unwrap(await api.GET("/api/v1/tasks/{task_id}", …))`.
 * A 304 (If-None-Match) throws too: check `result.response.status` first when you send one.
 */
export declare function unwrap<T>(result: CallResult<T>): T;
/** The response's `ETag`, for a later `If-Match` or `If-None-Match`. */
export declare function etagOf(result: {
    response: Response;
}): string | undefined;
/** Logs in with the OAuth2 password grant (the email is the `username`). Throws ApiProblem. */
export declare function login(client: ApiClient, credentials: {
    username: string;
    password: string;
}): Promise<TokenPair>;
/** Exchanges a refresh token for a new pair (the old one stops working). Throws ApiProblem. */
export declare function refreshTokens(client: ApiClient, refreshToken: string): Promise<TokenPair>;
/** Revokes the refresh token and every token rotated from the same login. Throws ApiProblem. */
export declare function logout(client: ApiClient, refreshToken: string): Promise<void>;
export interface ApiSessionOptions extends Omit<ApiClientOptions, "getToken" | "refresh"> {
    /** Tokens from an earlier login (for example, restored from storage). */
    tokens?: Tokens;
    /** Called whenever the tokens change (login, refresh, logout, failed refresh): persist them here. */
    onTokens?: (tokens: Tokens | undefined) => void;
}
/** A client plus the tokens it uses: logs in, refreshes on 401, logs out. */
export interface ApiSession {
    readonly client: ApiClient;
    /** The current tokens, if logged in. */
    readonly tokens: Tokens | undefined;
    login(username: string, password: string): Promise<TokenPair>;
    /** Rotates the tokens now; throws ApiProblem (and forgets the tokens) when the refresh token is refused. */
    refresh(): Promise<TokenPair>;
    logout(): Promise<void>;
}
/**
 * Creates a client that keeps its own tokens: `await session.login(email, password)`,
 * then `session.client.GET(…)`. An expired access token is refreshed transparently.
 */
export declare function createApiSession(options: ApiSessionOptions): ApiSession;
export {};
