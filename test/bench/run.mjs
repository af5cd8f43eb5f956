#!/usr/bin/env node
// `npm run bench`: wall time and peak memory of the command line, printed as a table.
// Not a test: nothing here asserts on time. Run `npm run build` first (it measures dist/).
//
//   BENCH_RUNS=3 npm run bench          quick run (default 11 runs per figure; use >= 9 for figures)
//   BENCH_SCALE=10,100 npm run bench    app counts for the scale table (default 10,100,1000)
//   BENCH_SCALE=0 npm run bench         skip the scale table
//   BENCH_CLI=/path/to/bin.js           measure another build of the CLI (for before/after)
//   npm run bench -- --json             machine-readable figures instead of tables
//   BENCH_RSS=wrapper npm run bench     peak RSS from process.resourceUsage() instead of /usr/bin/time
//   node test/bench/run.mjs --manifest 1000 > deploygen.yaml   print a scale manifest (for profiling)
//   npm run bench -- --deploy           the deploy figures instead (test/bench/deploy.mjs; real PM2, minutes)
//   npm run bench -- --releases         figures of deploys with releases (test/bench/releases.mjs; real PM2, minutes)
//
// Every run of every command is a new process started the same way (spawnSync of node), and
// the runs of the commands compared with `node -e 0` are interleaved round by round so that
// load on the machine affects all of them alike. Figures are medians.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.resolve(process.env.BENCH_CLI ?? path.join(ROOT, "bin", "deploygen.js"));
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 11));
const SCALE = (process.env.BENCH_SCALE ?? "10,100,1000")
  .split(",")
  .map(Number)
  .filter((count) => Number.isInteger(count) && count > 0);
const JSON_OUTPUT = process.argv.includes("--json");
const FIXTURE = path.join(ROOT, "fixtures", "codeframe");
const RATIO_GOAL = 1.8;
const SCALE_GOAL_MS = 1000;
const TIME = "/usr/bin/time";
const HAS_GNU_TIME = process.env.BENCH_RSS !== "wrapper" && existsSync(TIME) && spawnSync(TIME, ["-f", "%M", "true"], { encoding: "utf8" }).status === 0;

const manifestFlag = process.argv.indexOf("--manifest");
if (manifestFlag > 0) {
  process.stdout.write(scaleManifest(Number(process.argv[manifestFlag + 1] ?? 100)));
  process.exit(0);
}

if (!existsSync(CLI)) fail(`${CLI} not found`);
if (!process.env.BENCH_CLI && !existsSync(path.join(ROOT, "dist", "cli.js"))) fail("dist/cli.js not found: run `npm run build` first");

// `npm run bench -- --releases`: the figures of deploys with releases, from test/bench/releases.mjs.
if (process.argv.includes("--releases")) {
  await import("./releases.mjs");
  process.exit(0);
}
// `npm run bench -- --deploy` (or BENCH_DEPLOY=1): the deploy figures instead, from test/bench/deploy.mjs.
if (process.argv.includes("--deploy") || process.env.BENCH_DEPLOY === "1") {
  await import("./deploy.mjs");
  process.exit(0);
}

// Whether V8 accepts the build's code cache here (a cache from another Node.js is ignored: slower, still correct).
const LOADER = path.resolve(path.dirname(CLI), "..", "dist", "run.cjs");
const codeCache = existsSync(LOADER)
  ? spawnSync(process.execPath, ["-e", `process.stdout.write(String(require(${JSON.stringify(LOADER)}).codeCacheUsed))`], { encoding: "utf8" }).stdout === "true"
    ? "used"
    : "NOT used (rebuild with this Node.js: npm run build)"
  : "none (not a bundled build)";

