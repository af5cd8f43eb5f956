#!/usr/bin/env node
// `npm run bench -- --deploy` (or `node test/bench/deploy.mjs`): figures of the generated deploy
// script under a real PM2 daemon, printed as a table. Not a test: nothing here asserts on time.
// Needs what the e2e suite needs (fixtures/e2e: /usr/bin/python3 with FastAPI and uvicorn, npm).
//
//   1. fixtures/e2e (FastAPI + Next.js): a full deploy of a fresh copy (venv, npm ci, next build),
//      then unchanged redeploys: install and build skipped and, the apps being healthy, nothing
//      reloaded. Where such a redeploy's time goes (separate runs through recording stand-ins for
//      pm2, node and curl): the time by section ("==> " lines), the Node processes it started
//      (the helper runs once, as a coprocess), PM2 CLI calls, health probes, and the rest; with
//      strace on the machine, one more run counts every process it started, by program.
//   2. fixtures/e2e `start-staging.sh` on the running, unchanged apps: a reload, what a deploy costs
//      when it does reload; and where its time goes: `pm2 startOrReload` itself, PM2's other CLI
//      calls, the wait for health after PM2 returned, and the script's own work.
//   3. Readiness: fixtures/tiny with READY_DELAY_MS, so that it starts answering its health URL
//      at a moment it logs; the gap is from that moment to the deploy's exit.
//   4. Redeploys under a bounded load on 127.0.0.1 (4 concurrent GET loops on fresh connections
//      per app): failed requests of an app in cluster mode (2 workers), and the longest time
//      without a successful answer of a single fork-mode app.
//
//   BENCH_DEPLOY_RUNS=5       runs of each median figure (unchanged redeploy, start, readiness, load; default 5)
//   BENCH_DEPLOY_E2E=0        skip the fixtures/e2e figures (1 and 2)
//   npm run bench -- --deploy --json    machine-readable figures
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
/** The unchanged redeploy of fixtures/e2e: half of the 1.45 s measured before the helper ran as a coprocess. */
const UNCHANGED_GOAL_MS = 725;
const STRACE = "/usr/bin/strace";

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
 * Runs deploy-staging.sh (or `script`-staging.sh); resolves to { ms, startedAt, endedAt, stdout,
 * sections } or exits the bench on failure. sections: each "==> " line of the output with the time
 * (epoch ms) it arrived, and an unchanged deploy's final check. `prefix`: a program that runs bash (strace).
 */
function deploy({ dir, pm2Home }, args = [], extraEnv = {}, { script = "deploy", prefix = [] } = {}) {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const started = performance.now();
    const command = [...prefix, "bash", path.join(dir, `deploy/scripts/${script}-staging.sh`), ...args];
    const child = spawn(command[0], command.slice(1), { cwd: dir, env: envFor(pm2Home, extraEnv) });
    let stdout = "";
    let stderr = "";
    let partial = "";
    let lastLineAt;
    const sections = [];
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop();
      for (const line of lines) {
        // An unchanged deploy's check (fingerprint, apps online and answering) prints nothing until
        // its "==> Deployed" line: it is timed from the line before, apart from the last section.
        if (NOTHING_RELOADED.test(line) && lastLineAt !== undefined) sections.push({ name: "unchanged-and-healthy-check", at: lastLineAt });
        if (line.startsWith("==> ")) sections.push({ name: line.slice(4).split(/[ :]/)[0], at: Date.now() });
        lastLineAt = Date.now();
      }
    });
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("exit", (code) => {
      const endedAt = Date.now();
      const ms = performance.now() - started;
      if (code !== 0) fail(`${script}-staging.sh in ${dir} exited ${code}:\n${stdout}\n${stderr}`);
      resolve({ ms, startedAt, endedAt, stdout, sections });
    });
  });
}
const start = (target, extraEnv = {}) => deploy(target, [], extraEnv, { script: "start" });
const NOTHING_RELOADED = /^==> Deployed .*: unchanged since the last deploy and healthy, nothing reloaded$/m;

