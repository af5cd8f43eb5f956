// The resolver: the one place that derives names, paths, ports and environment for each
// environment. Templates and output modules only read this model.
import path from "node:path";
import { resolveRemoteDeploy, type ResolvedRemoteDeploy } from "./remote-deploy.js";
import type { Manifest, App, Runtime } from "./manifest/schema.js";
import { effectiveApp } from "./effective-app.js";
import { SCRIPTS_LIBRARY, appLogFiles, environmentFiles, environmentStateDir, namespaceName, pm2AppName, projectRootVar, unitNames, type EnvironmentFiles } from "./names.js";

export { environmentFiles, environmentStateDir, projectEnvVar, type EnvironmentFiles } from "./names.js";

export const DEFAULT_HOST = "127.0.0.1";
export const HEALTH_PROBE_HOST = "127.0.0.1";
/** Margin added to the sum of app timeouts so systemd never kills a start or stop that is still progressing. */
const SYSTEMD_TIMEOUT_MARGIN_SECONDS = 30;

export interface ResolvedHealth {
  url: string;
  timeoutSeconds: number;
}

export interface ResolvedApp {
  key: string;
  pm2Name: string;
  runtime: Runtime;
  /** Project-relative working directory (POSIX, normalised; "." for the root). */
  cwd: string;
  /** Relative to cwd, or absolute for a command runtime. */
  script: string;
  args: string[];
  port?: number;
  host?: string;
  /** Committed, non-secret environment (env file values are added on the host at run time). */
  env: [string, string][];
  /** Variables deploygen sets last, over the env file (PORT, HOST, NODE_ENV where implied). */
  enforcedEnv: [string, string][];
  install: string[];
  build: string[];
  /** Files the build reads, relative to cwd (paths or find -path patterns); undefined: the whole cwd tree. */
  buildInputs?: string[];
  /** What the install writes (relative to cwd): reused by a release whose install inputs are unchanged. */
  installOutputs: string[];
  /** What the build writes (relative to cwd): kept aside during an in-place build; reused by an unchanged release. */
  buildOutputs: string[];
  verifyFiles: string[];
  verifyCommands: string[];
  health?: ResolvedHealth;
  interpreter: "none" | "node";
  execMode: "fork" | "cluster";
  /** As PM2 takes it: a count, 0 for one per CPU of the host, -N for one per CPU but N (at least one). */
  instances: number;
  killTimeoutMs: number;
  listenTimeoutMs: number;
  /** PM2 process options; absent: PM2's default. */
  maxMemory?: string;
  maxRestarts?: number;
  minUptimeMs?: number;
  /** A fixed restart delay; absent: exponential back-off. */
  restartDelayMs?: number;
  nodeArgs?: string[];
  logDateFormat?: string;
  waitReady: boolean;
  cronRestart?: string;
  outLog: string;
  errorLog: string;
}

export interface ResolvedEnvironment {
  name: string;
  namespace: string;
  /** systemd template unit (instance = systemd-escape --path of the project root). */
  unitTemplate: string;
  unitPrefix: string;
  healthUnitPrefix: string;
  healthUnitTemplate: string;
  healthTimerTemplate: string;
  envFile?: string;
  exampleFile?: string;
  requiredEnv: string[];
  /** null: ~/.pm2 of the service user. */
  pm2Home: { kind: "default" } | { kind: "project"; path: string } | { kind: "absolute"; path: string };
  user: string;
  group?: string;
  alertWebhookEnv?: string;
  healthIntervalSeconds: number;
  /** Project-relative state folder of the deploy: lock, step records, releases. */
  stateDir: string;
  /** Immutable releases with automatic rollback; absent: deployed in place. */
  releases?: { keep: number; shared: string[] };
  /** Project-relative folder the apps' cwd are under: "." in place, the stable "current" link with releases. */
  appsRoot: string;
  minFreeDiskMB: number;
  /** Rotation of the apps' logs (logrotate size and rotate count). */
  logs: { maxSize: string; keep: number };
  startTimeoutSeconds: number;
  stopTimeoutSeconds: number;
  files: EnvironmentFiles;
  apps: ResolvedApp[];
  /** Several hosts: the settings of PM2's own `pm2 deploy` (absent without hosts). */
  remote?: ResolvedRemoteDeploy;
}

