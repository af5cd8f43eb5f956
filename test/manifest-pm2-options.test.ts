// The manifest's PM2 process options (maxMemory, maxRestarts, minUptimeSeconds, restartDelaySeconds,
// nodeArgs, interpreterArgs, logDateFormat, instances: max, execMode, waitReady, cronRestart) as they
// reach the generated ecosystem files: each becomes the PM2 option of the same meaning, overridable
// per environment, and every generated app passes PM2's own option validation.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateFixtureCopy, generateIn } from "./helpers/generate.js";
import { validatePm2Apps } from "./pm2/validate-apps.js";

type Pm2App = Record<string, unknown> & { name: string };

const pm2Config = createRequire(import.meta.url)("pm2/lib/tools/Config.js") as { validateJSON(app: unknown): { errors: string[] } };

/** The apps of a generated ecosystem file, loaded by Node as PM2 loads it. */
function loadApps(file: string): Pm2App[] {
  const json = execFileSync(process.execPath, ["-e", "process.stdout.write(JSON.stringify(require(process.argv[1]).apps))", file], { encoding: "utf8" });
  return JSON.parse(json) as Pm2App[];
}

const byName = (apps: Pm2App[], name: string): Pm2App => {
  const app = apps.find((candidate) => candidate.name === name);
  if (!app) throw new Error(`no app ${name} in ${apps.map((candidate) => candidate.name).join(", ")}`);
  return app;
};

describe("PM2 process options from the manifest (fixtures/node-api, fixtures/python-api)", async () => {
  const node = await generateFixtureCopy("node-api", "dg-pm2-options-");
  const python = await generateFixtureCopy("python-api", "dg-pm2-options-");
  const staging = loadApps(path.join(node.outputDir, "ecosystem.staging.config.js"));
  const production = loadApps(path.join(node.outputDir, "ecosystem.production.config.js"));
  const pythonApps = loadApps(path.join(python.outputDir, "ecosystem.production.config.js"));
  const all = [...staging, ...production, ...pythonApps];

  it("every generated app passes PM2's own validation and the committed PM2 option schema", () => {
    expect(validatePm2Apps(all)).toEqual({ ok: true });
    for (const app of all) expect(pm2Config.validateJSON(app).errors, app.name).toEqual([]);
  });

  it("maxMemory and nodeArgs become max_memory_restart and node_args; node flags stay out of args", () => {
    const api = byName(staging, "node-api-staging-api");
    expect(api).toMatchObject({ max_memory_restart: "512M", node_args: ["--enable-source-maps"], args: [] });
  });

  it("instances: max in one environment is PM2's 0 (one per CPU) in cluster mode; the other keeps one fork", () => {
    expect(byName(production, "node-api-production-api")).toMatchObject({ instances: 0, exec_mode: "cluster" });
    expect(byName(staging, "node-api-staging-api")).toMatchObject({ instances: 1, exec_mode: "fork" });
  });

  it("restartDelaySeconds replaces the exponential back-off (PM2 would prefer the back-off when both are set)", () => {
    const worker = byName(staging, "node-api-staging-worker");
    expect(worker.restart_delay).toBe(5000);
    expect(worker).not.toHaveProperty("exp_backoff_restart_delay");
    expect(byName(staging, "node-api-staging-api").exp_backoff_restart_delay).toBe(100);
  });

  it("logDateFormat replaces time: true (PM2's time option would overwrite the format)", () => {
    const worker = byName(staging, "node-api-staging-worker");
    expect(worker.log_date_format).toBe("YYYY-MM-DD HH:mm:ss.SSS Z");
    expect(worker).not.toHaveProperty("time");
    expect(byName(staging, "node-api-staging-api").time).toBe(true);
  });

  it("cronRestart becomes cron_restart", () => {
    expect(byName(staging, "node-api-staging-worker").cron_restart).toBe("0 4 * * *");
  });

  it("python: interpreterArgs go before args (the script is the interpreter), max_restarts and min_uptime in ms", () => {
    const api = byName(pythonApps, "python-api-production-api");
    expect(api.args).toEqual(["-X", "utf8", "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "8000", "--workers", "2"]);
    expect(api).toMatchObject({ interpreter: "none", max_memory_restart: "1G", max_restarts: 10, min_uptime: 5000 });
    expect(api).not.toHaveProperty("node_args");
  });

  it("apps without these fields get none of the options (PM2's defaults)", () => {
    const worker = byName(production, "node-api-production-worker");
    for (const option of ["max_memory_restart", "max_restarts", "min_uptime", "node_args", "wait_ready"]) expect(worker).not.toHaveProperty(option);
  });
});

describe("per-environment overrides and waitReady", () => {
  it("environments.E.apps.X overrides each option; execMode cluster keeps one instance in cluster mode; waitReady keeps listen_timeout at the health timeout", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "dg-pm2-overrides-"));
    await writeFile(
      path.join(root, "deploygen.yaml"),
      [
        "version: 1",
        "project: shop",
        "apps:",
        "  api:",
        "    runtime: node",
        "    script: server.js",
        "    port: 18080",
        "    health: { path: /, timeoutSeconds: 20 }",
        "    maxMemory: 256M",
        "    waitReady: true",
        "environments:",
        "  staging: {}",
        "  production:",
        "    apps:",
        "      api: { execMode: cluster, maxMemory: 2G, maxRestarts: 3, minUptimeSeconds: 2, restartDelaySeconds: 0.25, nodeArgs: [--max-old-space-size=1536], logDateFormat: HH:mm, cronRestart: '*/30 * * * *', waitReady: false }",
        "",
      ].join("\n"),
    );
    const { outputDir } = await generateIn(root);
    const staging = byName(loadApps(path.join(outputDir, "ecosystem.staging.config.js")), "shop-staging-api");
    const production = byName(loadApps(path.join(outputDir, "ecosystem.production.config.js")), "shop-production-api");
    expect(staging).toMatchObject({ max_memory_restart: "256M", wait_ready: true, listen_timeout: 20000, exec_mode: "fork", instances: 1 });
    expect(production).toMatchObject({
      exec_mode: "cluster",
      instances: 1,
      max_memory_restart: "2G",
      max_restarts: 3,
      min_uptime: 2000,
      restart_delay: 250,
      node_args: ["--max-old-space-size=1536"],
      log_date_format: "HH:mm",
      cron_restart: "*/30 * * * *",
    });
    expect(production).not.toHaveProperty("wait_ready");
    expect(validatePm2Apps([staging, production])).toEqual({ ok: true });
  });
});
