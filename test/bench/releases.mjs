#!/usr/bin/env node
// `npm run bench -- --releases` (or `node test/bench/releases.mjs`): figures of deploys with
// `releases` under a real PM2 daemon. Not a test: nothing here asserts on time.
//
//   1. fixtures/e2e (FastAPI + Next.js) with releases: the first release (venv, npm ci, next
//      build), an unchanged redeploy (no release made: a reload), a new release whose
//      dependencies and build inputs are unchanged (a README edit: venv, node_modules and .next
//      hard-linked from the previous release), the disk the releases take (hard-linked files
//      counted once, as `du` does) and per release on its own.
//   2. fixtures/tiny with releases, in fork and in cluster mode (2 workers): a release that crashes
//      at start, from the deploy's start to the previous release serving again, and the longest
//      time without an answer meanwhile.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "bin", "deploygen.js");
const PM2 = path.join(ROOT, "node_modules", ".bin", "pm2");
const work = mkdtempSync(path.join(tmpdir(), "deploygen-bench-releases-"));
const pm2Homes = [];
process.on("exit", () => {
  for (const home of pm2Homes) spawnSync(PM2, ["kill"], { env: envFor(home), stdio: "ignore" });
  rmSync(work, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

function envFor(pm2Home) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|VITEST|PM2_)/i.test(key) && !["INIT_CWD", "NODE_ENV"].includes(key)));
  return { ...env, PATH: `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, PM2_HOME: pm2Home, NO_COLOR: "1", NEXT_TELEMETRY_DISABLED: "1" };
}

function fail(message) {
  console.error(`bench --releases: ${message}`);
  process.exit(1);
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A fresh copy of a fixture on free ports, with releases, generated, in a git repository. */
async function project(fixture, edit, envFile) {
  const dir = mkdtempSync(path.join(work, `${fixture}-`));
  const from = path.join(ROOT, "fixtures", fixture);
  cpSync(from, dir, { recursive: true, filter: (source) => !/(^|\/)(deploy|node_modules|\.next|\.venv|logs|\.deploygen|__pycache__|\.env\.staging)$/.test(path.relative(from, source)) });
  const manifest = path.join(dir, "deploygen.yaml");
  let yaml = readFileSync(manifest, "utf8");
  const ports = [];
  for (const match of yaml.matchAll(/^(\s*port:\s*)(\d+)\s*$/gm)) ports.push([match[2], await freePort()]);
  for (const [old, port] of ports) yaml = yaml.replace(new RegExp(`^(\\s*port:\\s*)${old}\\s*$`, "m"), `$1${port}`);
  writeFileSync(manifest, edit(`${yaml}    releases: { keep: 5 }\n    minFreeDiskMB: 10\n`));
  const generated = spawnSync(process.execPath, [CLI, "generate", "--quiet"], { cwd: dir, encoding: "utf8" });
  if (generated.status !== 0) fail(`deploygen generate in ${dir}: ${generated.stderr}`);
  writeFileSync(path.join(dir, ".env.staging"), envFile);
  chmodSync(path.join(dir, ".env.staging"), 0o600);
  writeFileSync(path.join(dir, ".gitignore"), "node_modules/\n.next/\n.venv/\nlogs/\n.deploygen/\n.env.staging\n__pycache__/\n");
  for (const args of [["init", "-q"], ["add", "-A"], ["-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-qm", "bench"]]) spawnSync("git", args, { cwd: dir });
  const pm2Home = mkdtempSync(path.join(work, "pm2-"));
  pm2Homes.push(pm2Home);
  return { dir, pm2Home, port: ports[0]?.[1] };
}

function deploy({ dir, pm2Home }, { expect = 0 } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn("bash", [path.join(dir, "deploy/scripts/deploy-staging.sh")], { cwd: dir, env: envFor(pm2Home) });
    let output = "";
    let switchedMs;
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (switchedMs === undefined && output.includes("current -> ")) switchedMs = performance.now() - started;
    });
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("exit", (code) => {
      if (code !== expect) fail(`deploy in ${dir} exited ${code} (expected ${expect}):\n${output}`);
      resolve({ ms: performance.now() - started, sinceSwitchMs: performance.now() - started - (switchedMs ?? 0), output });
    });
  });
}

const answer = (port) =>
  new Promise((resolve) => {
    const request = http.get({ host: "127.0.0.1", port, path: "/", agent: false, timeout: 2000 }, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve(response.statusCode === 200 ? body : null));
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(null));
  });

const du = (args) => spawnSync("du", args, { encoding: "utf8" }).stdout.trim().split("\n").map((line) => line.split("\t"));
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
const rows = [];

// 1. fixtures/e2e
{
  const e2e = await project("e2e", (yaml) => yaml, "E2E_API_KEY=bench-key\n");
  const first = await deploy(e2e);
  rows.push(["fixtures/e2e: first release (venv, npm ci, next build)", seconds(first.ms)]);
  const unchanged = [];
  for (let i = 0; i < 3; i++) unchanged.push((await deploy(e2e)).ms);
  unchanged.sort((a, b) => a - b);
  rows.push(["fixtures/e2e: unchanged redeploy, no release made (median of 3)", seconds(unchanged[1])]);
  const fresh = [];
  for (let i = 0; i < 3; i++) {
    writeFileSync(path.join(e2e.dir, "README.txt"), `bench ${i}\n`);
    const r = await deploy(e2e);
    if (!/reused the install of frontend/.test(r.output) || !/reused the build of frontend/.test(r.output)) fail(`the new release did not reuse the previous one:\n${r.output}`);
    fresh.push(r.ms);
  }
  fresh.sort((a, b) => a - b);
  rows.push(["fixtures/e2e: new release, dependencies and build reused (median of 3)", seconds(fresh[1])]);
  rows.push(["  of which on top of an unchanged redeploy", seconds(fresh[1] - unchanged[1])]);
  const releasesDir = path.join(e2e.dir, ".deploygen", "staging", "releases");
  const ids = readdirSync(releasesDir).sort();
  const [total] = du(["-sh", releasesDir]);
  rows.push([`fixtures/e2e: disk of ${ids.length} releases together (hard links once)`, total[0]]);
  const each = du(["-sh", ...ids.map((id) => path.join(releasesDir, id))]);
  rows.push(["  the first release / each later one (as du counts them in turn)", `${each[0][0]} / ${each.slice(1).map((row) => row[0]).join(", ")}`]);
}

// 2. fixtures/tiny: crash at start
for (const mode of ["fork", "cluster"]) {
  const tiny = await project("tiny", (yaml) => (mode === "cluster" ? yaml.replace(/^ {4}stopTimeoutSeconds: 5$/m, "    stopTimeoutSeconds: 5\n    instances: 2") : yaml), "TINY_API_KEY=bench-key\n");
  await deploy(tiny);
  const server = path.join(tiny.dir, "app", "src", "server.js");
  writeFileSync(server, `throw new Error("crash at start");\n${readFileSync(server, "utf8")}`);
  let done = false;
  let gap = 0;
  let downSince;
  const poller = (async () => {
    while (!done) {
      const ok = (await answer(tiny.port)) !== null;
      const now = performance.now();
      if (!ok) downSince ??= now;
      else if (downSince !== undefined) {
        gap = Math.max(gap, now - downSince);
        downSince = undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const failed = await deploy(tiny, { expect: 1 });
  done = true;
  await poller;
  if (!/was rolled back .*; release \S+ is serving/.test(failed.output)) fail(`no rollback:\n${failed.output}`);
  rows.push([`fixtures/tiny ${mode}: crash at start, from the switch to the previous release serving`, seconds(failed.sinceSwitchMs)]);
  rows.push([`  longest time without an answer meanwhile`, seconds(gap)]);
}

const width = Math.max(...rows.map(([name]) => name.length));
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
