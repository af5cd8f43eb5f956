// The shell scripts: one shared function library and five per-environment scripts.
import path from "node:path";
import type { OutputBuilder, FileOutput } from "./types.js";
import type { ResolvedProject, ResolvedEnvironment, ResolvedApp } from "../model.js";
import type { Renderer } from "../render.js";
import { commentHeader } from "./header.js";

const SCRIPTS_DIR = "scripts";

function appView(app: ResolvedApp) {
  const inCwd = (file: string) => path.posix.join(app.cwd, file);
  return {
    key: app.key,
    pm2Name: app.pm2Name,
    shellName: app.key.replace(/-/g, "_"),
    cwd: app.cwd,
    port: app.port ?? null,
    portText: app.port === undefined ? "" : String(app.port),
    install: app.install,
    build: app.build,
    // What decides whether an unchanged install or build is skipped (dg_cached_step in the library).
    hasSteps: app.install.length > 0 || app.build.length > 0,
    installText: app.install.join("\n"),
    buildText: app.build.join("\n"),
    buildInputsKind: app.buildInputs === undefined ? "tree" : "files",
    buildInputs: app.buildInputs ?? [],
    stepOutputs: app.stepOutputs.map(inCwd),
    installState: app.installStateFile,
    buildState: app.buildStateFile,
    buildStateDeferred: app.buildOutputDir !== undefined,
    verifyCommands: app.verifyCommands,
    verifyFiles: app.verifyFiles.map((file) => ({
      path: inCwd(file),
      missingMessage: `${app.key}: ${inCwd(file)} is missing after install and build; nothing was restarted, the running version keeps serving`,
      fix: `check the install and build steps of ${app.key} in the manifest (run them by hand in ${app.cwd} to see why ${file} is not produced)`,
    })),
    health: app.health ? { url: app.health.url, timeoutSeconds: app.health.timeoutSeconds, timeoutText: String(app.health.timeoutSeconds) } : null,
    errorLog: app.errorLog,
    installLabel: `install ${app.key} (in ${app.cwd})`,
    installFix: `fix the install error above, or the install commands of ${app.key} in the manifest, then deploy again`,
    buildLabel: `build ${app.key} (in ${app.cwd})`,
    buildFix: `fix the build error above, then deploy again (the previous build is still in place)`,
    verifyLabel: `verify ${app.key}`,
    verifyFix: `fix what the verify command of ${app.key} reports (usually a missing dependency: check the install step), then deploy again (with --force to redo install and build even when their inputs are unchanged)`,
  };
}

export function scriptView(project: ResolvedProject, environment: ResolvedEnvironment) {
  const fromScripts = (file: string) => path.posix.relative(SCRIPTS_DIR, file);
  const scriptName = (file: string) => path.posix.basename(file);
  return {
    header: commentHeader(project, "#"),
    project: project.project,
    environment: environment.name,
    namespace: environment.namespace,
    rootEnvVar: project.rootEnvVar,
    rootFromScripts: project.rootFromScripts,
    ecosystemPath: path.posix.join(project.output, environment.files.ecosystem),
    unitPrefix: environment.unitPrefix,
    healthUnitPrefix: environment.healthUnitPrefix,
    unitTemplate: environment.unitTemplate,
    healthUnitTemplate: environment.healthUnitTemplate,
    healthTimerTemplate: environment.healthTimerTemplate,
    unitFromScripts: fromScripts(environment.files.unit),
    healthUnitFromScripts: fromScripts(environment.files.healthUnit),
    healthTimerFromScripts: fromScripts(environment.files.healthTimer),
    user: environment.user,
    envFile: environment.envFile ?? null,
    envFileText: environment.envFile ?? "",
    exampleFile: environment.exampleFile ?? null,
    requiredEnv: environment.requiredEnv,
    alertWebhookEnv: environment.alertWebhookEnv ?? null,
    pm2Home: { kind: environment.pm2Home.kind, value: environment.pm2Home.kind === "default" ? "" : environment.pm2Home.path },
    deployScriptName: scriptName(environment.files.deploy),
    startScriptName: scriptName(environment.files.start),
    stopScriptName: scriptName(environment.files.stop),
    healthCheckScriptName: scriptName(environment.files.healthCheck),
    installSystemdScriptName: scriptName(environment.files.installSystemd),
    buildOutputs: environment.apps.filter((app) => app.buildOutputDir !== undefined && app.build.length > 0).map((app) => path.posix.join(app.cwd, app.buildOutputDir as string)),
    apps: environment.apps.map(appView),
  };
}

export const LIBRARY_PATH = `${SCRIPTS_DIR}/deploygen-lib.sh`;

/** The function library holds no environment data: it is generated once for all environments. */
export function libraryOutput(project: ResolvedProject, renderer: Renderer): FileOutput {
  return { path: LIBRARY_PATH, mode: 0o755, content: renderer.render("scripts/deploygen-lib.sh", { header: commentHeader(project, "#") }) };
}

export const scriptOutputs: OutputBuilder = (project, environment, renderer) => {
  const view = scriptView(project, environment);
  const files = environment.files;
  return [
    { path: files.deploy, mode: 0o755, content: renderer.render("scripts/deploy.sh", view) },
    { path: files.start, mode: 0o755, content: renderer.render("scripts/start.sh", view) },
    { path: files.stop, mode: 0o755, content: renderer.render("scripts/stop.sh", view) },
    { path: files.healthCheck, mode: 0o755, content: renderer.render("scripts/health-check.sh", view) },
    { path: files.installSystemd, mode: 0o755, content: renderer.render("scripts/install-systemd.sh", view) },
  ];
};
