// The real server for the end-to-end tests: `bin/automation dev` (private PostgreSQL) on a
// free port with its own data folder.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "admin-password-for-ts-tests";
const BANNER = /^ {2}API:\s+(http:\/\/\S+?)\/?$/m;
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

export interface Server {
  baseUrl: string;
  stop(): Promise<void>;
}

/** Runs `bin/automation dev` on a free port with its own data folder; resolves once it serves. */
export async function startServer(): Promise<Server> {
  const bin = process.env.AUTOMATION_BIN ?? fileURLToPath(new URL("../../../bin/automation", import.meta.url));
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it first (go build -o bin/automation ./cmd/automation; make test does)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), "api-client-test-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    FIRST_ADMIN_EMAIL: ADMIN_EMAIL,
    FIRST_ADMIN_PASSWORD: ADMIN_PASSWORD,
  };
  delete env.DATABASE_URL; // always the private cluster under dir
  const child = spawn(bin, ["dev", "-data", dir], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = ""; // the tail of stdout + stderr, for failure messages
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const baseUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no banner after ${START_TIMEOUT_MS} ms:\n${output}`)),
        START_TIMEOUT_MS,
      );
      const onData = (chunk: Buffer): void => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
        const m = BANNER.exec(output);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      // Keep both pipes drained for the whole run, or a chatty server would block.
      child.stdout.on("data", onData);
      child.stderr.on("data", (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-20_000);
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
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
