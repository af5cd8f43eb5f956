#!/usr/bin/env node
// `npm run bench -- --deploy` (or `node test/bench/deploy.mjs`): figures of the generated deploy
// script under a real PM2 daemon, printed as a table. Not a test: nothing here asserts on time.
// Needs what the e2e suite needs (fixtures/e2e: /usr/bin/python3 with FastAPI and uvicorn, npm).
//
//   1. fixtures/e2e (FastAPI + Next.js): a full deploy of a fresh copy (venv, npm ci, next build),
//      then unchanged redeploys (install and build skipped), and what an unchanged redeploy spends
//      its time on: `pm2 startOrReload` itself, PM2's other CLI calls, the manifest's verify
//      commands, the wait for health after PM2 returned, and the script's own work (with its Node
//      helper calls), measured in separate runs through recording stand-ins for pm2 and node.
//   2. Readiness: fixtures/tiny with READY_DELAY_MS, so that it starts answering its health URL
//      at a moment it logs; the gap is from that moment to the deploy's exit.
//   3. Redeploys under a bounded load on 127.0.0.1 (4 concurrent GET loops on fresh connections
//      per app): failed requests of an app in cluster mode (2 workers), and the longest time
//      without a successful answer of a single fork-mode app.
//
//   BENCH_DEPLOY_RUNS=5       runs of the unchanged redeploy, readiness and load figures (default 5)
//   BENCH_DEPLOY_E2E=0        skip the fixtures/e2e figures
//   npm run bench -- --deploy --json    machine-readable figures
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import net from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startLoad } from "./load.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "bin", "deploygen.js");
const RUNS = Math.max(1, Number(process.env.BENCH_DEPLOY_RUNS ?? 5));
const WITH_E2E = process.env.BENCH_DEPLOY_E2E !== "0";
const JSON_OUTPUT = process.argv.includes("--json");
const READY_DELAY_MS = 1500;
const POLL_INTERVAL_S = 0.25;