const work = mkdtempSync(path.join(tmpdir(), "deploygen-bench-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/** Runs node with args once; returns wall milliseconds (and peak RSS in KiB when asked). */
function run(args, { cwd = work, rss = false, expect = 0 } = {}) {
  let command = process.execPath;
  let argv = args;
  if (rss && HAS_GNU_TIME) {
    command = TIME;
    argv = ["-f", "deploygen-bench-rss=%M", process.execPath, ...args];
  } else if (rss) {
    // No GNU time: run the CLI inside a wrapper that reports its own peak RSS at exit.
    argv = ["--input-type=module", "-e", RSS_WRAPPER, "--", ...args];
  }
  const started = process.hrtime.bigint();
  const result = spawnSync(command, argv, { cwd, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== expect) fail(`node ${args.join(" ")} exited ${result.status} (expected ${expect}):\n${result.stderr || result.stdout}`);
  const match = /deploygen-bench-rss=(\d+)/.exec(result.stderr);
  return { ms, rssKiB: match ? Number(match[1]) : undefined };
}

const RSS_WRAPPER = `
const [script, ...rest] = process.argv.slice(1);
process.argv = [process.argv[0], script, ...rest];
process.on("exit", () => process.stderr.write("deploygen-bench-rss=" + process.resourceUsage().maxRSS + "\\n"));
if (script === "-e") eval(rest[0]); else await import(new URL(script, "file://" + process.cwd() + "/").href);
`;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** A fresh copy of fixtures/codeframe without generated output. */
function freshFixture(name) {
  const dir = path.join(work, name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(FIXTURE, dir, { recursive: true, filter: (source) => !/(^|[\\/])(deploy|node_modules|\.next|\.venv|logs|\.deploygen)$/.test(path.relative(FIXTURE, source)) });
  return dir;
}

function supports(command) {
  const help = spawnSync(process.execPath, [CLI, "--help"], { cwd: work, encoding: "utf8" }).stdout;
  return new RegExp(`^\\s*deploygen ${command}\\b`, "m").test(help);
}

// ---- startup: node -e 0 against each command, interleaved ----
const upToDate = freshFixture("up-to-date");
run([CLI, "generate", "-m", "deploygen.yaml", "--quiet"], { cwd: upToDate });
const hasCheck = supports("check");
const cases = [
  { name: "node -e 0", args: () => ["-e", "0"] },
  {
    name: "deploygen generate (cold, fresh copy)",
    prepare: () => freshFixture("cold"),
    args: () => [CLI, "generate", "-m", "deploygen.yaml"],
    cwd: () => path.join(work, "cold"),
    goal: RATIO_GOAL,
  },
  ...(hasCheck ? [{ name: "deploygen check (up to date)", args: () => [CLI, "check", "-m", "deploygen.yaml"], cwd: () => upToDate, goal: RATIO_GOAL }] : []),
  { name: "deploygen validate", args: () => [CLI, "validate", "-m", "deploygen.yaml"], cwd: () => upToDate },
  { name: "deploygen schema", args: () => [CLI, "schema"] },
];
const notes = [];
if (!hasCheck) notes.push("deploygen check: skipped (this build has no check command)");
for (const entry of cases) entry.times = [];
for (let round = 0; round < RUNS; round++) {
  for (const entry of cases) {
    entry.prepare?.();
    entry.times.push(run(entry.args(), { cwd: entry.cwd?.() ?? work }).ms);
  }
}
const baseline = median(cases[0].times);
const startup = cases.map((entry) => {
  const ms = median(entry.times);
  return { command: entry.name, medianMs: round1(ms), minMs: round1(Math.min(...entry.times)), ratio: round2(ms / baseline), goal: entry.goal };
});
const baselineRss = median(Array.from({ length: Math.min(RUNS, 5) }, () => run(["-e", "0"], { rss: true }).rssKiB ?? 0));
const generateRss = median(
  Array.from({ length: Math.min(RUNS, 5) }, () => {
    const dir = freshFixture("cold-rss");
    return run([CLI, "generate", "-m", "deploygen.yaml"], { cwd: dir, rss: true }).rssKiB ?? 0;
  }),
);

// ---- scale: N apps x 3 environments ----
const scale = [];
for (const apps of SCALE) {
  const dir = path.join(work, `scale-${apps}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "deploygen.yaml"), scaleManifest(apps));
  const times = [];
  const rss = [];
  let files = 0;
  for (let round = 0; round < RUNS; round++) {
    rmSync(path.join(dir, "deploy"), { recursive: true, force: true });
    const result = run([CLI, "generate", "-m", "deploygen.yaml", "--quiet"], { cwd: dir, rss: true });
    times.push(result.ms);
    if (result.rssKiB !== undefined) rss.push(result.rssKiB);
  }
  files = countFiles(path.join(dir, "deploy"));
  const outputBytes = sizeOf(path.join(dir, "deploy"));
  scale.push({ apps, environments: 3, files, outputKiB: Math.round(outputBytes / 1024), medianMs: round1(median(times)), peakRssMiB: rss.length ? round1(median(rss) / 1024) : undefined });
}
const slopes = [];
for (let index = 1; index < scale.length; index++) {
  const [a, b] = [scale[index - 1], scale[index]];
  slopes.push({ from: a.apps, to: b.apps, msPerApp: round3((b.medianMs - a.medianMs) / (b.apps - a.apps)), kibRssPerApp: a.peakRssMiB !== undefined && b.peakRssMiB !== undefined ? round1(((b.peakRssMiB - a.peakRssMiB) * 1024) / (b.apps - a.apps)) : undefined });
}

const report = {
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  cpu: `${cpus()[0]?.model ?? "?"} x ${cpus().length}`,
  loadAverage: loadavg().map(round2),
  runs: RUNS,
  cli: path.relative(ROOT, CLI) || CLI,
  codeCache,
  rssMeasuredWith: HAS_GNU_TIME ? "/usr/bin/time -f %M" : "process.resourceUsage().maxRSS in a wrapper",
  startup,
  peakRssMiB: { nodeE0: round1(baselineRss / 1024), generate: round1(generateRss / 1024) },
  scale,
  slopes,
  notes,
};

if (JSON_OUTPUT) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(`deploygen bench: node ${report.node}, ${report.platform}, ${report.cpu}, load ${report.loadAverage.join(" ")}`);
  console.log(`CLI ${report.cli} (code cache ${report.codeCache}); median of ${RUNS} run(s) each; peak RSS via ${report.rssMeasuredWith}\n`);
  table(
    ["command", "median ms", "min ms", "x node -e 0", "goal"],
    startup.map((row) => [row.command, row.medianMs.toFixed(1), row.minMs.toFixed(1), row.ratio.toFixed(2), row.goal ? `<= ${row.goal} ${row.ratio <= row.goal ? "met" : "MISSED"}` : ""]),
  );
  console.log(`peak RSS: node -e 0 ${report.peakRssMiB.nodeE0} MiB, deploygen generate ${report.peakRssMiB.generate} MiB`);
  for (const note of notes) console.log(`note: ${note}`);
  if (scale.length) {
    console.log("");
    table(
      ["apps x envs", "files", "output KiB", "median ms", "peak RSS MiB", "goal"],
      scale.map((row) => [
        `${row.apps} x ${row.environments}`,
        String(row.files),
        String(row.outputKiB),
        row.medianMs.toFixed(1),
        row.peakRssMiB === undefined ? "?" : row.peakRssMiB.toFixed(1),
        row.apps === 1000 ? `< ${SCALE_GOAL_MS} ms ${row.medianMs < SCALE_GOAL_MS ? "met" : "MISSED"}` : "",
      ]),
    );
    for (const slope of slopes)
      console.log(`slope ${slope.from} -> ${slope.to} apps: ${slope.msPerApp} ms per app (x 3 environments)${slope.kibRssPerApp === undefined ? "" : `, ${slope.kibRssPerApp} KiB RSS per app`}`);
  }
}

function table(header, rows) {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells) => `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((width, column) => (column === 0 ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`);
  for (const row of rows) console.log(line(row));
}

/** A manifest with `count` apps of every runtime in staging, production and qa; ports are unique per environment. */
function scaleManifest(count) {
  if (count > 9999) fail("BENCH_SCALE: at most 9999 apps (ports must stay below 65536)");
  const lines = ["version: 1", "project: bench", "output: deploy", "apps:"];
  const names = [];
  for (let index = 0; index < count; index++) {
    const name = `app-${String(index).padStart(4, "0")}`;
    names.push(name);
    const port = 20000 + index;
    switch (index % 4) {
      case 0:
        lines.push(
          `  ${name}:`,
          "    runtime: node",
          `    cwd: services/${name}`,
          "    script: dist/server.js",
          `    port: ${port}`,
          `    env: { SERVICE_NAME: ${name}, LOG_LEVEL: info }`,
          "    install: [npm ci]",
          "    build: [npm run build]",
          "    verify: { files: [dist/server.js] }",
          "    health: { path: /health, timeoutSeconds: 30 }",
        );
        break;
      case 1:
        lines.push(
          `  ${name}:`,
          "    runtime: python",
          `    cwd: services/${name}`,
          "    script: .venv/bin/python",
          `    args: [-m, uvicorn, "app:app", --host, 0.0.0.0, --port, "{port}"]`,
          `    port: ${port}`,
          "    env: { PYTHONPATH: . }",
          "    install: [uv sync --frozen]",
          "    verify: { files: [.venv/bin/python], commands: [\".venv/bin/python -c 'import app'\"] }",
          "    health: { path: /health }",
        );
        break;
      case 2:
        lines.push(`  ${name}:`, "    runtime: nextjs", `    cwd: web/${name}`, `    port: ${port}`, "    install: [npm ci]", "    build: [npm run build]", "    health: { path: / }");
        break;
      default:
        lines.push(`  ${name}:`, "    runtime: command", `    cwd: workers/${name}`, "    script: bin/worker", "    args: [--queue, default]", "    install: [make]");
    }
  }
  lines.push("environments:");
  const environments = [
    { name: "staging", base: 20000, extra: ["    exampleFile: .env.staging.example", "    systemd: { user: bench }"] },
    { name: "production", base: 30000, extra: ["    systemd: { user: bench }"] },
    { name: "qa", base: 40000, extra: ["    pm2Home: .pm2"] },
  ];
  for (const environment of environments) {
    lines.push(`  ${environment.name}:`, `    envFile: .env.${environment.name}`, "    requiredEnv: [API_KEY]", `    env: { BENCH_ENV: ${environment.name} }`, ...environment.extra);
    if (environment.base !== 20000) {
      lines.push("    apps:");
      names.forEach((name, index) => {
        if (index % 4 === 3) return; // command apps have no port
        lines.push(`      ${name}: { port: ${environment.base + index}${index % 4 === 0 && environment.name === "production" ? ", instances: 2" : ""} }`);
      });
    }
  }
  return `${lines.join("\n")}\n`;
}

function countFiles(dir) {
  const result = spawnSync("find", [dir, "-type", "f"], { encoding: "utf8" });
  return result.stdout.split("\n").filter(Boolean).length;
}

function sizeOf(dir) {
  const result = spawnSync("find", [dir, "-type", "f", "-printf", "%s\\n"], { encoding: "utf8" });
  return result.stdout
    .split("\n")
    .filter(Boolean)
    .reduce((sum, size) => sum + Number(size), 0);
}

function round1(value) {
  return Math.round(value * 10) / 10;
}
function round2(value) {
  return Math.round(value * 100) / 100;
}
function round3(value) {
  return Math.round(value * 1000) / 1000;
}

function fail(message) {
  console.error(`bench: ${message}`);
  process.exit(1);
}