/**
 * Stand-ins that record each call (epoch seconds, from bash's EPOCHREALTIME) and run the real
 * program: PM2 through PM2_BIN (the scripts honour it) and curl first on PATH, each with its start
 * and end; and `node` first on PATH, recording the start of each run of deploygen-helper.cjs and
 * then exec'ing Node.js (the same process: the coprocess and the event listener keep their pids).
 * Returns the extra environment and a reader.
 */
function recorders() {
  const dir = mkdtempSync(path.join(work, "recorders-"));
  const log = path.join(dir, "calls.log");
  const realPm2 = path.join(ROOT, "node_modules", ".bin", "pm2");
  const record = (what) => `start=$EPOCHREALTIME; ${what}; rc=$?; printf '%s\\t%s\\t%s\\n' "$start" "$EPOCHREALTIME"`;
  // Laid out like the pm2 package (bin/pm2 beside the real modules): the helper loads PM2's RPC
  // client from modules/ and PM2's API (the event listener) from the folder above PM2_BIN; were
  // either missing, it would fall back to `pm2 jlist`, which the real layout never runs.
  mkdirSync(path.join(dir, "pm2", "bin"), { recursive: true });
  writeFileSync(path.join(dir, "pm2", "index.js"), `module.exports = require(${JSON.stringify(path.join(ROOT, "node_modules", "pm2"))});\n`);
  if (existsSync(path.join(ROOT, "node_modules", "pm2", "modules"))) symlinkSync(path.join(ROOT, "node_modules", "pm2", "modules"), path.join(dir, "pm2", "modules"));
  writeFileSync(path.join(dir, "pm2", "bin", "pm2"), `#!/usr/bin/env bash\n${record(`${JSON.stringify(realPm2)} "$@"`)} "pm2 $1" >>${JSON.stringify(log)}; exit $rc\n`);
  const realCurl = spawnSync("bash", ["-c", "command -v curl"], { encoding: "utf8" }).stdout.trim() || "/usr/bin/curl";
  writeFileSync(path.join(dir, "curl"), `#!/usr/bin/env bash\n${record(`${JSON.stringify(realCurl)} "$@"`)} "curl" >>${JSON.stringify(log)}; exit $rc\n`);
  writeFileSync(
    path.join(dir, "node"),
    `#!/usr/bin/env bash\nif [[ \${1-} == */deploygen-helper.cjs ]]; then printf '%s\\t\\t%s\\n' "$EPOCHREALTIME" "helper \${2-}" >>${JSON.stringify(log)}; fi\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
  );
  for (const file of ["pm2/bin/pm2", "curl", "node"]) chmodSync(path.join(dir, file), 0o755);
  return {
    env: { PM2_BIN: path.join(dir, "pm2", "bin", "pm2"), PATH: `${dir}:${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
    /** The calls recorded since the last take: { what, startAt, endAt } in epoch ms (endAt undefined for a helper run). */
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
        return { what, startAt: Number(start) * 1000, endAt: end ? Number(end) * 1000 : undefined };
      });
    },
  };
}

/**
 * Where a run's time goes, from one run through the recorders: PM2's startOrReload (it runs in
 * the background while the script watches the apps), PM2's other CLI calls, the wait for the
 * health URLs after startOrReload returned, the manifest's verify commands, the health probes made
 * before any reload (an unchanged deploy's check that the apps serve), and the rest: the script's
 * own work (bash, its one Node helper, hashing). Node processes: runs of the helper by subcommand
 * and PM2 CLI calls (each a Node.js process).
 */
