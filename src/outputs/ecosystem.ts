// ecosystem.<env>.config.js: a fixed preamble plus the apps as JSON data.
import type { OutputBuilder } from "./types.js";
import type { ResolvedApp } from "../model.js";
import type { ResolvedProject } from "../model.js";
import type { Renderer } from "../render.js";
import type { FileOutput } from "./types.js";
import { commentHeader, headerLines } from "./header.js";
import { pm2DeploySection } from "./pm2-deploy.js";

export const MODULE_MARKER_PATH = "package.json";

/**
 * package.json in the output folder: PM2 loads ecosystem files with require(), which fails for a
 * .js file under a package.json that says "type": "module". JSON has no comments, so the header
 * lines are the value of a "//" key.
 */
export function moduleMarkerOutput(project: ResolvedProject, renderer: Renderer): FileOutput {
  return { path: MODULE_MARKER_PATH, mode: 0o644, content: renderer.render("package.json", { header: headerLines(project).join(" ") }) };
}

/** The PM2 options of one app; paths that depend on the root are joined at load time. */
export function pm2Options(app: ResolvedApp, namespace: string): Record<string, unknown> {
  return {
    name: app.pm2Name,
    namespace,
    script: app.script,
    args: app.args,
    interpreter: app.interpreter,
    exec_mode: app.execMode,
    instances: app.instances,
    autorestart: true,
    // PM2 uses exp_backoff_restart_delay over restart_delay when both are set.
    ...(app.restartDelayMs !== undefined ? { restart_delay: app.restartDelayMs } : { exp_backoff_restart_delay: 100 }),
    kill_timeout: app.killTimeoutMs,
    listen_timeout: app.listenTimeoutMs,
    merge_logs: true,
    // PM2's time option replaces log_date_format with its own format.
    ...(app.logDateFormat !== undefined ? { log_date_format: app.logDateFormat } : { time: true }),
    ...(app.nodeArgs !== undefined ? { node_args: app.nodeArgs } : {}),
    ...(app.maxMemory !== undefined ? { max_memory_restart: app.maxMemory } : {}),
    ...(app.maxRestarts !== undefined ? { max_restarts: app.maxRestarts } : {}),
    ...(app.minUptimeMs !== undefined ? { min_uptime: app.minUptimeMs } : {}),
    ...(app.waitReady ? { wait_ready: true } : {}),
    ...(app.cronRestart !== undefined ? { cron_restart: app.cronRestart } : {}),
  };
}

export const ecosystemOutputs: OutputBuilder = (project, environment, renderer) => [
  {
    path: environment.files.ecosystem,
    mode: 0o644,
    content: renderer.render("ecosystem.config.js", {
      header: commentHeader(project, "//"),
      rootEnvVar: project.rootEnvVar,
      rootFromOutput: project.rootFromOutput,
      releases: environment.releases !== undefined,
      appsRoot: environment.appsRoot,
      envFile: environment.envFile ?? null,
      apps: environment.apps.map((app) => ({
        pm2: pm2Options(app, environment.namespace),
        cwd: app.cwd,
        outLog: app.outLog,
        errorLog: app.errorLog,
        env: Object.fromEntries(app.env),
        enforcedEnv: Object.fromEntries(app.enforcedEnv),
      })),
      deploy: environment.remote ? { [environment.name]: pm2DeploySection(environment.remote) } : null,
    }),
  },
];
