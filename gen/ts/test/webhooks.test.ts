// End to end: the real server (`automation dev`) posts webhooks to a receiver in this
// process, which verifies them with an independent Standard Webhooks implementation (the
// npm `standardwebhooks` package) and handles them through the generated event types.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Webhook as Verifier, WebhookVerificationError } from "standardwebhooks";
import { createApiSession, unwrap, type ApiSession, type WebhookEvent, type WebhookEventOf } from "../src/index.ts";

const ADMIN_EMAIL = "admin@example.com";
const ADMIN_PASSWORD = "admin-password-for-ts-tests";
const BANNER = /^ {2}API:\s+(http:\/\/\S+?)\/?$/m;

/** Runs `bin/automation dev` on a free port with its own data folder, delivering to local receivers. */
async function startServer(): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const bin = process.env.AUTOMATION_BIN ?? fileURLToPath(new URL("../../../bin/automation", import.meta.url));
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it first (go build -o bin/automation ./cmd/automation)`);
  const dir = await mkdtemp(path.join(tmpdir(), "api-client-webhooks-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    FIRST_ADMIN_EMAIL: ADMIN_EMAIL,
    FIRST_ADMIN_PASSWORD: ADMIN_PASSWORD,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
  };
  delete env.DATABASE_URL;
  const child = spawn(bin, ["dev", "-data", dir], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  let output = "";
  try {
    const baseUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner after 120 s:\n${output}`)), 120_000);
      child.stdout.on("data", (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
        const m = BANNER.exec(output);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.stderr.on("data", (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
      });
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

interface Received {
  headers: Record<string, string>;
  body: string;
}

/** A receiver that queues what it gets and answers 204. */
function startReceiver(): Promise<{ url: string; next(): Promise<Received>; close(): Promise<void> }> {
  const queue: Received[] = [];
  const waiters: ((r: Received) => void)[] = [];
  const flat = (h: IncomingHttpHeaders): Record<string, string> =>
    Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
  const server: HttpServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { headers: flat(req.headers), body: Buffer.concat(chunks).toString("utf8") };
      const w = waiters.shift();
      if (w) w(r);
      else queue.push(r);
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/hooks`,
        next: () => {
          const r = queue.shift();
          if (r) return Promise.resolve(r);
          return new Promise<Received>((res, rej) => {
            const timer = setTimeout(() => rej(new Error("no webhook within 30 s")), 30_000);
            waiters.push((x) => {
              clearTimeout(timer);
              res(x);
            });
          });
        },
        close: () => new Promise<void>((res) => server.close(() => res())),
      });
    });
  });
}

/** What a typed receiver's handler looks like: narrowing on `type` types `data`. */
function describeEvent(ev: WebhookEvent): string {
  switch (ev.type) {
    case "task.created":
    case "task.updated":
    case "task.deleted":
      return `${ev.type}: task ${ev.data.id} "${ev.data.title}" is ${ev.data.status}`;
    case "user.created":
    case "user.deleted":
      return `${ev.type}: user ${ev.data.email}`;
    case "webhook.test":
      return `${ev.type}: ${ev.data.message}`;
    default:
      return `${ev.type}: run ${ev.data.id} is ${ev.data.status}`;
  }
}

describe("webhooks verified by the standardwebhooks package", { timeout: 300_000 }, () => {
  let server: { baseUrl: string; stop(): Promise<void> };
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let admin: ApiSession;

  before(async () => {
    [server, receiver] = await Promise.all([startServer(), startReceiver()]);
    admin = createApiSession({ baseUrl: server.baseUrl });
    await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD);
  });
  after(async () => {
    await receiver?.close();
    await server?.stop();
  });

  it("verifies a task.created delivery and types its data", async () => {
    const hook = unwrap(await admin.client.POST("/api/v1/webhooks", { body: { url: receiver.url, events: ["task.created", "webhook.test"] } }));
    assert.match(hook.secret, /^whsec_/);
    const task = unwrap(await admin.client.POST("/api/v1/tasks", { body: { title: "Typed webhook" } }));

    const got = await receiver.next();
    const payload = new Verifier(hook.secret).verify(got.body, got.headers) as WebhookEvent;
    assert.equal(payload.type, "task.created");
    const created = payload as WebhookEventOf<"task.created">;
    assert.equal(created.data.id, task.id);
    assert.equal(created.data.title, "Typed webhook");
    assert.equal(describeEvent(payload), `task.created: task ${task.id} "Typed webhook" is pending`);
    assert.match(got.headers["webhook-id"] ?? "", /^msg_[0-9a-f]{32}$/);

    assert.throws(() => new Verifier(hook.secret).verify(got.body.replace("Typed", "Forged"), got.headers), WebhookVerificationError);
    const other = unwrap(await admin.client.POST("/api/v1/webhooks", { body: { url: receiver.url, events: ["user.deleted"] } }));
    assert.throws(() => new Verifier(other.secret).verify(got.body, got.headers), WebhookVerificationError);

    // After a rotation both secrets verify the same delivery (two signatures).
    const rotated = unwrap(await admin.client.POST("/api/v1/webhooks/{webhook_id}/rotate-secret", { params: { path: { webhook_id: hook.id } } }));
    unwrap(await admin.client.POST("/api/v1/webhooks/{webhook_id}/test", { params: { path: { webhook_id: hook.id } } }));
    const test = await receiver.next();
    assert.equal(test.headers["webhook-signature"]?.split(" ").length, 2);
    for (const secret of [hook.secret, rotated.secret]) {
      const ev = new Verifier(secret).verify(test.body, test.headers) as WebhookEvent;
      assert.equal(describeEvent(ev), "webhook.test: This is a test event.");
    }
  });
});
