// The published shape of the package: `npm pack`'s tarball, installed into a plain Node
// program (tsc, then node: no TypeScript loader) and into a Vite app (tsc, vite build,
// then the build in headless Chromium), both run against the real server.
// Run with `npm run test:package` (make test does); the fixtures' dependencies are pinned
// by their package-lock.json and come from npm's cache after the first run.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ADMIN_EMAIL, ADMIN_PASSWORD, startServer, type Server } from "../server.ts";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, "../..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const NPM_FLAGS = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"];

/** Runs a command in dir and returns its stdout; fails with its output when it fails. */
async function sh(dir: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd: dir, env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} (in ${dir}) failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** Copies a fixture to a scratch folder and installs its pinned dependencies plus the tarball. */
async function install(fixture: string, scratch: string, tarball: string): Promise<string> {
  const dir = path.join(scratch, fixture);
  cpSync(path.join(here, fixture), dir, { recursive: true, filter: (src) => !/node_modules|build|dist/.test(path.basename(src)) });
  await sh(dir, npm, ["ci", ...NPM_FLAGS]);
  await sh(dir, npm, ["install", "--no-save", ...NPM_FLAGS, tarball]);
  return dir;
}

function findChromium(): string | undefined {
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    if (existsSync(p)) return p;
  }
  return undefined;
}

describe("the packed client", { timeout: 600_000, concurrency: true }, () => {
  let server: Server;
  let scratch: string;
  let tarball: string;

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "api-client-package-"));
    const [started, packed] = await Promise.all([
      startServer(),
      sh(pkgDir, npm, ["pack", "--json", "--pack-destination", scratch, "--loglevel=error"]),
    ]);
    server = started;
    const [info] = JSON.parse(packed) as { filename: string; version: string; files: { path: string }[] }[];
    assert.ok(info);
    tarball = path.join(scratch, info.filename);
    const files = info.files.map((f) => f.path).sort();
    assert.deepEqual(
      files.filter((f) => !f.startsWith("dist/")),
      ["README.md", "package.json"],
      "the tarball holds the build, the README and package.json only",
    );
    for (const f of ["dist/index.js", "dist/index.d.ts", "dist/schema.d.ts", "dist/events.js", "dist/client.js"]) {
      assert.ok(files.includes(f), `${f} is in the tarball: ${files.join(", ")}`);
    }
    const spec = readFileSync(path.join(pkgDir, "../../openapi.yaml"), "utf8");
    assert.equal(info.version, /^\s+version:\s*(\S+)/m.exec(spec)?.[1], "the package's version is the contract's info.version");
  });
  after(async () => {
    await server?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("works in a plain Node program", async () => {
    const dir = await install("node-app", scratch, tarball);
    await sh(dir, path.join(dir, "node_modules/.bin/tsc"), ["-p", "."]);
    const out = await sh(dir, process.execPath, ["build/main.js"], {
      API_URL: server.baseUrl,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
    });
    const line = out.trim().split("\n").at(-1) ?? "";
    assert.match(line, /^ok /, out);
    const got = JSON.parse(line.slice(3)) as {
      me: string;
      task: string;
      typo: number;
      missing: number;
      listed: number[];
      created: number;
      events: string[];
    };
    assert.equal(got.me, ADMIN_EMAIL);
    assert.equal(got.task, "Packed in Node");
    assert.equal(got.typo, 422);
    assert.equal(got.missing, 404);
    assert.deepEqual(got.listed, [got.created], "the API key lists the task");
    assert.equal(got.events[0], "run.status");
    assert.equal(got.events.at(-1), "run.failed", "without a model the run fails, and the stream says so");
  });

  it("works in a Vite app in the browser", async (t) => {
    const dir = await install("vite-app", scratch, tarball);
    await sh(dir, path.join(dir, "node_modules/.bin/tsc"), ["-p", "."]);
    await sh(dir, path.join(dir, "node_modules/.bin/vite"), ["build", "--logLevel", "error"]);
    const bundle = readFileSync(path.join(dir, "dist/index.html"), "utf8");
    assert.match(bundle, /<script type="module"[^>]+src="\/assets\/index-[^"]+\.js"/);

    const chromium = findChromium();
    if (!chromium) {
      t.skip("no Chromium (/usr/bin/chromium): the build type-checked and bundled, but did not run");
      return;
    }
    const preview = spawn(path.join(dir, "node_modules/.bin/vite"), ["preview", "--port", "0", "--strictPort", "false"], {
      cwd: dir,
      env: { ...process.env, API_URL: server.baseUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const origin = await new Promise<string>((resolve, reject) => {
        let output = "";
        const timer = setTimeout(() => reject(new Error(`vite preview did not start:\n${output}`)), 30_000);
        const onData = (chunk: Buffer): void => {
          // eslint-disable-next-line no-control-regex
          output += chunk.toString("utf8").replace(/\x1b\[[0-9;]*m/g, "");
          const m = /Local:\s+(http:\/\/\S+?)\/?\s/.exec(output);
          if (m?.[1]) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        };
        preview.stdout.on("data", onData);
        preview.stderr.on("data", onData);
        preview.once("exit", (code) => reject(new Error(`vite preview exited (${code}):\n${output}`)));
      });
      const url = `${origin}/?${new URLSearchParams({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD })}`;
      const profile = path.join(scratch, "chromium-profile");
      const dom = await sh(dir, chromium, [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=30000",
        "--dump-dom",
        url,
      ]);
      const result = /<pre id="result">([^<]*)<\/pre>/.exec(dom)?.[1] ?? dom;
      assert.match(result, /^ok /, `the app's result in Chromium: ${result}`);
      const got = JSON.parse(result.slice(3).replaceAll("&quot;", '"')) as { title: string; etag: string; precondition: number };
      assert.deepEqual(got, { title: "Packed in Vite", etag: '"1"', precondition: 412 });
    } finally {
      preview.kill("SIGTERM");
    }
  });
});
