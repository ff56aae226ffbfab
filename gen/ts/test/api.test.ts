// End to end: starts the real server (`automation dev`, private PostgreSQL) and drives
// it through the generated client only.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  ApiProblem,
  createApiClient,
  createApiSession,
  etagOf,
  isApiProblem,
  unwrap,
  type ApiSession,
  type Task,
  type TaskCreate,
  type operations,
} from "../src/index.ts";
import { ADMIN_EMAIL, ADMIN_PASSWORD, startServer, type Server } from "./server.ts";

type TaskQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;

/** Asserts that `fn` throws (or rejects with) an ApiProblem and returns it. */
async function problemOf(fn: () => unknown): Promise<ApiProblem> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ApiProblem) return err;
    throw err;
  }
  assert.fail("expected an ApiProblem");
}

describe("the generated client against the real server", { timeout: 300_000 }, () => {
  let server: Server;
  let admin: ApiSession;
  let user: ApiSession;
  const userEmail = "ada@example.com";
  const userPassword = "correct-horse-battery";

  before(async () => {
    server = await startServer();
    admin = createApiSession({ baseUrl: server.baseUrl });
    user = createApiSession({ baseUrl: server.baseUrl });
  });
  after(async () => {
    await server?.stop();
  });

  it("logs in as the administrator", async () => {
    const pair = await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    assert.equal(pair.token_type, "bearer");
    assert.ok(pair.expires_in > 0);
    const me = unwrap(await admin.client.GET("/api/v1/users/me"));
    assert.equal(me.email, ADMIN_EMAIL);
    assert.equal(me.is_admin, true);
  });

  it("rejects a wrong password with a typed 401 problem", async () => {
    const anon = createApiSession({ baseUrl: server.baseUrl });
    const p = await problemOf(() => anon.login(ADMIN_EMAIL, "not-the-password"));
    assert.equal(p.status, 401);
    assert.equal(p.type, "/problems/unauthorized");
    assert.ok(p.requestId);
  });

  it("creates a user, who logs in", async () => {
    const created = await admin.client.POST("/api/v1/users", {
      body: { name: "Ada Lovelace", email: userEmail, password: userPassword },
    });
    assert.equal(created.response.status, 201);
    const ada = unwrap(created);
    assert.equal(ada.email, userEmail);
    assert.equal(ada.is_admin, false);
    assert.equal(created.response.headers.get("Location"), `/api/v1/users/${ada.id}`);

    const dup = await problemOf(async () =>
      unwrap(await admin.client.POST("/api/v1/users", { body: { name: "Ada again", email: "ADA@example.com", password: userPassword } })),
    );
    assert.equal(dup.status, 409);

    await user.login(userEmail, userPassword);
    const me = unwrap(await user.client.GET("/api/v1/users/me"));
    assert.equal(me.id, ada.id);

    const forbidden = await problemOf(async () =>
      unwrap(await user.client.POST("/api/v1/users", { body: { name: "Eve", email: "eve@example.com", password: userPassword } })),
    );
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.type, "/problems/forbidden");
  });

  describe("tasks", () => {
    const tasks: Record<string, Task> = {};
    const create = async (session: ApiSession, body: TaskCreate): Promise<Task> => {
      const res = await session.client.POST("/api/v1/tasks", {
        params: { header: { "Idempotency-Key": randomUUID() } },
        body,
      });
      assert.equal(res.response.status, 201);
      return unwrap(res);
    };

    it("creates tasks with tags and priorities", async () => {
      tasks.invoices = await create(user, { title: "Reconcile invoices", priority: "high", tags: ["billing", "q4"] });
      tasks.payers = await create(user, { title: "Chase late payers", priority: "urgent", tags: ["billing"] });
      tasks.keys = await create(user, { title: "Rotate keys", priority: "low", tags: ["ops"] });
      tasks.archive = await create(user, {
        title: "Archive Q3",
        description: "Move the Q3 statements to cold storage.",
        tags: ["billing"],
        due_at: "2030-01-31T17:00:00Z",
        metadata: { source: "crm", ticket: 4711 },
      });
      tasks.admins = await create(admin, { title: "Audit billing", priority: "urgent", tags: ["billing"] });

      assert.equal(tasks.archive.priority, "medium"); // the default
      assert.equal(tasks.archive.status, "pending");
      assert.deepEqual(tasks.invoices.tags, ["billing", "q4"]);
      assert.equal(tasks.archive.version, 1);

      // The same Idempotency-Key and body replay the first response.
      const key = randomUUID();
      const first = await user.client.POST("/api/v1/tasks", { params: { header: { "Idempotency-Key": key } }, body: { title: "Once" } });
      const again = await user.client.POST("/api/v1/tasks", { params: { header: { "Idempotency-Key": key } }, body: { title: "Once" } });
      assert.equal(unwrap(again).id, unwrap(first).id);
      assert.equal(again.response.headers.get("Idempotent-Replayed"), "true");
      tasks.once = unwrap(first);
    });

    it("moves a task along the transition table with If-Match", async () => {
      const task = tasks.archive!;
      const got = await user.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: task.id } } });
      const etag = etagOf(got);
      assert.equal(etag, '"1"');

      const notModified = await user.client.GET("/api/v1/tasks/{task_id}", {
        params: { path: { task_id: task.id }, header: { "If-None-Match": etag } },
      });
      assert.equal(notModified.response.status, 304);

      const updated = await user.client.PATCH("/api/v1/tasks/{task_id}", {
        params: { path: { task_id: task.id }, header: { "If-Match": etag } },
        body: { status: "in_progress", tags: ["billing", "archive"] },
      });
      assert.equal(updated.response.status, 200);
      const moved = unwrap(updated);
      assert.equal(moved.status, "in_progress");
      assert.equal(moved.version, 2);
      assert.equal(etagOf(updated), '"2"');
      tasks.archive = moved;

      // The same stale ETag again: someone else's change would be lost, so 412.
      const stale = await user.client.PATCH("/api/v1/tasks/{task_id}", {
        params: { path: { task_id: task.id }, header: { "If-Match": etag } },
        body: { status: "completed" },
      });
      assert.equal(stale.response.status, 412);
      const p = await problemOf(() => unwrap(stale));
      assert.ok(isApiProblem(p, 412));
      assert.equal(p.status, 412);
      assert.equal(p.type, "/problems/precondition-failed");
      assert.equal(p.problem.title, "Precondition Failed");
      assert.ok(p.requestId, "problems carry the request id");
      assert.equal(p.requestId, stale.response.headers.get("X-Request-ID"));
      assert.match(stale.response.headers.get("Content-Type") ?? "", /^application\/problem\+json/);

      // A transition the table forbids is a 409.
      const bad = await problemOf(async () =>
        unwrap(
          await user.client.PATCH("/api/v1/tasks/{task_id}", {
            params: { path: { task_id: tasks.keys!.id } },
            body: { status: "completed" },
          }),
        ),
      );
      assert.equal(bad.status, 409);
    });

    it("lists with filters, sorting and paging", async () => {
      const list = async (query: TaskQuery) => unwrap(await user.client.GET("/api/v1/tasks", { params: { query } }));

      const pending = await list({ status: ["pending"], tag: "billing", sort: "-priority" });
      assert.deepEqual(
        pending.items.map((t) => t.title),
        ["Chase late payers", "Reconcile invoices"],
      );
      assert.equal(pending.total, 2);
      assert.equal(pending.page, 1);
      assert.equal(pending.page_size, 100);
      assert.equal(pending.total_pages, 1);

      const open = await list({ status: ["pending", "in_progress"], tag: "billing", sort: "priority" });
      assert.deepEqual(
        open.items.map((t) => t.title),
        ["Archive Q3", "Reconcile invoices", "Chase late payers"],
      );
      assert.equal(open.total, 3);

      const paged = await list({ tag: "billing", sort: "priority", skip: 1, limit: 1 });
      assert.deepEqual(paged.items.map((t) => t.title), ["Reconcile invoices"]);
      assert.equal(paged.total, 3);
      assert.equal(paged.page, 2);
      assert.equal(paged.total_pages, 3);

      const search = await list({ q: "INVOICE" });
      assert.deepEqual(search.items.map((t) => t.id), [tasks.invoices!.id]);

      const none = await list({ tag: "no-such-tag" });
      assert.deepEqual(none, { items: [], next_cursor: null, total: 0, page: 1, page_size: 100, total_pages: 0, total_is_estimate: false });

      // The user sees only their own tasks; the administrator sees everyone's.
      const all = unwrap(await user.client.GET("/api/v1/tasks"));
      assert.equal(all.total, 5);
      const adminView = unwrap(await admin.client.GET("/api/v1/tasks", { params: { query: { tag: "billing" } } }));
      assert.equal(adminView.total, 4);
      const hidden = await problemOf(async () =>
        unwrap(await user.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: tasks.admins!.id } } })),
      );
      assert.equal(hidden.status, 404);
    });

    it("reports invalid input as a typed 422 problem listing each field", async () => {
      const p = await problemOf(async () =>
        unwrap(await user.client.POST("/api/v1/tasks", { body: { title: "", tags: ["ok", "x".repeat(51)] } })),
      );
      assert.equal(p.status, 422);
      assert.equal(p.type, "/problems/validation");
      assert.ok(p.requestId);
      assert.ok(p.errors.length >= 1, "errors lists the invalid fields");
      for (const e of p.errors) {
        assert.equal(e.location, "body");
        assert.ok(e.field && e.message);
      }
      assert.ok(
        p.errors.some((e) => e.field === "title" || e.field.startsWith("tags")),
        JSON.stringify(p.errors),
      );

      // The types know the contract: a misspelled field does not compile (tsc checks that
      // this error exists), and the server rejects it too.
      // @ts-expect-error — "titel" is not a field of TaskCreate
      const typo = await user.client.POST("/api/v1/tasks", { body: { titel: "Misspelled" } });
      assert.equal(typo.response.status, 422);
      // Also when every required field is there (openapi-fetch's own types let this through).
      // @ts-expect-error — "priorty" is not a field of TaskCreate
      const extra = await user.client.POST("/api/v1/tasks", { body: { title: "Typo", priorty: "high" } });
      assert.equal(extra.response.status, 422);
    });

    it("deletes a task", async () => {
      const del = await user.client.DELETE("/api/v1/tasks/{task_id}", { params: { path: { task_id: tasks.once!.id } } });
      assert.equal(del.response.status, 204);
      const gone = await user.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: tasks.once!.id } } });
      assert.equal(gone.response.status, 404);
    });
  });

  it("refreshes an expired access token transparently, once", async () => {
    const refreshToken = user.tokens?.refresh_token;
    assert.ok(refreshToken);
    // A session restored with a dead access token but a live refresh token.
    const restored = createApiSession({
      baseUrl: server.baseUrl,
      tokens: { access_token: "expired.or.forged", refresh_token: refreshToken },
    });
    const me = unwrap(await restored.client.GET("/api/v1/users/me"));
    assert.equal(me.email, userEmail);
    assert.ok(restored.tokens);
    assert.notEqual(restored.tokens.refresh_token, refreshToken, "the refresh token was rotated");

    // Logging out revokes the refresh token: a later 401 cannot be refreshed away.
    const rotated = restored.tokens.refresh_token;
    await restored.logout();
    assert.equal(restored.tokens, undefined);
    const dead = createApiSession({
      baseUrl: server.baseUrl,
      tokens: { access_token: "expired.or.forged", refresh_token: rotated },
    });
    const p = await problemOf(async () => unwrap(await dead.client.GET("/api/v1/users/me")));
    assert.equal(p.status, 401);
    assert.equal(p.type, "/problems/unauthorized");
    assert.equal(dead.tokens, undefined, "a refused refresh token is forgotten");
  });

  it("uses an API key instead of a session", async () => {
    await user.login(userEmail, userPassword); // the test above ended the earlier session
    const created = await user.client.POST("/api/v1/api-keys", {
      body: { name: "ts client", scopes: ["tasks:read", "users:read"] },
    });
    assert.equal(created.response.status, 201);
    const key = unwrap(created);
    assert.match(key.key, /^eak_[A-Za-z0-9_-]{43}$/);
    assert.equal(key.prefix, key.key.slice(0, 12));

    const machine = createApiClient({ baseUrl: server.baseUrl, apiKey: key.key });
    const me = unwrap(await machine.GET("/api/v1/users/me"));
    assert.equal(me.email, userEmail);
    unwrap(await machine.GET("/api/v1/tasks"));

    const noScope = await problemOf(async () => unwrap(await machine.POST("/api/v1/tasks", { body: { title: "nope" } })));
    assert.equal(noScope.status, 403);
    assert.equal(noScope.type, "/problems/insufficient-scope");

    const management = await problemOf(async () => unwrap(await machine.GET("/api/v1/api-keys")));
    assert.equal(management.status, 403);

    const revoked = await user.client.DELETE("/api/v1/api-keys/{key_id}", { params: { path: { key_id: key.id } } });
    assert.equal(revoked.response.status, 204);
    const gone = await problemOf(async () => unwrap(await machine.GET("/api/v1/users/me")));
    assert.equal(gone.status, 401);
  });
});
