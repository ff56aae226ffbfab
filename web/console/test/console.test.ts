// The console end to end: Chromium (playwright-core) against the real server, whose
// model is the scripted one. Every screen leaves a screenshot in artifacts/console/.
import assert from "node:assert/strict";
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
import { ADMIN_EMAIL, ADMIN_PASSWORD, ARTIFACTS, launchBrowser, startModel, startServer, type Model, type Server } from "./harness.ts";

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
    await form.getByLabel("get_task").check();
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

  it("fits a phone's width", async () => {
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 375, height: 740 });
    await phone.goto(url("/tasks"));
    await adoptSession(phone);
    await phone.getByRole("heading", { level: 1, name: "Tasks" }).waitFor();
    await shot("tasks-phone", phone);
    const overflow = await phone.evaluate(() => {
      const wide = [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.parentElement?.closest(".table-wrap"))
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
      return { by: document.documentElement.scrollWidth - window.innerWidth, wide: wide.slice(0, 5) };
    });
    assert.ok(overflow.by <= 0, `the page scrolls sideways by ${overflow.by} px: ${overflow.wide.join(", ")}`);
    const menu = phone.getByRole("button", { name: "Menu" });
    await menu.click();
    assert.equal(await menu.getAttribute("aria-expanded"), "true");
    await phone.getByRole("link", { name: "Runs" }).click();
    await phone.getByRole("heading", { level: 1, name: "Agent runs" }).waitFor();
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
