// End to end over the Model Context Protocol: the official TypeScript MCP client
// (Streamable HTTP) against the real server (`automation dev`) and the scripted model
// (`internal/llmtest/llmfake`), the way an LLM client such as an IDE agent uses /mcp.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { createApiSession, unwrap, type ApiSession } from "../src/index.ts";

const ADMIN_EMAIL = "admin@example.com";
const ADMIN_PASSWORD = "admin-password-for-mcp-tests";
const BANNER = /^ {2}API:\s+(http:\/\/\S+?)\/?$/m;
const START_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 30_000;
const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const LLM_API_KEY = "sk-test-key"; // what internal/llmtest accepts

/** Kills a child process and waits for it to exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

interface Model {
  baseUrl: string; // OPENAI_BASE_URL
  script(replies: unknown[]): Promise<void>;
  stop(): Promise<void>;
}

/** Builds a Go command of this repository into dir and returns its path. */
async function goBuild(pkg: string, dir: string): Promise<string> {
  const out = path.join(dir, path.basename(pkg));
  const child = spawn("go", ["build", "-o", out, pkg], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, `go build ${pkg}: ${stderr}`);
  return out;
}

/**
 * Runs the scripted OpenAI-compatible model (internal/llmtest/llmfake), built first so
 * that stopping it stops the model itself (`go run` would leave it running).
 */
