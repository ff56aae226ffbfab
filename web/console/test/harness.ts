// The real things the browser test drives: the server (`automation dev` with its private
// PostgreSQL), the scripted model as a process (llmfake), and Debian's Chromium through
// playwright-core (never a downloaded browser).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const ARTIFACTS = path.join(REPO, "artifacts", "console");
export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "admin-password-for-console-tests";
export const LLM_KEY = "sk-test-key";
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

export interface Proc {
  stop(): Promise<void>;
}

/** Starts a process and resolves with the first match of `ready` in its output. */
async function startProcess(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; ready: RegExp; cleanup?: () => Promise<void> },
): Promise<{ match: RegExpExecArray; proc: Proc; output: () => string }> {
  const child: ChildProcessWithoutNullStreams = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: "pipe" });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await opts.cleanup?.();
  };
  try {
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${cmd}: not ready after ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
        const m = opts.ready.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${cmd} exited (${code ?? signal}) before it was ready:\n${output}`));
      });
    });
    return { match, proc: { stop }, output: () => output };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The scripted OpenAI-compatible model (internal/llmtest), built and run as a process. */
export interface Model extends Proc {
  /** OPENAI_BASE_URL for the server. */
  baseUrl: string;
  /** Appends replies (internal/llmtest Reply, JSON tags) to the model's script. */
  script(replies: unknown[]): Promise<void>;
}

export async function startModel(): Promise<Model> {
  const dir = await mkdtemp(path.join(tmpdir(), "console-llmfake-"));
  const bin = path.join(dir, "llmfake");
  const built = spawnSync("go", ["build", "-o", bin, "./internal/llmtest/llmfake"], { cwd: REPO, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`go build llmfake: ${built.stderr}`);
  const { match, proc } = await startProcess(bin, [], {
    cwd: dir,
    env: process.env,
    ready: /^(http:\/\/\S+\/v1\/)$/m,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  });
  const baseUrl = match[1] ?? "";
  return {
    baseUrl,
    stop: proc.stop,
    async script(replies) {
      const res = await fetch(new URL("/_script", baseUrl), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(replies),
      });
      if (!res.ok) throw new Error(`scripting the model: ${res.status} ${await res.text()}`);
    },
  };
}

/** `bin/automation dev` on a free port, its data in a temporary folder, the model configured. */
export interface Server extends Proc {
  baseUrl: string;
}

export async function startServer(model: Model): Promise<Server> {
  const bin = process.env.AUTOMATION_BIN ?? path.join(REPO, "bin", "automation");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it first (go build -o bin/automation ./cmd/automation; make test does)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "console-test-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    FIRST_ADMIN_EMAIL: ADMIN_EMAIL,
    FIRST_ADMIN_PASSWORD: ADMIN_PASSWORD,
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_API_KEY: LLM_KEY,
    LLM_MODEL: "scripted",
    LLM_CACHE_TTL: "0s",
    // The test's webhook receiver listens on 127.0.0.1.
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
  };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  const { match, proc } = await startProcess(bin, ["dev", "-data", dir], {
    cwd: dir,
    env,
    ready: /^ {2}Console:\s+(http:\/\/\S+?)\/console\/$/m,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  });
  return { baseUrl: match[1] ?? "", stop: proc.stop };
}

/** Debian's Chromium, headless. */
export async function launchBrowser(): Promise<Browser> {
  await mkdir(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-quic",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** One request a webhook receiver got. */
export interface Received {
  headers: Record<string, string>;
  body: string;
}

/** A webhook endpoint on 127.0.0.1: records what it gets; answers 200, or 500 while `failing`. */
export interface Receiver extends Proc {
  url: string;
  received: Received[];
  failing: boolean;
}

export async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: "", received: [], failing: false, stop: async () => undefined };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      receiver.received.push({ headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(receiver.failing ? 500 : 200, { "Content-Type": "text/plain" }).end(receiver.failing ? "down" : "ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("the receiver has no port");
  receiver.url = `http://127.0.0.1:${addr.port}/hook`;
  receiver.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
