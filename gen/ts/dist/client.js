// Hand-written: a typed openapi-fetch client over the generated `paths` (schema.d.ts).
import createClient, {} from "openapi-fetch";
import { ApiProblem } from "./problem.js";
/** Requests under this prefix (login, refresh, logout) never carry a token nor trigger a refresh. */
const AUTH_PREFIX = "/api/v1/auth/";
/** Creates the typed client. */
export function createApiClient(options) {
    const client = createClient({
        baseUrl: options.baseUrl,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.headers ? { headers: options.headers } : {}),
    });
    if (options.apiKey && (options.getToken || options.refresh)) {
        throw new Error("createApiClient: pass either apiKey or getToken/refresh, not both");
    }
    if (options.apiKey) {
        client.use(apiKeyAuth(options.apiKey));
    }
    if (options.getToken || options.refresh) {
        client.use(bearerAuth(options.getToken, options.refresh));
    }
    // Same object; only the method signatures are stricter (see ApiMethod).
    return client;
}
/** The middleware behind createApiClient's `apiKey`: sends the key as `X-API-Key`. */
export function apiKeyAuth(apiKey) {
    return {
        onRequest({ request, schemaPath }) {
            if (schemaPath.startsWith(AUTH_PREFIX))
                return undefined;
            request.headers.set("X-API-Key", apiKey);
            return request;
        },
    };
}
/**
 * The middleware behind createApiClient: adds the bearer token and, on a 401, refreshes
 * once and retries the request once.
 */
export function bearerAuth(getToken, refresh) {
    // Copies of the requests in flight, to replay one after a refresh (bodies are streams).
    const inFlight = new Map();
    let refreshing;
    const refreshOnce = () => {
        refreshing ??= (async () => {
            try {
                return await refresh?.();
            }
            catch {
                return undefined;
            }
            finally {
                refreshing = undefined;
            }
        })();
        return refreshing;
    };
    return {
        async onRequest({ request, schemaPath, id }) {
            if (schemaPath.startsWith(AUTH_PREFIX))
                return undefined;
            if (!request.headers.has("Authorization")) {
                const token = await getToken?.();
                if (token)
                    request.headers.set("Authorization", `Bearer ${token}`);
            }
            if (refresh)
                inFlight.set(id, request.clone());
            return request;
        },
        async onResponse({ response, id, options }) {
            const original = inFlight.get(id);
            inFlight.delete(id);
            if (response.status !== 401 || !original)
                return undefined;
            // Another request may have refreshed the token since this one was sent.
            const current = await getToken?.();
            const sent = original.headers.get("Authorization");
            const token = current && sent !== `Bearer ${current}` ? current : await refreshOnce();
            if (!token)
                return undefined;
            await response.body?.cancel();
            original.headers.set("Authorization", `Bearer ${token}`);
            return options.fetch(original);
        },
        onError({ id }) {
            inFlight.delete(id);
        },
    };
}
/**
 * Returns the data of a successful call or throws its problem as an ApiProblem:
 * `const task = unwrap(await api.GET("/api/v1/tasks/{task_id}", …))`.
 * A 304 (If-None-Match) throws too: check `result.response.status` first when you send one.
 */
export function unwrap(result) {
    const { response } = result;
    if (response.ok)
        return result.data;
    if (response.status >= 400)
        throw ApiProblem.from(result.error, response);
    throw new Error(`unexpected HTTP ${response.status} ${response.statusText} from ${response.url}`);
}
/** The response's `ETag`, for a later `If-Match` or `If-None-Match`. */
export function etagOf(result) {
    return result.response.headers.get("ETag") ?? undefined;
}
/** Logs in with the OAuth2 password grant (the email is the `username`). Throws ApiProblem. */
export async function login(client, credentials) {
    return unwrap(await client.POST("/api/v1/auth/token", {
        body: { grant_type: "password", username: credentials.username, password: credentials.password },
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
    }));
}
/** Exchanges a refresh token for a new pair (the old one stops working). Throws ApiProblem. */
export async function refreshTokens(client, refreshToken) {
    return unwrap(await client.POST("/api/v1/auth/refresh", { body: { refresh_token: refreshToken } }));
}
/** Revokes the refresh token and every token rotated from the same login. Throws ApiProblem. */
export async function logout(client, refreshToken) {
    unwrap(await client.POST("/api/v1/auth/logout", { body: { refresh_token: refreshToken } }));
}
/**
 * Creates a client that keeps its own tokens: `await session.login(email, password)`,
 * then `session.client.GET(…)`. An expired access token is refreshed transparently.
 */
export function createApiSession(options) {
    const { tokens: initial, onTokens, ...clientOptions } = options;
    let tokens = initial;
    const set = (t) => {
        tokens = t && { access_token: t.access_token, refresh_token: t.refresh_token };
        onTokens?.(tokens);
    };
    const refresh = async () => {
        if (!tokens)
            throw new Error("not logged in");
        try {
            const pair = await refreshTokens(client, tokens.refresh_token);
            set(pair);
            return pair;
        }
        catch (err) {
            if (err instanceof ApiProblem && err.status === 401)
                set(undefined);
            throw err;
        }
    };
    const client = createApiClient({
        ...clientOptions,
        getToken: () => tokens?.access_token,
        refresh: async () => (tokens ? (await refresh()).access_token : undefined),
    });
    return {
        client,
        get tokens() {
            return tokens;
        },
        async login(username, password) {
            const pair = await login(client, { username, password });
            set(pair);
            return pair;
        },
        refresh,
        async logout() {
            const current = tokens;
            set(undefined);
            if (current)
                await logout(client, current.refresh_token);
        },
    };
}