function breakdown(result, calls) {
  const sum = (list) => list.reduce((total, call) => total + (call.endAt - call.startAt), 0);
  const startOrReload = calls.filter((call) => call.what === "pm2 startOrReload");
  const otherPm2 = calls.filter((call) => call.what.startsWith("pm2 ") && call.what !== "pm2 startOrReload");
  const helper = calls.filter((call) => call.what.startsWith("helper "));
  const pm2Returned = Math.max(0, ...startOrReload.map((call) => call.endAt));
  const probes = calls.filter((call) => call.what === "curl" && (pm2Returned === 0 || call.endAt <= pm2Returned));
  const healthWait = pm2Returned > 0 ? Math.max(0, result.endedAt - pm2Returned) : 0;
  const verify = [...result.stdout.matchAll(/^ {4}ok verify \S+ \((\d+)\.(\d)s\)$/gm)].reduce((total, m) => total + Number(m[1]) * 1000 + Number(m[2]) * 100, 0);
  const pm2Total = sum(startOrReload) + sum(otherPm2);
  const count = (list, name) => {
    const out = {};
    for (const call of list) out[name(call)] = (out[name(call)] ?? 0) + 1;
    return out;
  };
  const otherBy = {};
  for (const call of otherPm2) otherBy[call.what] = (otherBy[call.what] ?? 0) + (call.endAt - call.startAt);
  return {
    totalMs: result.ms,
    nothingReloaded: NOTHING_RELOADED.test(result.stdout),
    nodeProcesses: helper.length + startOrReload.length + otherPm2.length,
    helperRuns: helper.length,
    helperRunsBySubcommand: count(helper, (call) => call.what.slice("helper ".length)),
    pm2CliCalls: startOrReload.length + otherPm2.length,
    pm2CliCallsByCommand: count([...startOrReload, ...otherPm2], (call) => call.what.slice("pm2 ".length)),
    pm2StartOrReloadMs: sum(startOrReload),
    pm2OtherCallsMs: sum(otherPm2),
    pm2OtherCalls: otherBy,
    healthWaitAfterPm2Ms: healthWait,
    healthProbes: probes.length,
    healthProbesMs: sum(probes),
    verifyCommandsMs: verify,
    ownWorkMs: Math.max(0, result.ms - pm2Total - healthWait - verify - sum(probes)),
    sections: sectionsOf(result),
  };
}

/** Milliseconds by section: from each "==> " line to the next (or the exit); "start" before the first. */
function sectionsOf(result) {
  const sections = { start: (result.sections[0]?.at ?? result.endedAt) - result.startedAt };
  result.sections.forEach((section, i) => {
    const next = result.sections[i + 1]?.at ?? result.endedAt;
    sections[section.name] = (sections[section.name] ?? 0) + (next - section.at);
  });
  return sections;
}

/** Medians over runs of breakdown(): numbers, and records of numbers (a missing key counts 0). */
function medianBreakdown(parts) {
  const out = { runs: parts.length };
  for (const key of Object.keys(parts[0])) {
    if (typeof parts[0][key] === "boolean") out[key] = parts.filter((part) => part[key]).length;
    else if (typeof parts[0][key] === "number") out[key] = round(median(parts.map((part) => part[key])));
    else {
      out[key] = {};
      for (const name of new Set(parts.flatMap((part) => Object.keys(part[key])))) out[key][name] = round(median(parts.map((part) => part[key][name] ?? 0)));
    }
  }
  return out;
}

/**
 * Every process one run started, from `strace -f` (slower: not timed): forks (subshells, command
 * substitutions, pipelines; threads not counted) and programs executed, by name.
 */
async function processCount(target, args = []) {
  const file = path.join(mkdtempSync(path.join(work, "strace-")), "trace");
  const result = await deploy(target, args, {}, { prefix: [STRACE, "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", file] });
  const pending = new Map();
  const programs = {};
  let forks = 0;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, text] = m;
    const call = /^(execve|clone3?|v?fork)\((.*)/.exec(text);
    const resumed = /^<\.\.\. (execve|clone3?|v?fork) resumed>(.*)/.exec(text);
    let name;
    let rest;
    if (call) {
      [name, rest] = [call[1], call[2]];
      if (/<unfinished \.\.\.>$/.test(rest)) {
        pending.set(pid, { name, args: rest });
        continue;
      }
    } else if (resumed) {
      const started = pending.get(pid);
      pending.delete(pid);
      if (!started) continue;
      [name, rest] = [started.name, started.args + resumed[2]];
    } else continue;
    const value = /= (-?\d+)(?: \w+)?(?: \(.*\))?$/.exec(rest)?.[1];
    if (name === "execve") {
      if (value !== "0") continue;
      const program = path.basename(/^"([^"]*)"/.exec(rest)?.[1] ?? "?");
      programs[program] = (programs[program] ?? 0) + 1;
    } else if (!/CLONE_THREAD/.test(rest) && Number(value) > 0) forks++;
  }
  return { forks, programs, nothingReloaded: NOTHING_RELOADED.test(result.stdout) };
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

