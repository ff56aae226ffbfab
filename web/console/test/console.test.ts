// The console end to end: Chromium (playwright-core) against the real server, whose
// model is the scripted one. Every screen leaves a screenshot in artifacts/console/.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import path from "node:path";
import { after, before, describe, it as test, type TestContext } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import {
  createApiClient,
  createApiSession,
  etagOf,
  unwrap,
  type ApiSession,
} from "@enterprise-automation/api-client";
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  ARTIFACTS,
  launchBrowser,
  startModel,
  startReceiver,
  startServer,
  type Model,
  type Server,
} from "./harness.ts";

const TOKENS_KEY = "automation.console.tokens";

// The steps build on each other (one browser, one server): after a failure the rest are
// skipped rather than failing on a screen they never reached.
let failed = false;
function it(name: string, fn: () => Promise<void>): void {
  test(name, async (t: TestContext) => {
    if (failed) {
      t.skip("an earlier step failed");
      return;
    }
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}
const SECOND = 1_000_000_000; // llmtest durations are nanoseconds in JSON

describe("the web console in Chromium", { timeout: 600_000 }, () => {
  let model: Model;
  let server: Server;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let other: ApiSession; // a second session, to change things behind the browser's back
  let taskId = 0;

  /** Every screen shot is also checked: each control has a label, each button a name. */
  const shot = async (name: string, p: Page = page): Promise<void> => {
    const unlabelled = await p.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>("input, select, textarea, button")]
        .filter((e) => {
          const labelled = (e as HTMLInputElement).labels?.length || e.getAttribute("aria-label") || e.getAttribute("aria-labelledby");
          return e.tagName === "BUTTON" ? !(e.textContent?.trim() || e.getAttribute("aria-label")) : !labelled;
        })
        .map((e) => e.outerHTML.slice(0, 120)),
    );
    assert.deepEqual(unlabelled, [], `${name}: controls without a label`);
    await p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  const url = (p: string): string => `${server.baseUrl}/console${p}`;
  /** Gives a new tab the main tab's tokens (sessionStorage is per tab) and reloads it. */
  const adoptSession = async (p: Page): Promise<void> => {
    const tokens = await page.evaluate((k) => sessionStorage.getItem(k), TOKENS_KEY);
    assert.ok(tokens, "the main tab is logged in");
    await p.evaluate(([k, v]) => sessionStorage.setItem(k, v), [TOKENS_KEY, tokens] as const);
    await p.reload();
  };

  before(async () => {
    model = await startModel();
    server = await startServer(model);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.baseUrl });
    context.setDefaultTimeout(15_000);
    context.on("weberror", (e) => console.error("page error:", e.error().message));
    page = await context.newPage();
    other = createApiSession({ baseUrl: server.baseUrl });
    await other.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await model?.stop();
  });

  it("shows the login screen quickly and refuses a wrong password", async () => {
    // The browser's own clock, from the navigation's start to the moment React puts the
    // login form in the page (so it is interactive): first cold, then on a reload.
    // Reported, not asserted.
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.getElementById("email")) {
          (window as unknown as { interactiveAt: number }).interactiveAt = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const interactiveAt = async (): Promise<number> => {
      await page.locator("#email").waitFor();
      return page.evaluate(() => (window as unknown as { interactiveAt: number }).interactiveAt);
    };
    await page.goto(url("/"));
    const cold = await interactiveAt();
    await page.reload();
    const warm = await interactiveAt();
    console.log(`first screen interactive: ${cold.toFixed(0)} ms cold, ${warm.toFixed(0)} ms on a reload`);
    const email = page.getByLabel("Email");
    await email.focus();
    await shot("login");

    await email.fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: /Unauthorized|credentials|password/i }).waitFor();
  });

  it("logs in with the keyboard and lands on the tasks", async () => {
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByLabel("Password").press("Enter");
    await page.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    assert.match(page.url(), /\/console\/tasks$/);
    // The screen's title has the focus, so a screen reader announces the new screen.
    assert.equal(await page.evaluate(() => document.activeElement?.id), "screen-title");
  });

  it("shows a validation problem next to the field it names", async () => {
    await page.getByRole("button", { name: "New task" }).click();
    const form = page.getByRole("form", { name: "New task" });
    await form.getByLabel("Title").fill("Needs a real assignee");
    await form.getByLabel("Assignee (user id)").fill("999999");
    await form.getByRole("button", { name: "Create task" }).click();
    const assignee = form.getByLabel("Assignee (user id)");
    await page.waitForFunction(() => document.querySelector('[name="assignee_id"]')?.getAttribute("aria-invalid") === "true");
    const describedBy = (await assignee.getAttribute("aria-describedby")) ?? "";
    const message = await page.locator(`[id="${describedBy.split(" ").pop()}"]`).textContent();
    assert.ok(message && message.length > 0, "the assignee's message is tied to its field");
    await shot("tasks-validation");
    await assignee.fill("");
  });

  it("creates a task", async () => {
    const form = page.getByRole("form", { name: "New task" });
    await form.getByLabel("Title").fill("Write the quarterly report");
    await form.getByLabel("Priority").selectOption("medium");
    await form.getByLabel("Tags").fill("finance, q3");
    await form.getByRole("button", { name: "Create task" }).click();
    const row = page.getByRole("row").filter({ hasText: "Write the quarterly report" });
    await row.waitFor();
    const text = (await row.textContent()) ?? "";
    taskId = Number(/#(\d+)/.exec(text)?.[1]);
    assert.ok(taskId > 0, `task id in ${text}`);
    await shot("tasks");
  });

  it("filters and sorts the tasks", async () => {
    for (let i = 0; i < 3; i++) {
      unwrap(await other.client.POST("/api/v1/tasks", { body: { title: `Filler ${i}`, priority: "low", tags: ["filler"] } }));
    }
    await page.getByLabel("Tag", { exact: true }).fill("finance");
    await page.getByText("1 task", { exact: true }).waitFor();
    assert.equal(await page.getByRole("row").filter({ hasText: "Filler" }).count(), 0);
    await page.getByLabel("Tag", { exact: true }).fill("");
    await page.getByLabel("Sort").selectOption("priority");
    await page.getByText("4 tasks", { exact: true }).waitFor();
    const firstRow = page.locator("tbody tr").first();
    await firstRow.filter({ hasText: "Filler" }).waitFor();
  });

  it("edits a task, and on a 412 shows what the other session changed and saves again", async () => {
    await page.getByRole("button", { name: "Edit Write the quarterly report" }).click();
    const form = page.getByRole("form", { name: `Edit task ${taskId}` });
    await form.getByLabel("Title").fill("Write the quarterly report (draft 2)");

    // Meanwhile, someone else raises the priority.
    const current = await other.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } });
    unwrap(current);
    unwrap(
      await other.client.PATCH("/api/v1/tasks/{task_id}", {
        params: { path: { task_id: taskId }, header: { "If-Match": etagOf(current) ?? "" } },
        body: { priority: "urgent" },
      }),
    );

    await form.getByRole("button", { name: "Save", exact: true }).click();
    const conflict = form.getByRole("alert").filter({ hasText: "Someone else changed this task" });
    await conflict.waitFor();
    const changes = (await conflict.textContent()) ?? "";
    assert.match(changes, /Priority\s*medium\s*→\s*urgent/);
    assert.doesNotMatch(changes, /Title/); // only their change is listed
    await shot("tasks-conflict");

    await conflict.getByRole("button", { name: "Save my changes again" }).click();
    await form.waitFor({ state: "detached" });
    const saved = unwrap(await other.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } }));
    assert.equal(saved.title, "Write the quarterly report (draft 2)");
    assert.equal(saved.priority, "urgent", "their change survives mine");
    await page.getByRole("row").filter({ hasText: "(draft 2)" }).filter({ hasText: "urgent" }).waitFor();
  });

  it("creates and edits an agent", async () => {
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByRole("heading", { level: 1, name: "Agents" }).waitFor();
    await page.getByRole("button", { name: "New agent" }).click();
    const form = page.getByRole("form", { name: "New agent" });
    await form.getByLabel("Name").fill("Reporter");
    await form.getByLabel("Description").fill("Summarises tasks");
    await form.getByLabel("Instructions").fill("Answer briefly.");
    await form.getByLabel("get_task", { exact: true }).check();
    await form.getByRole("button", { name: "Create agent" }).click();
    await page.getByRole("heading", { level: 2, name: "Reporter" }).waitFor();

    await page.getByRole("button", { name: "Edit Reporter" }).click();
    const edit = page.getByRole("form", { name: "Edit agent Reporter" });
    await edit.getByLabel("Description").fill("Summarises tasks, briefly");
    await edit.getByRole("button", { name: "Save agent" }).click();
    await page.getByText("Summarises tasks, briefly").waitFor();
    await shot("agents");
  });

  it("starts a run and shows its events as they arrive", async () => {
    // The model waits before it answers and streams slowly: the page must show the run in
    // progress, then each piece, then the end, without being reloaded.
    await model.script([{ delay: 1.5 * SECOND, chunk_delay: 0.3 * SECOND, content: ["The report ", "is ", "on track."] }]);
    await page.evaluate(() => ((window as unknown as { marker: string }).marker = "same page"));
    await page.getByRole("button", { name: "Run Reporter" }).click();
    const form = page.getByRole("form", { name: "Run Reporter" });
    await form.getByLabel("Input").fill("How is the report going?");
    await form.getByLabel("Task id (optional)").fill(String(taskId));
    await form.getByRole("button", { name: "Start run" }).click();
    await page.getByRole("heading", { level: 1, name: /^Run #\d+$/ }).waitFor();

    const status = page.getByTestId("run-status");
    await status.filter({ hasText: "in_progress" }).waitFor();
    const events = page.getByTestId("run-events");
    await events.getByText("run.output.delta").first().waitFor();
    assert.notEqual((await status.textContent())?.trim(), "completed", "a piece of output arrived before the end");
    await status.filter({ hasText: "completed" }).waitFor({ timeout: 30_000 });
    assert.equal((await page.getByTestId("run-output").textContent())?.trim(), "The report is on track.");
    await events.getByText("run.completed").waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: string }).marker), "same page");
    await shot("run");

    await page.getByRole("link", { name: "All runs" }).click();
    await page.getByRole("row").filter({ hasText: "How is the report going?" }).filter({ hasText: "completed" }).waitFor();
    await shot("runs");
  });

  it("waits for approval live, refuses bad arguments, and runs the approved call with edited arguments", async () => {
    // An agent whose status changes wait for a person.
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByRole("button", { name: "New agent" }).click();
    const form = page.getByRole("form", { name: "New agent" });
    await form.getByLabel("Name").fill("Closer");
    await form.getByLabel("Instructions").fill("Move the task along.");
    await form.getByLabel("update_task_status", { exact: true }).check();
    await form.getByLabel("Approve update_task_status calls").check();
    await form.getByRole("button", { name: "Create agent" }).click();
    await page.getByRole("heading", { level: 2, name: "Closer" }).waitFor();
    await page.getByText("approval: update_task_status").waitFor();

    // The model wants to cancel the task; a person moves it to in_progress instead.
    const before = unwrap(await other.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } }));
    assert.equal(before.status, "pending");
    await model.script([
      {
        delay: 1 * SECOND,
        tool_calls: [{ id: "call_close", name: "update_task_status", arguments: JSON.stringify({ task_id: taskId, status: "cancelled" }) }],
      },
      { content: ["Started the task instead."] },
    ]);
    await page.getByRole("button", { name: "Run Closer" }).click();
    const start = page.getByRole("form", { name: "Run Closer" });
    await start.getByLabel("Input").fill("Close the report task.");
    await start.getByLabel("Task id (optional)").fill(String(taskId));
    await start.getByRole("button", { name: "Start run" }).click();
    await page.getByRole("heading", { level: 1, name: /^Run #\d+$/ }).waitFor();
    const runId = Number(/\/runs\/(\d+)$/.exec(page.url())?.[1]);
    const status = page.getByTestId("run-status");
    await status.filter({ hasText: "in_progress" }).waitFor();
    await status.filter({ hasText: "requires_action" }).waitFor({ timeout: 30_000 });
    await page.getByTestId("run-events").getByText("run.requires_action").waitFor();
    const call = page.getByRole("group", { name: "Tool call update_task_status (call_close)" });
    const args = call.getByLabel("Arguments (JSON)");
    assert.deepEqual(JSON.parse(await args.inputValue()), { task_id: taskId, status: "cancelled" });

    // Not JSON: refused here, nothing is sent.
    let posted = 0;
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().endsWith(`/api/v1/agent-runs/${runId}/approvals`)) posted++;
    });
    await args.fill("{ task_id: ");
    await call.getByRole("button", { name: "Approve update_task_status" }).click();
    await call.getByRole("alert").filter({ hasText: "not valid JSON" }).waitFor();
    assert.equal(posted, 0);
    assert.equal(await args.getAttribute("aria-invalid"), "true");

    // JSON the tool refuses: the server's 422 appears next to the call; the run keeps waiting.
    await args.fill(JSON.stringify({ task_id: taskId, status: "archived" }));
    await call.getByRole("button", { name: "Approve update_task_status" }).click();
    await call.getByRole("alert").filter({ hasText: /arguments/ }).waitFor();
    assert.equal(posted, 1);
    assert.equal((await status.textContent())?.trim(), "requires_action");

    await args.fill(JSON.stringify({ task_id: taskId, status: "in_progress" }, null, 2));
    await call.getByLabel(/^Reason/).fill("Start it rather than cancel it.");
    await shot("run-approval");
    await call.getByRole("button", { name: "Approve update_task_status" }).click();
    await status.filter({ hasText: "completed" }).waitFor({ timeout: 30_000 });
    assert.equal(await page.getByRole("heading", { name: "Waiting for approval" }).count(), 0);
    assert.equal((await page.getByTestId("run-output").textContent())?.trim(), "Started the task instead.");
    await page.getByTestId("run-events").getByText(/update_task_status\(.*in_progress/).waitFor();
    const after = unwrap(await other.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } }));
    assert.equal(after.status, "in_progress", "the edited arguments ran, not the model's");
  });

  it("says so when someone else decided first (409) and shows the run as it is", async () => {
    await model.script([
      { tool_calls: [{ id: "call_again", name: "update_task_status", arguments: JSON.stringify({ task_id: taskId, status: "completed" }) }] },
      { content: ["Left it as it is."] },
    ]);
    await page.getByRole("link", { name: "Agents" }).click();
    await page.getByRole("button", { name: "Run Closer" }).click();
    const start = page.getByRole("form", { name: "Run Closer" });
    await start.getByLabel("Input").fill("Finish it.");
    await start.getByLabel("Task id (optional)").fill(String(taskId));
    await start.getByRole("button", { name: "Start run" }).click();
    await page.getByRole("heading", { level: 1, name: /^Run #\d+$/ }).waitFor();
    const runId = Number(/\/runs\/(\d+)$/.exec(page.url())?.[1]);
    const call = page.getByRole("group", { name: "Tool call update_task_status (call_again)" });
    // The server must get the run to requires_action (checked through the other session,
    // so that a stalled run fails here with its status). The live arrival of that state
    // is step 9's subject; this step's is the 409, so a page that missed it is reloaded.
    let seen = "";
    for (const deadline = Date.now() + 60_000; seen !== "requires_action"; ) {
      assert.ok(Date.now() < deadline, `run ${runId} is ${seen}, not requires_action, after 60 s`);
      await new Promise((r) => setTimeout(r, 100));
      seen = unwrap(await other.client.GET("/api/v1/agent-runs/{run_id}", { params: { path: { run_id: runId } } })).status;
    }
    try {
      await call.waitFor({ timeout: 10_000 });
    } catch {
      await page.reload();
      await call.waitFor({ timeout: 30_000 });
    }
    // The other session rejects just before the browser's approval reaches the server.
    const approvals = `**/api/v1/agent-runs/${runId}/approvals`;
    await page.route(approvals, async (route) => {
      unwrap(
        await other.client.POST("/api/v1/agent-runs/{run_id}/approvals", {
          params: { path: { run_id: runId } },
          body: { decisions: [{ tool_call_id: "call_again", decision: "reject", reason: "Not yet." }] },
        }),
      );
      await route.continue();
    });
    const answered = page.waitForResponse((r) => r.url().endsWith(`/approvals`) && r.request().method() === "POST");
    await call.getByRole("button", { name: "Approve update_task_status" }).click();
    assert.equal((await answered).status(), 409);
    await page.getByRole("alert").filter({ hasText: "Your decision was not taken" }).waitFor();
    await page.getByTestId("run-status").filter({ hasText: "completed" }).waitFor({ timeout: 30_000 });
    await page.unroute(approvals);
    const task = unwrap(await other.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } }));
    assert.equal(task.status, "in_progress", "the rejected call did not run");
  });

  it("creates an API key, shows it once with a copy button, and the key works", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("button", { name: "New key" }).click();
    const form = page.getByRole("form", { name: "New API key" });
    await form.getByLabel("Name").fill("report script");
    await form.getByLabel("tasks:read").check(); // already on: stays on
    await form.getByRole("button", { name: "Create key" }).click();
    const keyField = page.getByLabel("The new API key");
    await keyField.waitFor();
    const key = await keyField.inputValue();
    assert.match(key, /^eak_/);
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByText("Copied to the clipboard.").waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
    await shot("api-keys");

    const script = createApiClient({ baseUrl: server.baseUrl, apiKey: key });
    const tasks = unwrap(await script.GET("/api/v1/tasks", { params: { query: { tag: "finance" } } }));
    assert.deepEqual(
      tasks.items.map((t) => t.id),
      [taskId],
    );

    await page.getByRole("button", { name: "Done" }).click();
    assert.equal(await page.getByLabel("The new API key").count(), 0, "the key is gone once dismissed");
    const row = page.getByRole("row").filter({ hasText: "report script" });
    await row.waitFor();

    // Revoking asks first; then the key stops working.
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Revoke report script" }).click();
    await row.filter({ hasText: "revoked" }).waitFor();
    const refused = await script.GET("/api/v1/tasks");
    assert.equal(refused.response.status, 401);
  });

  it("pages through the audit log with its cursors", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { level: 1, name: "Audit log" }).waitFor();
    await page.getByRole("cell", { name: "createApiKey" }).waitFor();
    await shot("audit");
    // Enough createTask events for more than one page of 25.
    for (let i = 0; i < 26; i++) {
      unwrap(await other.client.POST("/api/v1/tasks", { body: { title: `Audit filler ${i}` } }));
    }
    await page.getByLabel("Action").fill("createTask");
    await page.getByText("Page 1").waitFor();
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 25);
    await page.getByRole("button", { name: "Older" }).click();
    await page.getByText("Page 2").waitFor();
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length < 25);
    const rest = await page.locator("tbody tr").count();
    assert.equal(rest, 30 - 25, "the quarterly report, 3 fillers and 26 more: 30 createTask events");
    assert.equal(await page.getByRole("button", { name: "Older" }).isDisabled(), true);
    await page.getByRole("button", { name: "Newer" }).click();
    await page.getByText("Page 1").waitFor();
    await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 25);
  });

  it("subscribes a webhook endpoint, shows its secret once, edits it with If-Match, and logs and redelivers a test event", async () => {
    const receiver = await startReceiver();
    try {
      await page.getByRole("link", { name: "Webhooks" }).click();
      await page.getByRole("heading", { level: 1, name: "Webhooks" }).waitFor();
      await page.getByRole("button", { name: "New endpoint" }).click();
      const form = page.getByRole("form", { name: "New endpoint" });
      await form.getByLabel("URL").fill(receiver.url);
      await form.getByLabel("Description").fill("Ticketing bridge");
      await form.getByLabel("* (every event)").check();
      assert.equal(await form.getByLabel("task.created").isDisabled(), true, "* stands alone");
      await form.getByRole("button", { name: "Create endpoint" }).click();
      const secretField = page.getByLabel("The signing secret");
      await secretField.waitFor();
      const secret = await secretField.inputValue();
      assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
      await page.getByRole("button", { name: "Copy" }).click();
      await page.getByText("Copied to the clipboard.").waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
      await shot("webhooks");
      await page.getByRole("button", { name: "Done" }).click();
      assert.equal(await page.getByLabel("The signing secret").count(), 0, "the secret is gone once dismissed");

      // Edit with If-Match: another session changes the endpoint first, the form shows
      // their version (412), and the change made again is saved.
      const hooks = unwrap(await other.client.GET("/api/v1/webhooks"));
      const hookId = hooks.items.find((w) => w.url === receiver.url)?.id ?? 0;
      assert.ok(hookId > 0);
      await page.getByRole("button", { name: `Edit ${receiver.url}` }).click();
      const edit = page.getByRole("form", { name: `Edit endpoint ${hookId}` });
      await edit.getByRole("button", { name: "Save endpoint" }).and(page.locator(":enabled")).waitFor();
      unwrap(
        await other.client.PATCH("/api/v1/webhooks/{webhook_id}", {
          params: { path: { webhook_id: hookId } },
          body: { description: "Ticketing bridge (theirs)" },
        }),
      );
      await edit.getByLabel("* (every event)").uncheck();
      await edit.getByLabel("task.created").check();
      await edit.getByLabel("task.updated").check();
      await edit.getByRole("button", { name: "Save endpoint" }).click();
      await edit.getByRole("alert").filter({ hasText: "Someone else changed this endpoint" }).waitFor();
      // The form is read again: it shows their description.
      await page.waitForFunction(
        (id) => (document.querySelector(`form[aria-label="Edit endpoint ${id}"] [name="description"]`) as HTMLInputElement | null)?.value === "Ticketing bridge (theirs)",
        hookId,
      );
      await edit.getByLabel("* (every event)").uncheck();
      await edit.getByLabel("task.created").check();
      await edit.getByLabel("task.updated").check();
      await edit.getByLabel("Active").uncheck();
      await edit.getByRole("button", { name: "Save endpoint" }).click();
      await edit.waitFor({ state: "detached" });
      let saved = unwrap(await other.client.GET("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: hookId } } }));
      assert.deepEqual([...saved.events].sort(), ["task.created", "task.updated"]);
      assert.equal(saved.is_active, false);
      assert.equal(saved.description, "Ticketing bridge (theirs)");
      await page.getByText("events: task.created, task.updated").waitFor();
      // Active again, for the test events.
      await page.getByRole("button", { name: `Edit ${receiver.url}` }).click();
      await edit.getByLabel("Active").check();
      await edit.getByRole("button", { name: "Save endpoint" }).click();
      await edit.waitFor({ state: "detached" });
      saved = unwrap(await other.client.GET("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: hookId } } }));
      assert.equal(saved.is_active, true);

      // The delivery log: a test event arrives, signed with the secret shown once.
      await page.getByRole("link", { name: "Delivery log" }).click();
      await page.getByRole("heading", { level: 1, name: `Webhook #${hookId}` }).waitFor();
      await page.getByRole("button", { name: "Send test event" }).click();
      const row = page.getByRole("row").filter({ hasText: "webhook.test" });
      await row.filter({ hasText: "succeeded" }).waitFor({ timeout: 30_000 });
      assert.equal(receiver.received.length, 1);
      const first = receiver.received[0];
      assert.ok(first);
      const msgId = first.headers["webhook-id"] ?? "";
      const expected = createHmac("sha256", Buffer.from(secret.slice("whsec_".length), "base64"))
        .update(`${msgId}.${first.headers["webhook-timestamp"]}.${first.body}`)
        .digest("base64");
      assert.ok((first.headers["webhook-signature"] ?? "").split(" ").includes(`v1,${expected}`), "signed with the shown secret");
      assert.match((await row.textContent()) ?? "", /200/);
      await shot("webhook-deliveries");

      // Redeliver: the same event (same webhook-id) arrives again.
      const deliveryId = Number(/#(\d+)/.exec((await row.textContent()) ?? "")?.[1]);
      await page.getByRole("button", { name: `Redeliver #${deliveryId}` }).click();
      await page.getByText(`Delivery #${deliveryId} queued again.`).waitFor();
      for (let i = 0; i < 150 && receiver.received.length < 2; i++) await new Promise((r) => setTimeout(r, 200));
      assert.equal(receiver.received.length, 2);
      assert.equal(receiver.received[1]?.headers["webhook-id"], msgId);
      await row.filter({ hasText: "succeeded" }).waitFor();

      // A delivery still being retried cannot be redelivered: said plainly.
      receiver.failing = true;
      await page.getByRole("button", { name: "Send test event" }).click();
      const retrying = page.getByRole("row").filter({ hasText: "retrying" });
      await retrying.waitFor({ timeout: 30_000 });
      assert.match((await retrying.textContent()) ?? "", /500/);
      const retryingId = Number(/#(\d+)/.exec((await retrying.textContent()) ?? "")?.[1]);
      await page.getByRole("button", { name: `Redeliver #${retryingId}` }).click();
      await page.getByRole("alert").filter({ hasText: "still pending or retrying" }).waitFor();

      // Rotation shows the new secret once.
      page.once("dialog", (d) => void d.accept());
      await page.getByRole("button", { name: "Rotate secret" }).click();
      const rotated = await page.getByLabel("The signing secret").inputValue();
      assert.match(rotated, /^whsec_/);
      assert.notEqual(rotated, secret);
      await page.getByRole("button", { name: "Done" }).click();

      // Delete asks first.
      await page.getByRole("link", { name: "All endpoints" }).click();
      page.once("dialog", (d) => void d.accept());
      await page.getByRole("button", { name: `Delete ${receiver.url}` }).click();
      await page.getByText("No endpoints yet.").waitFor();
      const gone = await other.client.GET("/api/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: hookId } } });
      assert.equal(gone.response.status, 404);
    } finally {
      await receiver.stop();
    }
  });

  it("fits a phone's width", async () => {
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 375, height: 740 });
    await phone.goto(url("/tasks"));
    await adoptSession(phone);
    await phone.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    await shot("tasks-phone", phone);
    const noSideways = async (): Promise<void> => {
      const overflow = await phone.evaluate(() => {
        const wide = [...document.querySelectorAll("body *")]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.parentElement?.closest(".table-wrap"))
          .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
        return { by: document.documentElement.scrollWidth - window.innerWidth, wide: wide.slice(0, 5) };
      });
      assert.ok(overflow.by <= 0, `the page scrolls sideways by ${overflow.by} px: ${overflow.wide.join(", ")}`);
    };
    await noSideways();
    const menu = phone.getByRole("button", { name: "Menu" });
    await menu.click();
    assert.equal(await menu.getAttribute("aria-expanded"), "true");
    await phone.getByRole("link", { name: "Runs" }).click();
    await phone.getByRole("heading", { level: 1, name: "Agent runs" }).waitFor();
    // The webhooks' form (URL, event checkboxes) fits too.
    await phone.goto(url("/webhooks"));
    await phone.getByRole("button", { name: "New endpoint" }).click();
    await phone.getByRole("form", { name: "New endpoint" }).waitFor();
    await noSideways();
    await shot("webhooks-phone", phone);
    await phone.close();
  });

  it("refreshes an expired access token once, then goes back to the login", async () => {
    const p = await context.newPage();
    await p.goto(url("/tasks"));
    await adoptSession(p);
    await p.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    // A dead access token: the first call gets 401, the client refreshes and retries.
    await p.evaluate((k) => {
      const t = JSON.parse(sessionStorage.getItem(k) ?? "{}");
      sessionStorage.setItem(k, JSON.stringify({ ...t, access_token: "expired" }));
    }, TOKENS_KEY);
    const refreshed = p.waitForResponse((r) => r.url().endsWith("/api/v1/auth/refresh") && r.status() === 200);
    await p.reload();
    await refreshed;
    await p.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    await p.getByRole("row").filter({ hasText: "Audit filler 25" }).waitFor(); // the newest task
    // Both tokens dead: the refresh is refused and the console shows the login again.
    await p.evaluate((k) => sessionStorage.setItem(k, JSON.stringify({ access_token: "expired", refresh_token: "revoked" })), TOKENS_KEY);
    await p.reload();
    await p.getByRole("heading", { level: 1, name: "Log in" }).waitFor();
    assert.equal(await p.evaluate((k) => sessionStorage.getItem(k), TOKENS_KEY), null);
    await p.close();
  });

  it("shows a banner with a retry when the server cannot be reached", async () => {
    await page.getByRole("link", { name: "Tasks" }).click();
    await page.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    await page.route("**/api/**", (route) => route.abort("connectionrefused"));
    await page.getByLabel("Search").fill("quarterly");
    const banner = page.getByRole("alert").filter({ hasText: "The server cannot be reached" });
    await banner.waitFor();
    await shot("server-down");
    await page.unroute("**/api/**");
    await banner.getByRole("button", { name: "Retry" }).click();
    await banner.waitFor({ state: "detached" });
    await page.getByRole("row").filter({ hasText: "(draft 2)" }).waitFor();
  });

  it("waits as long as a 429's Retry-After asks, then retries by itself", async () => {
    const sent: number[] = [];
    const isList = (u: URL): boolean => u.pathname === "/api/v1/tasks";
    await page.route(isList, async (route) => {
      sent.push(Date.now());
      if (sent.length === 1) {
        await route.fulfill({
          status: 429,
          headers: { "Content-Type": "application/problem+json", "Retry-After": "2" },
          body: JSON.stringify({ type: "/problems/rate-limited", title: "Too Many Requests", status: 429, request_id: "x" }),
        });
        return;
      }
      await route.continue();
    });
    await page.getByLabel("Search").fill("report");
    await page.getByRole("status").filter({ hasText: "Too many requests: retrying in" }).waitFor();
    await page.getByRole("row").filter({ hasText: "(draft 2)" }).waitFor();
    await page.getByRole("status").filter({ hasText: "Too many requests" }).waitFor({ state: "detached" });
    assert.ok(sent.length >= 2, "the request was sent again");
    const waited = (sent[1] ?? 0) - (sent[0] ?? 0);
    assert.ok(waited >= 1900, `retried after ${waited} ms, not the 2 s asked`);
    await page.unroute(isList);
  });
});