async function startModel(): Promise<Model> {
  const dir = await mkdtemp(path.join(tmpdir(), "llmfake-"));
  const bin = await goBuild("./internal/llmtest/llmfake", dir);
  const child = spawn(bin, [], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-10_000);
  });
  const lines = createInterface({ input: child.stdout });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`llmfake printed nothing:\n${stderr}`)), START_TIMEOUT_MS);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`llmfake exited (${code}):\n${stderr}`));
    });
  });
  const scriptUrl = new URL("/_script", baseUrl);
  return {
    baseUrl,
    async script(replies) {
      const res = await fetch(scriptUrl, { method: "POST", body: JSON.stringify(replies) });
      assert.equal(res.status, 204, await res.text());
    },
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

interface Server {
  baseUrl: string;
  stop(): Promise<void>;
}

/** Runs `bin/automation dev` on a free port, with the scripted model as its LLM. */
async function startServer(model: Model): Promise<Server> {
  const bin = process.env.AUTOMATION_BIN ?? path.join(REPO, "bin/automation");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it first (go build -o bin/automation ./cmd/automation; make test does)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "mcp-test-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    FIRST_ADMIN_EMAIL: ADMIN_EMAIL,
    FIRST_ADMIN_PASSWORD: ADMIN_PASSWORD,
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_API_KEY: LLM_API_KEY,
  };
  delete env.DATABASE_URL;
  const child = spawn(bin, ["dev", "-data", dir], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const baseUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner after ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
        const m = BANNER.exec(output);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? signal}) before serving:\n${output}`));
      });
    });
    return { baseUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Connects the official MCP client to /mcp, sending the given headers on every request. */
async function connect(baseUrl: string, headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: "mcp-e2e", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL("/mcp", baseUrl), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

/** The text of a result's single content item. */
function textOf(res: CallToolResult): string {
  assert.equal(res.content.length, 1);
  const item = res.content[0];
  assert.ok(item && item.type === "text", "a text content item");
  return item.text;
}

/** A successful result's structured content, which must equal its text. */
function ok<T>(res: CallToolResult): T {
  const text = textOf(res);
  assert.notEqual(res.isError, true, text);
  assert.deepEqual(res.structuredContent, JSON.parse(text));
  return res.structuredContent as T;
}

interface Problem {
  type: string;
  status: number;
  request_id: string;
  errors?: { location: string; field: string; message: string }[];
}

/** An error result's problem. */
function problem(res: CallToolResult, status: number): Problem {
  const text = textOf(res);
  assert.equal(res.isError, true, text);
  const p = JSON.parse(text) as Problem;
  assert.equal(p.status, status, text);
  assert.ok(p.request_id);
  return p;
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

interface Task {
  id: number;
  title: string;
  status: string;
  priority: string;
  version: number;
}

interface Run {
  id: number;
  status: string;
  output: string | null;
  task_id: number | null;
  steps: { name: string }[];
  required_action?: { tool_calls: { id: string; name: string }[] } | null;
}

describe("MCP tools through the official TypeScript client", { timeout: 300_000 }, () => {
  let model: Model;
  let server: Server;
  let admin: ApiSession;
  let mcp: Client;
  let readOnly: Client;
  let tools: Tool[];
  let agentId: number;
  let task: Task;

  before(async () => {
    model = await startModel();
    server = await startServer(model);
    admin = createApiSession({ baseUrl: server.baseUrl });
    const pair = await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    mcp = await connect(server.baseUrl, { Authorization: `Bearer ${pair.access_token}` });
    const key = unwrap(await admin.client.POST("/api/v1/api-keys", { body: { name: "mcp read", scopes: ["tasks:read"] } }));
    readOnly = await connect(server.baseUrl, { "X-API-Key": key.key });
    const agent = unwrap(
      await admin.client.POST("/api/v1/agents", {
        body: { name: "Closer", instructions: "Close the task when asked.", tools: ["get_task", "update_task_status"] },
      }),
    );
    agentId = agent.id;
  });
  after(async () => {
    await mcp?.close();
    await readOnly?.close();
    await server?.stop();
    await model?.stop();
  });

  it("lists the generated tools with their schemas", async () => {
    tools = (await mcp.listTools()).tools;
    const names = tools.map((t) => t.name);
    for (const name of ["list_tasks", "get_task", "create_task", "update_task", "list_agents", "create_agent_run", "get_agent_run", "cancel_agent_run"]) {
      assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    }
    for (const name of ["create_token", "create_api_key", "list_api_keys", "get_docs"]) {
      assert.ok(!names.includes(name), `${name} must not be a tool`);
    }
    const create = tools.find((t) => t.name === "create_task");
    assert.ok(create);
    assert.equal(create.inputSchema.type, "object");
    assert.deepEqual(create.inputSchema.required, ["title"]);
    assert.ok(create.outputSchema, "create_task has an outputSchema");
    assert.match(create.description ?? "", /^Create a task/);
  });

  it("creates and reads a task", async () => {
    task = ok<Task>(await call(mcp, "create_task", { title: "Reconcile invoices", priority: "high", idempotency_key: "mcp-e2e-1" }));
    assert.equal(task.title, "Reconcile invoices");
    assert.equal(task.status, "pending");
    // The Idempotency-Key is the operation's: a retry replays the same task.
    const again = ok<Task>(await call(mcp, "create_task", { title: "Reconcile invoices", priority: "high", idempotency_key: "mcp-e2e-1" }));
    assert.equal(again.id, task.id);

    const got = ok<Task>(await call(mcp, "get_task", { task_id: task.id }));
    assert.deepEqual(got, task);
    // The HTTP API sees the very same task.
    const viaHttp = unwrap(await admin.client.GET("/api/v1/tasks/{task_id}", { params: { path: { task_id: task.id } } }));
    assert.equal(viaHttp.title, "Reconcile invoices");
  });

  it("returns the problem's field errors for bad arguments", async () => {
    const p = problem(await call(mcp, "create_task", { title: "", priority: "someday" }), 422);
    assert.equal(p.type, "/problems/validation");
    assert.ok(p.errors?.some((e) => e.location === "body" && e.field === "title"), JSON.stringify(p));
    const missing = problem(await call(mcp, "get_task", { task_id: 999_999 }), 404);
    assert.equal(missing.type, "/problems/not-found");
  });

  it("runs an agent on the task with the scripted model", async () => {
    await model.script([
      {
        tool_calls: [{ id: "call_1", name: "update_task_status", arguments: JSON.stringify({ task_id: task.id, status: "in_progress" }) }],
      },
      { content: ["Started ", "the task."] },
    ]);
    const queued = ok<Run>(await call(mcp, "create_agent_run", { agent_id: agentId, task_id: task.id, input: "Start the task." }));
    assert.equal(queued.status, "queued");
    assert.equal(queued.task_id, task.id);
    let run = queued;
    const deadline = Date.now() + 60_000;
    while (!["completed", "failed", "cancelled", "incomplete"].includes(run.status)) {
      assert.ok(Date.now() < deadline, `run still ${run.status}`);
      await new Promise((r) => setTimeout(r, 100));
      run = ok<Run>(await call(mcp, "get_agent_run", { run_id: queued.id }));
    }
    assert.equal(run.status, "completed", JSON.stringify(run));
    assert.equal(run.output, "Started the task.");
    assert.deepEqual(run.steps.map((s) => s.name), ["update_task_status"]);
    const after = ok<Task>(await call(mcp, "get_task", { task_id: task.id }));
    assert.equal(after.status, "in_progress");
    // A finished run cannot be cancelled: the operation's 409.
    problem(await call(mcp, "cancel_agent_run", { run_id: run.id }), 409);
  });

  it("approves a waiting run's tool call through submit_agent_run_approvals", async () => {
    const approve = tools.find((tool) => tool.name === "submit_agent_run_approvals");
    assert.ok(approve, "submit_agent_run_approvals is a tool");
    assert.ok(approve.inputSchema.required?.includes("run_id"));
    assert.ok(approve.inputSchema.required?.includes("decisions"));
    const guarded = unwrap(
      await admin.client.POST("/api/v1/agents", {
        body: {
          name: "Guarded closer",
          instructions: "Close the task when asked.",
          tools: ["get_task", "update_task_status"],
          approval_required_tools: ["update_task_status"],
        },
      }),
    );
    const target = ok<Task>(await call(mcp, "create_task", { title: "Close after approval" }));
    await model.script([
      { tool_calls: [{ id: "call_ok", name: "update_task_status", arguments: JSON.stringify({ task_id: target.id, status: "in_progress" }) }] },
      { content: ["Closed it."] },
    ]);
    const queued = ok<Run>(await call(mcp, "create_agent_run", { agent_id: guarded.id, task_id: target.id, input: "Close it." }));
    const waitFor = async (done: (r: Run) => boolean): Promise<Run> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = ok<Run>(await call(mcp, "get_agent_run", { run_id: queued.id }));
        if (done(r)) return r;
        assert.ok(Date.now() < deadline, `run still ${r.status}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    const waiting = await waitFor((r) => r.status === "requires_action");
    assert.equal(waiting.required_action?.tool_calls[0]?.id, "call_ok");
    assert.equal(ok<Task>(await call(mcp, "get_task", { task_id: target.id })).status, "pending", "nothing runs before the approval");

    // A tasks:read key may not decide; one decision short is the operation's 422.
    assert.equal(problem(await call(readOnly, "submit_agent_run_approvals", { run_id: queued.id, decisions: [{ tool_call_id: "call_ok", decision: "approve" }] }), 403).type, "/problems/insufficient-scope");
    problem(await call(mcp, "submit_agent_run_approvals", { run_id: queued.id, decisions: [{ tool_call_id: "call_other", decision: "approve" }] }), 422);

    const accepted = ok<Run>(await call(mcp, "submit_agent_run_approvals", { run_id: queued.id, decisions: [{ tool_call_id: "call_ok", decision: "approve" }] }));
    assert.notEqual(accepted.status, "requires_action");
    // Decided already: the operation's 409.
    problem(await call(mcp, "submit_agent_run_approvals", { run_id: queued.id, decisions: [{ tool_call_id: "call_ok", decision: "approve" }] }), 409);
    const done = await waitFor((r) => ["completed", "failed", "cancelled", "incomplete", "expired"].includes(r.status));
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.equal(done.output, "Closed it.");
    assert.equal(ok<Task>(await call(mcp, "get_task", { task_id: target.id })).status, "in_progress", "the approved call ran");
  });

  it("gives a tasks:read key errors from write tools", async () => {
    const got = ok<Task>(await call(readOnly, "get_task", { task_id: task.id }));
    assert.equal(got.id, task.id);
    for (const [name, args] of [
      ["create_task", { title: "Nope" }],
      ["update_task", { task_id: task.id, title: "Nope" }],
      ["create_agent_run", { agent_id: agentId, input: "Nope" }],
    ] as const) {
      const p = problem(await call(readOnly, name, args), 403);
      assert.equal(p.type, "/problems/insufficient-scope", name);
    }
    const unchanged = ok<Task>(await call(mcp, "get_task", { task_id: task.id }));
    assert.equal(unchanged.title, "Reconcile invoices");
  });

  it("refuses a client without credentials", async () => {
    await assert.rejects(connect(server.baseUrl, {}), /401|nauthorized/);
  });
});