/** `node -e 0` wall time, median of 5: how fast this machine starts Node.js right now. */
function nodeStartMs() {
  const times = [];
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    spawnSync(process.execPath, ["-e", "0"], { stdio: "ignore" });
    times.push(performance.now() - started);
  }
  return round(median(times), 1);
}

const report = {
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  loadAverage: loadavg().map((value) => round(value, 2)),
  nodeStartMs: nodeStartMs(),
  runs: RUNS,
};

// ---- 1. fixtures/e2e: full deploy vs unchanged redeploy; 2. start (a reload) of the same apps ----
if (WITH_E2E) {
  const [backendPort, webPort] = await freePorts(2);
  const e2e = project("e2e", { ports: [[14200, backendPort], [14100, webPort]], envFile: "E2E_API_KEY=bench-key\n" });
  const full = await deploy(e2e);
  const unchanged = [];
  const unchangedSections = [];
  let skippedSteps = [];
  let nothingReloaded = 0;
  for (let run = 0; run < RUNS; run++) {
    const result = await deploy(e2e);
    unchanged.push(result.ms);
    unchangedSections.push({ sections: sectionsOf(result) });
    skippedSteps = skipped(result.stdout);
    if (NOTHING_RELOADED.test(result.stdout)) nothingReloaded++;
  }
  // The same unchanged redeploy through the recorders, for where its time goes.
  const recording = recorders();
  const parts = [];
  for (let run = 0; run < RUNS; run++) {
    recording.take();
    const result = await deploy(e2e, [], recording.env);
    parts.push(breakdown(result, recording.take()));
  }
  const processes = existsSync(STRACE) ? await processCount(e2e) : undefined;
  // start-staging.sh on the running, unchanged apps: PM2 reloads them and the script waits for health.
  const starts = [];
  for (let run = 0; run < RUNS; run++) starts.push((await start(e2e)).ms);
  const startParts = [];
  for (let run = 0; run < RUNS; run++) {
    recording.take();
    const result = await start(e2e, recording.env);
    startParts.push(breakdown(result, recording.take()));
  }
  const forced = await deploy(e2e, ["--force"]);
  report.e2e = {
    fullDeployMs: round(full.ms),
    unchangedRedeployMedianMs: round(median(unchanged)),
    unchangedRedeployMinMs: round(Math.min(...unchanged)),
    unchangedRedeployGoalMs: UNCHANGED_GOAL_MS,
    nothingReloaded: `${nothingReloaded} of ${RUNS}`,
    forcedRedeployMs: round(forced.ms),
    speedup: round(full.ms / median(unchanged), 1),
    skipped: skippedSteps,
    unchangedRedeploySections: medianBreakdown(unchangedSections).sections,
    unchangedRedeployBreakdown: medianBreakdown(parts),
    unchangedRedeployProcesses: processes,
    startMedianMs: round(median(starts)),
    startMinMs: round(Math.min(...starts)),
    startBreakdown: medianBreakdown(startParts),
  };
  pm2(e2e, "kill");
}

// ---- 3. readiness: from the app's first healthy answer to the deploy's exit ----
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

// ---- 4. redeploy under load: cluster mode (2 workers) vs a single fork-mode app ----
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