const work = mkdtempSync(path.join(tmpdir(), "deploygen-bench-deploy-"));
const pm2Homes = [];
process.on("exit", () => {
  for (const home of pm2Homes) spawnSync(path.join(ROOT, "node_modules", ".bin", "pm2"), ["kill"], { env: envFor(home), stdio: "ignore" });
  rmSync(work, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

/** The environment of a host shell: no npm_* (a nested npm ci would follow them), PM2_HOME, pm2 on PATH. */
function envFor(pm2Home, extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|VITEST|PM2_)/i.test(key) || ["INIT_CWD", "NODE", "NODE_ENV"].includes(key)) continue;
    env[key] = value;
  }
  return { ...env, PATH: `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, PM2_HOME: pm2Home, NO_COLOR: "1", NEXT_TELEMETRY_DISABLED: "1", ...extra };
}

function fail(message) {
  console.error(`bench --deploy: ${message}`);
  process.exit(1);
}

async function freePorts(count) {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** A copy of a fixture without installed, built or generated state, generated, with its env file. */
function project(fixture, { ports, edit = (yaml) => yaml, envFile }) {
  const dir = mkdtempSync(path.join(work, `${fixture}-`));
  const from = path.join(ROOT, "fixtures", fixture);
  cpSync(from, dir, {
    recursive: true,
    filter: (source) => !/(^|\/)(deploy|node_modules|\.next|\.venv|logs|\.deploygen|__pycache__|\.env\.staging)$/.test(path.relative(from, source)),
  });
  const manifest = path.join(dir, "deploygen.yaml");
  let yaml = readFileSync(manifest, "utf8");
  for (const [from, to] of ports) {
    const line = new RegExp(`^(\\s*port:\\s*)${from}\\s*$`, "m");
    if (!line.test(yaml)) fail(`fixtures/${fixture}/deploygen.yaml has no "port: ${from}" line`);
    yaml = yaml.replace(line, `$1${to}`);
  }
  writeFileSync(manifest, edit(yaml));
  const generated = spawnSync(process.execPath, [CLI, "generate", "--quiet"], { cwd: dir, encoding: "utf8" });
  if (generated.status !== 0) fail(`deploygen generate in ${dir}: ${generated.stderr}`);
  writeFileSync(path.join(dir, ".env.staging"), envFile);
  chmodSync(path.join(dir, ".env.staging"), 0o600);
  const pm2Home = mkdtempSync(path.join(work, "pm2-"));
  pm2Homes.push(pm2Home);
  return { dir, pm2Home };
}

/**
 * Runs deploy-staging.sh; resolves to { ms, startedAt, endedAt, stdout, sections } or exits the
 * bench on failure. sections: each "==> " line of the output with the time (epoch ms) it arrived.
 */
function deploy({ dir, pm2Home }, args = [], extraEnv = {}) {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const started = performance.now();
    const child = spawn("bash", [path.join(dir, "deploy/scripts/deploy-staging.sh"), ...args], { cwd: dir, env: envFor(pm2Home, extraEnv) });
    let stdout = "";
    let stderr = "";
    let partial = "";
    const sections = [];
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop();
      for (const line of lines) if (line.startsWith("==> ")) sections.push({ name: line.slice(4).split(/[ :]/)[0], at: Date.now() });
    });
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("exit", (code) => {
      const endedAt = Date.now();
      const ms = performance.now() - started;
      if (code !== 0) fail(`deploy in ${dir} exited ${code}:\n${stdout}\n${stderr}`);
      resolve({ ms, startedAt, endedAt, stdout, sections });
    });
  });
}

/**
 * Stand-ins that record each call's start and end (epoch seconds, from bash's EPOCHREALTIME) and
 * run the real program: PM2 through PM2_BIN (the scripts honour it), and `node` first on PATH,
 * recording only the runs of deploygen-helper.cjs. Returns the extra environment and a reader.
 */
function recorders() {
  const dir = mkdtempSync(path.join(work, "recorders-"));
  const log = path.join(dir, "calls.log");
  const realPm2 = path.join(ROOT, "node_modules", ".bin", "pm2");
  const record = (what) => `start=$EPOCHREALTIME; ${what}; rc=$?; printf '%s\\t%s\\t%s\\n' "$start" "$EPOCHREALTIME"`;
  // Laid out like the pm2 package (bin/pm2 beside a module that is the real one): the scripts'
  // event listener loads PM2's API from the folder above PM2_BIN.
  mkdirSync(path.join(dir, "pm2", "bin"), { recursive: true });
  writeFileSync(path.join(dir, "pm2", "index.js"), `module.exports = require(${JSON.stringify(path.join(ROOT, "node_modules", "pm2"))});\n`);
  writeFileSync(path.join(dir, "pm2", "bin", "pm2"), `#!/usr/bin/env bash\n${record(`${JSON.stringify(realPm2)} "$@"`)} "pm2 $1" >>${JSON.stringify(log)}; exit $rc\n`);
  // The event listener runs until the script kills it: exec'd, not recorded.
  writeFileSync(
    path.join(dir, "node"),
    `#!/usr/bin/env bash\nif [[ \${1-} == */deploygen-helper.cjs && \${2-} != pm2-exceptions ]]; then ${record(`${JSON.stringify(process.execPath)} "$@"`)} "helper $2" >>${JSON.stringify(log)}; exit $rc; fi\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
  );
  chmodSync(path.join(dir, "pm2", "bin", "pm2"), 0o755);
  chmodSync(path.join(dir, "node"), 0o755);
  return {
    env: { PM2_BIN: path.join(dir, "pm2", "bin", "pm2"), PATH: `${dir}:${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
    /** The calls recorded since the last take: { what, startAt, endAt } in epoch ms. */
    take() {
      let text = "";
      try {
        text = readFileSync(log, "utf8");
      } catch {
        return [];
      }
      rmSync(log, { force: true });
      return text.split("\n").filter(Boolean).map((line) => {
        const [start, end, what] = line.split("\t");
        return { what, startAt: Number(start) * 1000, endAt: Number(end) * 1000 };
      });
    },
  };
}

/**
 * Where an unchanged redeploy's time goes, from one run through the recorders: PM2's startOrReload
 * (it runs in the background while the script watches the apps), PM2's other CLI calls, the wait
 * for the health URLs after startOrReload returned, the manifest's verify commands, and the rest:
 * the script's own work (bash, the Node helper calls listed apart, hashing, probes).
 */
function breakdown(result, calls) {
  const sum = (list) => list.reduce((total, call) => total + (call.endAt - call.startAt), 0);
  const startOrReload = calls.filter((call) => call.what === "pm2 startOrReload");
  const otherPm2 = calls.filter((call) => call.what.startsWith("pm2 ") && call.what !== "pm2 startOrReload");
  const helper = calls.filter((call) => call.what.startsWith("helper "));
  const pm2Returned = Math.max(0, ...startOrReload.map((call) => call.endAt));
  const healthWait = pm2Returned > 0 ? Math.max(0, result.endedAt - pm2Returned) : 0;
  const verify = [...result.stdout.matchAll(/^ {4}ok verify \S+ \((\d+)\.(\d)s\)$/gm)].reduce((total, m) => total + Number(m[1]) * 1000 + Number(m[2]) * 100, 0);
  const pm2Total = sum(startOrReload) + sum(otherPm2);
  const sections = {};
  result.sections.forEach((section, i) => {
    const next = result.sections[i + 1]?.at ?? result.endedAt;
    sections[section.name] = (sections[section.name] ?? 0) + (next - section.at);
  });
  const helperBy = {};
  for (const call of helper) {
    const name = call.what.slice("helper ".length);
    helperBy[name] = (helperBy[name] ?? 0) + (call.endAt - call.startAt);
  }
  const otherBy = {};
  for (const call of otherPm2) otherBy[call.what] = (otherBy[call.what] ?? 0) + (call.endAt - call.startAt);
  return {
    totalMs: result.ms,
    pm2StartOrReloadMs: sum(startOrReload),
    pm2OtherCallsMs: sum(otherPm2),
    pm2OtherCalls: otherBy,
    healthWaitAfterPm2Ms: healthWait,
    verifyCommandsMs: verify,
    ownWorkMs: Math.max(0, result.ms - pm2Total - healthWait - verify),
    helperCalls: helper.length,
    helperMs: sum(helper),
    helperBySubcommand: helperBy,
    sections,
  };
}

function pm2(target, ...args) {
  const result = spawnSync(path.join(ROOT, "node_modules", ".bin", "pm2"), args, { cwd: target.dir, env: envFor(target.pm2Home), encoding: "utf8" });
  if (result.status !== 0) fail(`pm2 ${args.join(" ")}: ${result.stderr}`);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value, digits = 0) => Number(value.toFixed(digits));
const skipped = (stdout) => [...stdout.matchAll(/skipped (install|build) (\S+): inputs unchanged/g)].map((m) => `${m[1]} ${m[2]}`);

/** fixtures/tiny's app block repeated as app `name` on `port` (fork mode). */
function withSecondApp(yaml, name, port) {
  const block = /^ {2}web:\n((?: {4}.*\n)+)/m.exec(yaml);
  if (!block) fail('fixtures/tiny has no app "web"');
  return yaml.replace(block[0], `${block[0]}  ${name}:\n${block[1].replace(/^ {4}port: \d+$/m, `    port: ${port}`)}`);
}

const report = {
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  loadAverage: loadavg().map((value) => round(value, 2)),
  runs: RUNS,
};

// ---- 1. fixtures/e2e: full deploy vs unchanged redeploy ----
if (WITH_E2E) {
  const [backendPort, webPort] = await freePorts(2);
  const e2e = project("e2e", { ports: [[14200, backendPort], [14100, webPort]], envFile: "E2E_API_KEY=bench-key\n" });
  const full = await deploy(e2e);
  const unchanged = [];
  let skippedSteps = [];
  for (let run = 0; run < RUNS; run++) {
    const result = await deploy(e2e);
    unchanged.push(result.ms);
    skippedSteps = skipped(result.stdout);
  }
  // The same unchanged redeploy through the recorders, for where its time goes.
  const recording = recorders();
  const parts = [];
  for (let run = 0; run < RUNS; run++) {
    recording.take();
    const result = await deploy(e2e, [], recording.env);
    parts.push(breakdown(result, recording.take()));
  }
  const medianOf = (key) => round(median(parts.map((part) => part[key])));
  const medianBy = (key) => {
    const out = {};
    for (const name of new Set(parts.flatMap((part) => Object.keys(part[key])))) out[name] = round(median(parts.map((part) => part[key][name] ?? 0)));
    return out;
  };
  const forced = await deploy(e2e, ["--force"]);
  report.e2e = {
    fullDeployMs: round(full.ms),
    unchangedRedeployMedianMs: round(median(unchanged)),
    unchangedRedeployMinMs: round(Math.min(...unchanged)),
    forcedRedeployMs: round(forced.ms),
    speedup: round(full.ms / median(unchanged), 1),
    skipped: skippedSteps,
    unchangedRedeployBreakdown: {
      runs: parts.length,
      recordedTotalMedianMs: medianOf("totalMs"),
      pm2StartOrReloadMs: medianOf("pm2StartOrReloadMs"),
      pm2OtherCallsMs: medianOf("pm2OtherCallsMs"),
      pm2OtherCalls: medianBy("pm2OtherCalls"),
      healthWaitAfterPm2Ms: medianOf("healthWaitAfterPm2Ms"),
      verifyCommandsMs: medianOf("verifyCommandsMs"),
      ownWorkMs: medianOf("ownWorkMs"),
      helperCalls: medianOf("helperCalls"),
      helperMs: medianOf("helperMs"),
      helperBySubcommand: medianBy("helperBySubcommand"),
      sections: medianBy("sections"),
    },
  };
  pm2(e2e, "kill");
}

// ---- 2. readiness: from the app's first healthy answer to the deploy's exit ----
{
  const [port] = await freePorts(1);
  const tiny = project("tiny", { ports: [[18080, port]], envFile: "TINY_API_KEY=bench-key\n" });
  const log = path.join(tiny.dir, "logs", "tiny-staging-web.out.log");
  const gaps = [];
  const waits = [];
  for (let run = 0; run < RUNS; run++) {
    if (run > 0) pm2(tiny, "delete", "tiny-staging-web");
    const result = await deploy(tiny, [], { READY_DELAY_MS: String(READY_DELAY_MS) });
    const readyAt = Number([...readFileSync(log, "utf8").matchAll(/tiny: ready at (\d+)/g)].at(-1)?.[1]);
    if (!Number.isFinite(readyAt)) fail(`no "tiny: ready at" line in ${log}`);
    gaps.push(result.endedAt - readyAt);
    waits.push(Number(/answers \S+ \((\d+\.\d)s\)/.exec(result.stdout)?.[1]));
  }
  report.readiness = {
    readyDelayMs: READY_DELAY_MS,
    pollIntervalMs: POLL_INTERVAL_S * 1000,
    gapMedianMs: round(median(gaps)),
    gapMaxMs: round(Math.max(...gaps)),
    gapsMs: gaps.map((gap) => round(gap)),
  };
  pm2(tiny, "kill");
}

// ---- 3. redeploy under load: cluster mode (2 workers) vs a single fork-mode app ----
{
  const [clusterPort, forkPort] = await freePorts(2);
  const tiny = project("tiny", {
    ports: [[18080, clusterPort]],
    envFile: "TINY_API_KEY=bench-key\n",
    edit: (yaml) => withSecondApp(yaml, "solo", forkPort).replace(/^( {2}web:\n)/m, "$1    instances: 2\n"),
  });
  await deploy(tiny);
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    // A new version each time, so the build runs and both apps are reloaded with new code.
    appendFileSync(path.join(tiny.dir, "app/src/server.js"), `// version ${run + 2}\n`);
    const cluster = startLoad(`http://127.0.0.1:${clusterPort}/`, { concurrency: 4, maxMs: 120_000 });
    const fork = startLoad(`http://127.0.0.1:${forkPort}/`, { concurrency: 4, maxMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const result = await deploy(tiny);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [clusterReport, forkReport] = await Promise.all([cluster.stop(), fork.stop()]);
    if (/starting it afresh/.test(result.stdout)) fail("an unchanged app was deleted and started afresh instead of reloaded");
    runs.push({ deployMs: result.ms, cluster: clusterReport, fork: forkReport });
  }
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const byCode = (reports) => {
    const out = {};
    for (const one of reports) for (const [code, count] of Object.entries(one.failuresByCode)) out[code] = (out[code] ?? 0) + count;
    return out;
  };
  report.underLoad = {
    redeploys: RUNS,
    loopsPerApp: 4,
    cluster: {
      requests: sum(runs.map((r) => r.cluster.requests)),
      failed: sum(runs.map((r) => r.cluster.failures)),
      failuresByCode: byCode(runs.map((r) => r.cluster)),
      longestGapMedianMs: round(median(runs.map((r) => r.cluster.longestGapMs))),
      longestGapMaxMs: Math.max(...runs.map((r) => r.cluster.longestGapMs)),
    },
    fork: {
      requests: sum(runs.map((r) => r.fork.requests)),
      failed: sum(runs.map((r) => r.fork.failures)),
      failuresByCode: byCode(runs.map((r) => r.fork)),
      gapMedianMs: round(median(runs.map((r) => r.fork.longestGapMs))),
      gapMaxMs: Math.max(...runs.map((r) => r.fork.longestGapMs)),
    },
    redeployMedianMs: round(median(runs.map((r) => r.deployMs))),
  };
  pm2(tiny, "kill");
}

if (JSON_OUTPUT) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(`deploygen deploy bench: node ${report.node}, ${report.platform}, ${report.cpu}, load ${report.loadAverage.join(" ")}; ${RUNS} run(s) per figure\n`);
  const rows = [];
  if (report.e2e) {
    rows.push(["fixtures/e2e full deploy (venv, npm ci, next build)", `${report.e2e.fullDeployMs} ms`, ""]);
    rows.push(["fixtures/e2e unchanged redeploy (median)", `${report.e2e.unchangedRedeployMedianMs} ms`, `${report.e2e.speedup}x faster; skipped: ${report.e2e.skipped.join(", ")}`]);
    const b = report.e2e.unchangedRedeployBreakdown;
    const list = (record) => Object.entries(record).map(([name, ms]) => `${name} ${ms}`).join(", ");
    rows.push(["  of which pm2 startOrReload (median)", `${b.pm2StartOrReloadMs} ms`, `of ${b.recordedTotalMedianMs} ms recorded; runs while the script watches the apps`]);
    rows.push(["  of which other PM2 CLI calls", `${b.pm2OtherCallsMs} ms`, list(b.pm2OtherCalls)]);
    rows.push(["  of which health wait after PM2 returned", `${b.healthWaitAfterPm2Ms} ms`, "polled every 0.25 s"]);
    rows.push(["  of which the manifest's verify commands", `${b.verifyCommandsMs} ms`, ""]);
    rows.push(["  of which the script's own work", `${b.ownWorkMs} ms`, `incl. ${b.helperCalls} Node helper calls, ${b.helperMs} ms: ${list(b.helperBySubcommand)}`]);
    rows.push(["  by section", "", list(b.sections)]);
    rows.push(["fixtures/e2e redeploy --force", `${report.e2e.forcedRedeployMs} ms`, "install and build run again"]);
  }
  rows.push(["readiness gap: app healthy -> deploy exits (median)", `${report.readiness.gapMedianMs} ms`, `max ${report.readiness.gapMaxMs} ms; goal <= 500 ms (poll every ${report.readiness.pollIntervalMs} ms)`]);
  rows.push([
    "redeploy under load: cluster mode (2 workers), failed requests",
    `${report.underLoad.cluster.failed} of ${report.underLoad.cluster.requests}`,
    `goal 0${report.underLoad.cluster.failed ? ` (${JSON.stringify(report.underLoad.cluster.failuresByCode)})` : ""}; longest gap ${report.underLoad.cluster.longestGapMedianMs} ms median, ${report.underLoad.cluster.longestGapMaxMs} ms max`,
  ]);
  rows.push([
    "redeploy under load: fork mode (1 process), longest gap",
    `${report.underLoad.fork.gapMedianMs} ms (median)`,
    `max ${report.underLoad.fork.gapMaxMs} ms; ${report.underLoad.fork.failed} of ${report.underLoad.fork.requests} requests failed`,
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
}
