// Unit tests of the client wrapper over a fake fetch (no server): bearer token,
// refresh-once-on-401, problem+json errors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiProblem, createApiClient, createApiSession, isApiProblem, unwrap } from "../src/index.ts";

const problem401 = {
  type: "/problems/unauthorized",
  title: "Unauthorized",
  status: 401,
  detail: "the access token has expired",
  request_id: "r-401",
};

function json(status: number, body: unknown, type = "application/json"): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });
}

/** A fake server: accepts only `Bearer <valid>` and records what it was sent. */
function fakeServer(valid: () => string) {
  const seen: { method: string; path: string; auth: string | null; body: string }[] = [];
  const fetch = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    seen.push({ method: req.method, path, auth: req.headers.get("Authorization"), body });
    if (path === "/api/v1/auth/refresh") {
      return json(200, { access_token: "fresh", token_type: "bearer", expires_in: 1800, refresh_token: "rt-2" });
    }
    if (req.headers.get("Authorization") !== `Bearer ${valid()}`) {
      return json(401, problem401, "application/problem+json");
    }
    if (req.method === "POST") return json(201, { ...JSON.parse(body), id: 1 });
    return json(200, { id: 1, name: "Ada" });
  };
  return { fetch, seen };
}

describe("createApiClient", () => {
  it("sends the bearer token and, on a 401, refreshes once and replays the request with its body", async () => {
    let token = "stale";
    let refreshes = 0;
    const server = fakeServer(() => "fresh");
    const api = createApiClient({
      baseUrl: "http://api.test/",
      fetch: server.fetch,
      getToken: () => token,
      refresh: async () => {
        refreshes++;
        token = "fresh";
        return token;
      },
    });
    const { data, response } = await api.POST("/api/v1/tasks", { body: { title: "Replay me", tags: ["a"] } });
    assert.equal(response.status, 201);
    assert.equal(data?.title, "Replay me");
    assert.equal(refreshes, 1);
    assert.deepEqual(
      server.seen.map((s) => [s.method, s.path, s.auth, s.body]),
      [
        ["POST", "/api/v1/tasks", "Bearer stale", '{"title":"Replay me","tags":["a"]}'],
        ["POST", "/api/v1/tasks", "Bearer fresh", '{"title":"Replay me","tags":["a"]}'],
      ],
    );
  });

  it("retries only once, and returns the second 401 as a typed problem", async () => {
    let refreshes = 0;
    const server = fakeServer(() => "never-valid");
    const api = createApiClient({
      baseUrl: "http://api.test",
      fetch: server.fetch,
      getToken: () => "a",
      refresh: async () => `b${++refreshes}`,
    });
    const result = await api.GET("/api/v1/users/me");
    assert.equal(result.response.status, 401);
    assert.equal(refreshes, 1);
    assert.equal(server.seen.length, 2);
    assert.throws(
      () => unwrap(result),
      (err: unknown) => isApiProblem(err, 401) && err.type === "/problems/unauthorized" && err.requestId === "r-401",
    );
  });

  it("shares one refresh between concurrent 401s", async () => {
    let token = "stale";
    let refreshes = 0;
    const server = fakeServer(() => "fresh");
    const api = createApiClient({
      baseUrl: "http://api.test",
      fetch: server.fetch,
      getToken: () => token,
      refresh: async () => {
        refreshes++;
        await new Promise((r) => setTimeout(r, 10));
        token = "fresh";
        return token;
      },
    });
    const results = await Promise.all([1, 2, 3].map(() => api.GET("/api/v1/users/me")));
    assert.deepEqual(
      results.map((r) => r.response.status),
      [200, 200, 200],
    );
    assert.equal(refreshes, 1);
  });

  it("does not send tokens to, nor refresh for, the auth endpoints", async () => {
    let refreshes = 0;
    const seen: (string | null)[] = [];
    const api = createApiClient({
      baseUrl: "http://api.test",
      fetch: async (req) => {
        seen.push(req.headers.get("Authorization"));
        return json(401, problem401, "application/problem+json");
      },
      getToken: () => "t",
      refresh: async () => `t${++refreshes}`,
    });
    const r = await api.POST("/api/v1/auth/refresh", { body: { refresh_token: "x" } });
    assert.equal(r.response.status, 401);
    assert.deepEqual(seen, [null]);
    assert.equal(refreshes, 0);
  });

  it("turns non-problem error bodies into about:blank problems", () => {
    const response = new Response("<html>bad gateway</html>", {
      status: 502,
      statusText: "Bad Gateway",
      headers: { "X-Request-ID": "edge-1" },
    });
    const err = ApiProblem.from("<html>bad gateway</html>", response);
    assert.equal(err.status, 502);
    assert.equal(err.type, "about:blank");
    assert.equal(err.title, "Bad Gateway");
    assert.equal(err.requestId, "edge-1");
    assert.match(err.message, /^502 Bad Gateway/);
  });
});

describe("createApiSession", () => {
  it("refreshes with its refresh token and reports the rotated tokens", async () => {
    const stored: unknown[] = [];
    const server = fakeServer(() => "fresh");
    const session = createApiSession({
      baseUrl: "http://api.test",
      fetch: server.fetch,
      tokens: { access_token: "expired", refresh_token: "rt-1" },
      onTokens: (t) => stored.push(t),
    });
    const me = unwrap(await session.client.GET("/api/v1/users/me"));
    assert.equal(me.name, "Ada");
    assert.deepEqual(session.tokens, { access_token: "fresh", refresh_token: "rt-2" });
    assert.deepEqual(stored, [{ access_token: "fresh", refresh_token: "rt-2" }]);
    const refresh = server.seen.find((s) => s.path === "/api/v1/auth/refresh");
    assert.equal(refresh?.body, '{"refresh_token":"rt-1"}');
    assert.equal(refresh?.auth, null);
  });
});