report.nodeStartEndMs = nodeStartMs();
if (JSON_OUTPUT) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(
    `deploygen deploy bench: node ${report.node}, ${report.platform}, ${report.cpu}, load ${report.loadAverage.join(" ")} -> ${loadavg().map((value) => round(value, 2)).join(" ")}; ` +
      `node -e 0 ${report.nodeStartMs} ms -> ${report.nodeStartEndMs} ms (median of 5); ${RUNS} run(s) per figure\n`,
  );
  const rows = [];
  if (report.e2e) {
    const e = report.e2e;
    const list = (record) => Object.entries(record).map(([name, value]) => `${name} ${value}`).join(", ") || "none";
    const share = (part, whole) => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : "");
    rows.push(["fixtures/e2e full deploy (venv, npm ci, next build)", `${e.fullDeployMs} ms`, ""]);
    rows.push([
      "fixtures/e2e unchanged redeploy (median)",
      `${e.unchangedRedeployMedianMs} ms`,
      `goal <= ${e.unchangedRedeployGoalMs} ms ${e.unchangedRedeployMedianMs <= e.unchangedRedeployGoalMs ? "met" : "MISSED"}; ${e.speedup}x faster; ` +
        `nothing reloaded in ${e.nothingReloaded}; skipped: ${e.skipped.join(", ")}`,
    ]);
    const b = e.unchangedRedeployBreakdown;
    rows.push(["  by section (median of each)", "", list(e.unchangedRedeploySections)]);
    rows.push(["  recorded through stand-ins (median)", `${b.totalMs} ms`, "the same redeploy with pm2, node and curl recorded; the figures below are its"]);
    rows.push(["  Node processes started", String(b.nodeProcesses), `deploygen-helper.cjs: ${list(b.helperRunsBySubcommand)}; PM2 CLI: ${list(b.pm2CliCallsByCommand)}`]);
    rows.push(["  PM2 CLI calls", `${b.pm2StartOrReloadMs + b.pm2OtherCallsMs} ms`, `${b.pm2CliCalls} call(s)${b.pm2CliCalls ? `: ${list(b.pm2CliCallsByCommand)}` : ""}; nothing reloaded in ${b.nothingReloaded} of ${b.runs}`]);
    rows.push(["  health probes (curl)", `${b.healthProbesMs} ms`, `${b.healthProbes} probe(s): are the apps answering now`]);
    rows.push(["  the rest: the script's own work", `${b.ownWorkMs} ms`, "bash, the helper's start and answers (env, PM2's list over RPC, hashes), state files"]);
    if (e.unchangedRedeployProcesses) {
      const p = e.unchangedRedeployProcesses;
      const programs = Object.entries(p.programs).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
      rows.push([
        "  processes started (strace -f, 1 run)",
        `${p.forks} forks`,
        `${programs.reduce((total, [, n]) => total + n, 0)} programs run: ${programs.map(([name, n]) => `${name} ${n}`).join(", ")}`,
      ]);
    }
    const s = e.startBreakdown;
    rows.push(["fixtures/e2e start-staging.sh, apps running (median)", `${e.startMedianMs} ms`, `a reload of every app, then the wait for health; min ${e.startMinMs} ms`]);
    rows.push(["  of which pm2 startOrReload", `${s.pm2StartOrReloadMs} ms`, `${share(s.pm2StartOrReloadMs, s.totalMs)} of ${s.totalMs} ms recorded; runs while the script watches the apps`]);
    rows.push(["  of which other PM2 CLI calls", `${s.pm2OtherCallsMs} ms`, list(s.pm2OtherCalls)]);
    rows.push(["  of which health wait after PM2 returned", `${s.healthWaitAfterPm2Ms} ms`, `${share(s.healthWaitAfterPm2Ms, s.totalMs)}; polled every ${POLL_INTERVAL_S} s`]);
    rows.push(["  of which the script's own work", `${s.ownWorkMs} ms`, `${share(s.ownWorkMs, s.totalMs)}; Node processes ${s.nodeProcesses}: helper ${list(s.helperRunsBySubcommand)}, PM2 CLI ${list(s.pm2CliCallsByCommand)}`]);
    rows.push(["  by section", "", list(s.sections)]);
    rows.push(["fixtures/e2e redeploy --force", `${e.forcedRedeployMs} ms`, "install and build run again"]);
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
