// The shell scripts: a fixed function library and Node.js helper shared by every environment, and
// per environment its data (config-<env>.sh) plus one short script per command.
import path from "node:path";
import { readFileSync } from "node:fs";
import type { OutputBuilder, FileOutput } from "./types.js";
import type { ResolvedProject, ResolvedEnvironment, ResolvedApp } from "../model.js";
import { TEMPLATES_DIR, type Renderer } from "../render.js";
import { commentHeader } from "./header.js";
import { SCRIPTS_DIR, SCRIPTS_HELPER, SCRIPTS_LIBRARY, LOGS_DIR } from "../names.js";
import { fleetView } from "./fleet.js";

const lines = (list: string[]) => list.join("\n");

function appView(app: ResolvedApp) {
  return {
    key: app.key,
    pm2Name: app.pm2Name,
    shellName: app.key.replace(/-/g, "_"),
    cwd: app.cwd,
    port: app.port ?? null,
    health: app.health ?? null,
    // The app's path lists, each one newline-separated value of an associative array of the library.
    paths: (
      [
        [`DG_VERIFY_FILES[${app.key}]`, app.verifyFiles],
        [`DG_OUTPUTS_OF[${app.key}.install]`, app.install.length > 0 ? app.installOutputs : []],
        [`DG_OUTPUTS_OF[${app.key}.build]`, app.build.length > 0 ? app.buildOutputs : []],
        [`DG_BUILD_INPUTS[${app.key}]`, app.buildInputs ?? []],
      ] as const
    )
      .filter(([, list]) => list.length > 0)
      .map(([name, list]) => ({ name, value: lines([...list]) })),
    install: app.install,
    build: app.build,
    verifyCommands: app.verifyCommands,
  };
}

/** Paths a release never copies (relative to the root): env file, build and install outputs, shared folders. */
function releaseExcludes(environment: ResolvedEnvironment): string[] {
  const inApps = environment.apps.flatMap((app) => [...app.installOutputs, ...app.buildOutputs].map((file) => path.posix.join(app.cwd, file)));
  return [...new Set([...(environment.envFile ? [environment.envFile] : []), LOGS_DIR, ...inApps, ...(environment.releases?.shared ?? [])])];
}

export function configView(project: ResolvedProject, environment: ResolvedEnvironment) {
  const fromScripts = (file: string) => path.posix.relative(SCRIPTS_DIR, file);
  const files = environment.files;
  return {
    header: commentHeader(project, "#"),
    project: project.project,
    environment: environment.name,
    namespace: environment.namespace,
    user: environment.user,
    rootEnvVar: project.rootEnvVar,
    rootFromScripts: project.rootFromScripts,
    ecosystemPath: path.posix.join(project.output, files.ecosystem),
    pm2Home: { kind: environment.pm2Home.kind, value: environment.pm2Home.kind === "default" ? "" : environment.pm2Home.path },
    maxHealthTimeout: String(Math.max(0, ...environment.apps.map((app) => app.health?.timeoutSeconds ?? 0))),
    envFile: environment.envFile ?? "",
    exampleFile: environment.exampleFile ?? "",
    requiredEnv: environment.requiredEnv,
    alertWebhookEnv: environment.alertWebhookEnv ?? "",
    minFreeDiskMB: String(environment.minFreeDiskMB),
    releasesKeep: String(environment.releases?.keep ?? 0),
    shared: environment.releases?.shared ?? [],
    releaseExcludes: releaseExcludes(environment),
    unitPrefix: environment.unitPrefix,
    unitFiles: [files.unit, files.healthUnit, files.healthTimer].map(fromScripts),
    logrotate: fromScripts(files.logrotate),
    scripts: Object.fromEntries(
      (["deploy", "start", "stop", "rollback"] as const).map((name) => [name, path.posix.basename(files[name])]).concat([["install-systemd", path.posix.basename(files.installSystemd)]]),
    ),
    apps: environment.apps.map(appView),
    fleet: fleetView(project, environment),
  };
}

/** One short script per command: its data comes from config-<env>.sh, its logic from the library. */
const COMMANDS = [
  { file: "deploy", fn: "dg_deploy" },
  { file: "start", fn: "dg_start" },
  { file: "stop", fn: "dg_stop" },
  { file: "healthCheck", fn: "dg_health_check" },
  { file: "installSystemd", fn: "dg_install_systemd" },
  { file: "rollback", fn: "dg_rollback" },
] as const;

/** The fixed files every environment shares: the library and the Node.js helper, behind the header. */
export function sharedScriptOutputs(project: ResolvedProject): FileOutput[] {
  const fixed = (name: string, target: string, shebang: string, comment: "#" | "//"): FileOutput => ({
    path: target,
    mode: 0o755,
    content: `${shebang}\n${commentHeader(project, comment)}\n${readFileSync(path.join(TEMPLATES_DIR, "scripts", name), "utf8")}`,
  });
  return [fixed("deploygen-lib.sh", SCRIPTS_LIBRARY, "# shellcheck shell=bash", "#"), fixed("deploygen-helper.cjs", SCRIPTS_HELPER, "#!/usr/bin/env node", "//")];
}

export const scriptOutputs: OutputBuilder = (project, environment, renderer: Renderer) => {
  const view = configView(project, environment);
  const configName = path.posix.basename(environment.files.config);
  const commands = COMMANDS.filter((command) => command.file !== "rollback" || environment.releases !== undefined);
  return [
    { path: environment.files.config, mode: 0o644, content: renderer.render("scripts/config.sh", view) },
    ...commands.map((command) => ({
      path: environment.files[command.file],
      mode: 0o755,
      content: renderer.render("scripts/command.sh", { header: view.header, configName, functionName: command.fn }),
    })),
  ];
};