export interface ResolvedProject {
  project: string;
  /** Manifest file name as written in headers (relative to the project root). */
  manifestName: string;
  /** Output folder relative to the project root. */
  output: string;
  /** From the output folder back to the project root, e.g. "..". */
  rootFromOutput: string;
  /** From the scripts folder back to the project root, e.g. "../..". */
  rootFromScripts: string;
  rootEnvVar: string;
  scriptsLib: string;
  environments: ResolvedEnvironment[];
}

const byName = <T>(entries: [string, T][]): [string, T][] => [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const sortedEntries = (record: Record<string, string>): [string, string][] => byName(Object.entries(record));

function posixNormalize(value: string): string {
  const normalized = path.posix.normalize(value).replace(/\/+$/, "");
  return normalized === "" ? "." : normalized;
}

/** What an install writes: node_modules for Node.js apps, the virtualenv a Python app runs from. */
function installOutputsOf(runtime: Runtime, script: string): string[] {
  if (runtime === "node" || runtime === "nextjs") return ["node_modules"];
  const venv = /^(.+)\/bin\/python[0-9.]*$/.exec(posixNormalize(script));
  return runtime === "python" && venv && !path.posix.isAbsolute(venv[1]!) ? [venv[1]!] : [];
}

/** A build input as the deploy script's find -path test takes it ("./" dropped; "." is everything). */
function buildInputPattern(input: string): string {
  const normalized = posixNormalize(input.replace(/^(\.\/)+/, ""));
  return normalized === "." ? "*" : normalized;
}

function resolveApp(manifest: Manifest, envName: string, key: string, declared: App): ResolvedApp {
  const app = effectiveApp(declared, manifest.environments[envName]!, key);
  const port = app.port;
  const host = port === undefined ? undefined : app.host ?? DEFAULT_HOST;
  const substitute = (arg: string) => (port === undefined ? arg : arg.split("{port}").join(String(port)));
  const isNext = app.runtime === "nextjs";
  const args = isNext ? ["start", "-H", host ?? DEFAULT_HOST, "-p", String(port)] : [...(app.runtime === "python" ? app.interpreterArgs ?? [] : []), ...app.args.map(substitute)];
  const instances = app.instances === "max" ? 0 : app.instances ?? 1;
  const clusterCapable = app.runtime === "node" || app.runtime === "nextjs";
  const enforcedEnv: [string, string][] = [];
  if (port !== undefined) enforcedEnv.push(["HOST", host ?? DEFAULT_HOST], ["PORT", String(port)]);
  if (isNext) enforcedEnv.push(["NODE_ENV", "production"]);
  const environment = manifest.environments[envName]!;
  const committed = { ...environment.env, ...app.env };
  for (const [name] of enforcedEnv) delete committed[name];
  const pm2Name = pm2AppName(manifest.project, envName, key);
  const logs = appLogFiles(pm2Name);
  const script = isNext ? "node_modules/.bin/next" : (app.script as string);
  const verifyFiles = [...(app.verify?.files ?? []), ...(isNext ? [".next/BUILD_ID"] : [])];
  return {
    key,
    pm2Name,
    runtime: app.runtime,
    cwd: posixNormalize(app.cwd),
    script,
    args,
    ...(port !== undefined ? { port, host } : {}),
    env: sortedEntries(committed),
    enforcedEnv,
    install: app.install,
    build: app.build,
    ...(app.buildInputs !== undefined ? { buildInputs: app.buildInputs.map(buildInputPattern) } : {}),
    installOutputs: installOutputsOf(app.runtime, script),
    buildOutputs: (app.buildOutputs ?? (isNext ? [".next"] : [])).map(posixNormalize),
    verifyFiles,
    verifyCommands: app.verify?.commands ?? [],
    ...(app.health && port !== undefined
      ? { health: { url: `http://${HEALTH_PROBE_HOST}:${port}${app.health.path}`, timeoutSeconds: app.health.timeoutSeconds } }
      : {}),
    interpreter: app.runtime === "node" || app.runtime === "nextjs" ? "node" : "none",
    execMode: clusterCapable && (app.execMode === "cluster" || (app.execMode === undefined && instances !== 1)) ? "cluster" : "fork",
    instances,
    killTimeoutMs: app.stopTimeoutSeconds * 1000,
    listenTimeoutMs: (app.health?.timeoutSeconds ?? 60) * 1000,
    ...(app.maxMemory !== undefined ? { maxMemory: app.maxMemory } : {}),
    ...(app.maxRestarts !== undefined ? { maxRestarts: app.maxRestarts } : {}),
    ...(app.minUptimeSeconds !== undefined ? { minUptimeMs: app.minUptimeSeconds * 1000 } : {}),
    ...(app.restartDelaySeconds !== undefined ? { restartDelayMs: Math.round(app.restartDelaySeconds * 1000) } : {}),
    ...(app.nodeArgs !== undefined && clusterCapable ? { nodeArgs: app.nodeArgs.map(substitute) } : {}),
    ...(app.logDateFormat !== undefined ? { logDateFormat: app.logDateFormat } : {}),
    waitReady: app.waitReady === true,
    ...(app.cronRestart !== undefined ? { cronRestart: app.cronRestart.trim().split(/\s+/).join(" ") } : {}),
    outLog: logs.out,
    errorLog: logs.err,
  };
}

export function resolveProject(manifest: Manifest, manifestName: string): ResolvedProject {
  const output = posixNormalize(manifest.output);
  const depth = output.split("/").length;
  const rootFromOutput = Array.from({ length: depth }, () => "..").join("/");
  const environments = byName(Object.entries(manifest.environments)).map(([envName, environment]): ResolvedEnvironment => {
    const apps = byName(Object.entries(manifest.apps)).map(([key, app]) => resolveApp(manifest, envName, key, app));
    const healthBudget = apps.reduce((sum, app) => sum + (app.health?.timeoutSeconds ?? 0), 0);
    const stopBudget = apps.reduce((sum, app) => sum + app.killTimeoutMs / 1000, 0);
    const pm2Home = environment.pm2Home;
    const remote = resolveRemoteDeploy(
      environment,
      environment.envFile === undefined ? undefined : posixNormalize(environment.envFile),
      `${output}/${environmentFiles(envName, manifest.project).deploy}`,
    );
    return {
      name: envName,
      namespace: namespaceName(manifest.project, envName),
      ...unitNames(manifest.project, envName),
      ...(environment.envFile !== undefined ? { envFile: posixNormalize(environment.envFile) } : {}),
      ...(environment.exampleFile !== undefined ? { exampleFile: posixNormalize(environment.exampleFile) } : {}),
      requiredEnv: environment.requiredEnv,
      pm2Home:
        pm2Home === undefined
          ? { kind: "default" }
          : path.posix.isAbsolute(pm2Home)
            ? { kind: "absolute", path: posixNormalize(pm2Home) }
            : { kind: "project", path: posixNormalize(pm2Home) },
      user: environment.systemd?.user ?? manifest.project,
      ...(environment.systemd?.group !== undefined ? { group: environment.systemd.group } : {}),
      ...(environment.alerts ? { alertWebhookEnv: environment.alerts.webhookEnv } : {}),
      healthIntervalSeconds: environment.healthIntervalSeconds,
      stateDir: environmentStateDir(envName),
      ...(environment.releases ? { releases: { keep: environment.releases.keep, shared: environment.releases.shared.map(posixNormalize) } } : {}),
      appsRoot: environment.releases ? `${environmentStateDir(envName)}/current` : ".",
      minFreeDiskMB: environment.minFreeDiskMB,
      logs: { maxSize: environment.logs.maxSize, keep: environment.logs.keep },
      startTimeoutSeconds: healthBudget + SYSTEMD_TIMEOUT_MARGIN_SECONDS + 60,
      stopTimeoutSeconds: stopBudget + SYSTEMD_TIMEOUT_MARGIN_SECONDS,
      files: environmentFiles(envName, manifest.project),
      apps,
      ...(remote ? { remote } : {}),
    };
  });
  return {
    project: manifest.project,
    manifestName,
    output,
    rootFromOutput,
    rootFromScripts: `${rootFromOutput}/..`,
    rootEnvVar: projectRootVar(manifest.project),
    scriptsLib: SCRIPTS_LIBRARY,
    environments,
  };
}
