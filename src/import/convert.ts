// From what a PM2 ecosystem file or Procfile says to a deploygen manifest, fixing on the way the
// defects such files typically have (those of seed/staging-deployment-review.md above all) and
// writing down every fix, every guess and every option that has no deploygen equivalent.
// Pure except for `probe`, which looks for lockfiles to choose install commands.
import path from "node:path";
import { NAME_PATTERN, ENV_KEY_PATTERN, STANDARD_NODE_ENVS, type Runtime } from "../manifest/schema.js";
import { namespaceName, normaliseName, pm2AppName, projectEnvNameVar, projectRootVar, LOGS_DIR } from "../names.js";
import type { SourceFile, SourceProcess } from "./sources.js";
import type { EvaluatedEnvironment } from "./evaluate.js";
import { mentionsPort, portPlaceholder } from "./shell-words.js";
import { cronProblem } from "../manifest/rules.js";

export interface ImportNote {
  /** fixed: a defect of the source that the manifest no longer has. assumed: a guess to check. not-imported: no deploygen equivalent. */
  kind: "fixed" | "assumed" | "not-imported";
  text: string;
}

/** Read-only look at the project on this machine (absent when the source's paths are not here). */
export interface Probe {
  exists(absolutePath: string): boolean;
  readText(absolutePath: string): string | undefined;
}

export interface ConvertOptions {
  /** Name of the source file, for messages. */
  sourceName: string;
  /** Absolute folder of the source file (PM2 resolves relative paths against it). */
  sourceDir: string;
  project?: string;
  environment?: string;
  /** Absolute project root, overriding the derivation. */
  root?: string;
  probe: Probe;
}

export type RootOrigin = "option" | "absolute-paths" | "source-folder";

export interface Conversion {
  manifest: ManifestDraft;
  notes: ImportNote[];
  project: string;
  environments: string[];
  root: string;
  rootOrigin: RootOrigin;
}

export interface AppDraft {
  runtime: Runtime;
  cwd: string;
  script?: string;
  args?: string[];
  port?: number;
  host?: string;
  env?: Record<string, string>;
  install?: string[];
  build?: string[];
  verify?: { files?: string[]; commands?: string[] };
  health?: { path: string; timeoutSeconds?: number };
  instances?: number | "max";
  execMode?: "cluster";
  stopTimeoutSeconds?: number;
  maxMemory?: string;
  maxRestarts?: number;
  minUptimeSeconds?: number;
  restartDelaySeconds?: number;
  nodeArgs?: string[];
  interpreterArgs?: string[];
  logDateFormat?: string;
  waitReady?: boolean;
  cronRestart?: string;
}

export interface EnvironmentDraft {
  envFile?: string;
  exampleFile?: string;
  requiredEnv?: string[];
  env?: Record<string, string>;
  apps?: Record<string, { port?: number; host?: string; env?: Record<string, string> }>;
  systemd?: { user: string };
}

export interface ManifestDraft {
  version: 1;
  project: string;
  output: string;
  apps: Record<string, AppDraft>;
  environments: Record<string, EnvironmentDraft>;
}

const PYTHON_TOOLS = new Set(["uvicorn", "gunicorn", "hypercorn", "daphne", "celery", "flask", "granian"]);
const PACKAGE_MANAGERS = new Set(["npm", "yarn", "pnpm", "bun"]);
/** Command-line tools that live in the project's node_modules/.bin (so deploygen's dev-server rule sees them by name). */
const PROJECT_NODE_TOOLS = new Set(["vite", "nuxt", "nuxi", "astro", "remix", "react-scripts", "webpack", "webpack-dev-server", "serve", "http-server", "tsx", "ts-node"]);
/** PM2's default kill_timeout: SIGKILL this long after the stop signal. */
const PM2_DEFAULT_KILL_TIMEOUT_MS = 1600;
/** Names of secrets: *_PW, *_PASS*, *_SECRET*, *_TOKEN*, *_KEY, passwords, credentials, DSNs. */
const SECRET_NAME = /_PW$|_PASS|^PASS(WORD|WD|PHRASE)?(_|$)|_SECRET|^SECRETS?(_|$)|_TOKEN|^TOKENS?(_|$)|PASSWORD|PASSWD|(^|_)KEY$|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|(^|_)AUTH(_|$)|(^|_)DSN$|(^|_)SALT$/i;
/** Names that look like secrets but are public or not secret at all (shown in browsers, the working folder, an agent's socket path). */
const NOT_SECRET_NAME = /^(PWD|OLDPWD)$|_SOCK$|^(NEXT_PUBLIC|VITE|REACT_APP|NUXT_PUBLIC|EXPO_PUBLIC|PUBLIC)_|_PUBLISHABLE_KEY$/i;
export const isSecretName = (name: string) => SECRET_NAME.test(name) && !NOT_SECRET_NAME.test(name);
const CREDENTIALS_IN_URL = /:\/\/[^/\s:@]*:[^/\s@]+@/;
const HOST_PATTERN = /^[A-Za-z0-9.:[\]-]+$/;

const isPythonBinary = (file: string) => /^python(\d+(\.\d+)*)?$/.test(path.posix.basename(file));
const isNodeBinary = (file: string) => /^node(js)?(\d+)?$/.test(path.posix.basename(file));
const words = (name: string) => name.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
const quoteList = (items: string[]) => items.join(", ");

function commonFolder(paths: string[]): string {
  const split = paths.map((p) => path.posix.normalize(p).replace(/\/+$/, "").split("/"));
  const first = split[0] ?? [""];
  let length = first.length;
  for (const parts of split) {
    let index = 0;
    while (index < length && index < parts.length && parts[index] === first[index]) index++;
    length = index;
  }
  return first.slice(0, length).join("/") || "/";
}

function toNumber(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) return Number(value);
  return undefined;
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null && "$deploygen" in value) return String((value as { $deploygen: unknown }).$deploygen);
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Collects notes; fixes that several apps share are merged into one line by their key. */
class Notes {
  private readonly grouped = new Map<string, { kind: ImportNote["kind"]; render: (subjects: string[]) => string; subjects: string[]; first: boolean }>();
  /** `first`: a note about the whole file (names, paths), listed before the per-app ones. */
  add(kind: ImportNote["kind"], text: string, first = false): void {
    this.grouped.set(`${kind}\0${text}\0${this.grouped.size}`, { kind, render: () => text, subjects: [], first });
  }
  /** One line for every subject with the same key: "frontend, worker: ...". */
  group(kind: ImportNote["kind"], key: string, subject: string, render: (subjects: string[]) => string): void {
    const id = `${kind}\0${key}`;
    const entry = this.grouped.get(id) ?? { kind, render, subjects: [], first: false };
    if (!entry.subjects.includes(subject)) entry.subjects.push(subject);
    this.grouped.set(id, entry);
  }
  list(): ImportNote[] {
    const order: ImportNote["kind"][] = ["fixed", "assumed", "not-imported"];
    const entries = [...this.grouped.values()];
    const sorted = [...entries.filter((entry) => entry.first), ...entries.filter((entry) => !entry.first)];
    const all = sorted.map((entry) => ({ kind: entry.kind, text: entry.render(entry.subjects) }));
    return order.flatMap((kind) => all.filter((note) => note.kind === kind));
  }
}

interface Context {
  /** PM2-specific defects (kill_timeout, missing install) are only named for PM2 files. */
  kind: SourceFile["kind"];
  options: ConvertOptions;
  notes: Notes;
  root: string;
  /** Relative paths of the source resolve against this folder. */
  relativeBase: string;
  project: string;
  projectVar: string;
  environments: string[];
  /** What held an absolute path under the root, for one note. */
  absolutePaths: string[];
  /** The source's text: a path that it does not contain was computed at load time (path.resolve(__dirname)), not hard-coded. */
  sourceText?: string;
  /** What a JavaScript source read from and added to process.env while loading. */
  evaluated?: EvaluatedEnvironment;
  /** Variables a JavaScript source loaded into process.env (dotenv) that the apps used: they belong in the env file. */
  loadedFromDotenv: Set<string>;
}

export function convertSource(source: SourceFile, options: ConvertOptions): Conversion {
  const notes = new Notes();
  const absoluteCwds = source.processes.map((p) => p.cwd).filter((cwd): cwd is string => cwd !== undefined && path.posix.isAbsolute(cwd));
  const rootOrigin: RootOrigin = options.root ? "option" : absoluteCwds.length > 0 ? "absolute-paths" : "source-folder";
  const root = options.root ?? (absoluteCwds.length > 0 ? commonFolder(absoluteCwds) : options.sourceDir);
  const relativeBase = rootOrigin === "absolute-paths" ? root : options.sourceDir;
  const project = chooseProject(source, options, root, notes);
  const environments = chooseEnvironments(source, options);
  const context: Context = {
    kind: source.kind,
    options,
    notes,
    root,
    relativeBase,
    project,
    projectVar: projectEnvNameVar(project),
    environments,
    absolutePaths: [],
    ...(source.text !== undefined ? { sourceText: source.text } : {}),
    ...(source.environment !== undefined ? { evaluated: source.environment } : {}),
    loadedFromDotenv: new Set(),
  };

  const keys = chooseAppKeys(source.processes, project, environments);
  const apps: Record<string, AppDraft> = {};
  const environmentDrafts: Record<string, EnvironmentDraft> = Object.fromEntries(environments.map((name) => [name, {} as EnvironmentDraft]));
  const projectValues: { app: string; environment?: string; value: string }[] = [];
  const secrets = new Set<string>();
  const envFiles: { app: string; file: string }[] = [];
  const renamed: string[] = [];
  const needPorts: string[] = [];

  source.processes.forEach((process, index) => {
    const key = keys[index]!;
    const converted = convertProcess(process, key, context);
    apps[key] = converted.app;
    const cleaned = cleanEnv(process.env, key, converted.app, converted.cwdAbs, context);
    if (cleaned.port !== undefined && converted.app.port === undefined) converted.app.port = cleaned.port;
    if (cleaned.host !== undefined && converted.app.host === undefined) converted.app.host = cleaned.host;
    if (Object.keys(cleaned.env).length > 0) converted.app.env = { ...cleaned.env, ...(converted.app.env ?? {}) };
    if (cleaned.projectValue !== undefined) projectValues.push({ app: key, value: cleaned.projectValue });
    cleaned.secrets.forEach((secret) => secrets.add(secret));
    for (const [blockName, block] of Object.entries(process.envBlocks)) {
      if (!environments.includes(blockName)) {
        notes.group("not-imported", `env_${blockName}`, key, (subjects) => `${quoteList(subjects)}: env_${blockName} (PM2's --env ${blockName}): import once more with --env ${blockName} to add that environment`);
        continue;
      }
      const blockEnv = cleanEnv(block, key, converted.app, converted.cwdAbs, context, blockName);
      const override: { port?: number; host?: string; env?: Record<string, string> } = {};
      if (blockEnv.port !== undefined && blockEnv.port !== converted.app.port) override.port = blockEnv.port;
      if (blockEnv.host !== undefined && blockEnv.host !== converted.app.host) override.host = blockEnv.host;
      if (Object.keys(blockEnv.env).length > 0) override.env = blockEnv.env;
      if (blockEnv.projectValue !== undefined) projectValues.push({ app: key, environment: blockName, value: blockEnv.projectValue });
      blockEnv.secrets.forEach((secret) => secrets.add(secret));
      if (Object.keys(override).length > 0) {
        const draft = environmentDrafts[blockName]!;
        draft.apps = { ...(draft.apps ?? {}), [key]: override };
      }
    }
    if (typeof process.options.env_file === "string") envFiles.push({ app: key, file: process.options.env_file });
    if (source.environment && source.environment.read.length > 0 && /\bundefined\b/.test(process.name))
      notes.add("fixed", `PM2 name ${process.name}: computed from variables that were not set while importing (${quoteList(source.environment.read)}): the app is ${key}`);
    const expected = pm2AppName(project, environments[0]!, key);
    if (source.kind === "pm2" && process.name !== expected) renamed.push(`${process.name} -> ${expected}`);
    if (converted.needsPort && converted.app.port === undefined) needPorts.push(key);
  });

  // Processes that read $PORT without a number (Procfile web processes) get free ports from 3000.
  const taken = new Set(Object.values(apps).map((app) => app.port));
  let next = 3000;
  for (const key of needPorts) {
    while (taken.has(next)) next++;
    apps[key]!.port = next;
    taken.add(next);
    notes.add("assumed", `${key}: port ${next} (the process reads $PORT or has no port of its own): change it if something else listens there`);
  }
  for (const [key, app] of Object.entries(apps))
    if (app.port !== undefined && app.port < 1024)
      notes.group("assumed", "privileged-port", key, (subjects) => `${quoteList(subjects)}: port${subjects.length > 1 ? "s" : ""} below 1024 (${subjects.map((subject) => apps[subject]!.port).join(", ")}): the systemd unit runs as the service user ${project}, not root, which cannot bind them: use a port above 1023 behind a reverse proxy`);
  const seenNames = new Map<string, number>();
  for (const process of source.processes) seenNames.set(process.name, (seenNames.get(process.name) ?? 0) + 1);
  for (const [name, count] of seenNames)
    if (count > 1) {
      const kept = source.processes.map((process, index) => (process.name === name ? keys[index]! : undefined)).filter((key): key is string => key !== undefined);
      notes.add("assumed", `${options.sourceName} defines ${name} ${count} times: all are kept, as ${quoteList(kept)}; remove the ones you do not run`, true);
    }
  for (const [key, app] of Object.entries(apps))
    if (app.port !== undefined && app.health === undefined)
      notes.group("assumed", "health", key, (subjects) => `${quoteList(subjects)}: no health URL known: add health: { path: /health } (any path that answers 2xx) so that deploy waits for the app instead of trusting PM2's "online"`);

  // NODE_ENV values Node.js does not know become the project's own variable.
  for (const { app, environment, value } of projectValues) {
    const targets = environment ? [environment] : environments;
    for (const target of targets) {
      const draft = environmentDrafts[target]!;
      if (environments.length === 1 || environment) {
        const existing = draft.env?.[context.projectVar];
        if (existing === undefined) draft.env = { ...(draft.env ?? {}), [context.projectVar]: value };
        else if (existing !== value) apps[app]!.env = { ...(apps[app]!.env ?? {}), [context.projectVar]: value };
      } else apps[app]!.env = { ...(apps[app]!.env ?? {}), [context.projectVar]: value };
    }
  }

  // env_file is not a PM2 option: PM2 takes it for the env block of `pm2 start --env file`.
  const firstEnvFile = envFiles[0];
  for (const environment of environments) {
    const draft = environmentDrafts[environment]!;
    if (firstEnvFile) draft.envFile = projectPath(firstEnvFile.file, context, `env_file`);
    else if (secrets.size > 0 || context.loadedFromDotenv.size > 0 || source.kind === "procfile") draft.envFile = `.env.${environment}`;
    if (draft.envFile !== undefined) {
      const example = `${draft.envFile}.example`;
      if (options.probe.exists(path.posix.join(root, example))) draft.exampleFile = example;
    }
    if (secrets.size > 0) draft.requiredEnv = [...secrets].sort();
  }
  if (firstEnvFile) {
    notes.add(
      "fixed",
      `env_file is not a PM2 option (PM2 reads it as the env block of \`pm2 start --env file\`), so ${path.posix.basename(firstEnvFile.file)} never reached the apps: it is now environments.${environments.join("/")}.envFile, read by the generated ecosystem file and checked by deploy`,
    );
    const others = [...new Set(envFiles.map((entry) => entry.file))].filter((file) => file !== firstEnvFile.file);
    if (others.length > 0) notes.add("not-imported", `env_file ${quoteList(others)}: one env file per environment; merge it into ${environmentDrafts[environments[0]!]!.envFile}`);
  }
  for (const environment of environments) {
    const draft = environmentDrafts[environment]!;
    if (draft.envFile !== undefined && (draft.requiredEnv ?? []).length === 0)
      notes.add("assumed", `environments.${environment}.requiredEnv is empty: list the keys ${draft.envFile} must set (API keys...) so that deploy refuses to start without them`);
  }
  if (source.kind === "procfile")
    notes.add("assumed", `config variables (heroku config) belong in ${environments.map((e) => `.env.${e}`).join(", ")} on the host, as KEY=value lines`);
  if (secrets.size > 0)
    notes.add("fixed", `secret values (${quoteList([...secrets].sort())}) were written in the process file: removed from the manifest; put them in ${environments.map((e) => environmentDrafts[e]!.envFile).join(", ")} (listed in requiredEnv)`);

  if (renamed.length > 0)
    notes.add(
      "fixed",
      `PM2 names ${renamed.join(", ")}: every name is now <project>-<environment>-<app> in namespace ${namespaceName(project, environments[0]!)}, which the generated scripts manage alone (never pm2 ... all)`,
      true,
    );
  if (context.absolutePaths.length > 0)
    notes.add("fixed", `hard-coded absolute paths under ${root} (${quoteList([...new Set(context.absolutePaths)])}): now relative to the project root, so the project deploys from any folder`, true);

  const serviceUser = /^\/home\/([a-z_][a-z0-9_-]*)\//.exec(`${root}/`)?.[1];
  notes.add(
    "assumed",
    `systemd User= defaults to the project name (${project})${serviceUser ? `; the old paths ran as ${serviceUser}` : ""}: set environments.<name>.systemd.user to the account that should own the PM2 daemon`,
  );
  for (const [key, value] of Object.entries(source.unknownTopLevel))
    notes.add("not-imported", key === "release" ? `release: ${describe(value)}: run it as a build step of the app it belongs to` : `${key}: ${describe(value)} (top-level ${key} section)`);

  const manifest: ManifestDraft = {
    version: 1,
    project,
    output: "deploy",
    apps: Object.fromEntries(Object.entries(apps).map(([key, app]) => [key, ordered(app, APP_FIELD_ORDER)])),
    environments: Object.fromEntries(Object.entries(environmentDrafts).map(([key, draft]) => [key, ordered(draft, ENVIRONMENT_FIELD_ORDER)])),
  };
  return { manifest, notes: notes.list(), project, environments, root, rootOrigin };
}

const APP_FIELD_ORDER = [
  "runtime", "cwd", "script", "args", "port", "host", "env", "install", "build", "verify", "health", "instances", "execMode", "stopTimeoutSeconds",
  "maxMemory", "maxRestarts", "minUptimeSeconds", "restartDelaySeconds", "nodeArgs", "interpreterArgs", "logDateFormat", "waitReady", "cronRestart",
];
const ENVIRONMENT_FIELD_ORDER = ["envFile", "exampleFile", "requiredEnv", "env", "apps", "systemd"];

/** The fields in the order the documentation shows them; absent ones left out. */
function ordered<T extends object>(value: T, order: string[]): T {
  const record = value as Record<string, unknown>;
  const keys = [...order.filter((key) => key in record), ...Object.keys(record).filter((key) => !order.includes(key))];
  return Object.fromEntries(keys.filter((key) => record[key] !== undefined).map((key) => [key, record[key]])) as T;
}

function chooseProject(source: SourceFile, options: ConvertOptions, root: string, notes: Notes): string {
  if (options.project) return options.project;
  const names = source.processes.map((p) => words(p.name));
  const rootName = normaliseName(path.posix.basename(root));
  if (names.length > 1) {
    const first = names[0]!;
    let length = first.length;
    for (const parts of names) {
      let index = 0;
      while (index < length && index < parts.length - 1 && parts[index] === first[index]) index++;
      length = index;
    }
    const common = normaliseName(first.slice(0, length).join("-"));
    if (common !== "" && NAME_PATTERN.test(common)) return common;
  }
  const fallback = rootName !== "" && NAME_PATTERN.test(rootName) ? rootName : "app";
  notes.add(
    "assumed",
    `project name ${fallback} (${fallback === rootName ? "from the project folder's name" : "no usable name found"}): pass --project NAME to choose another; it prefixes every PM2 app, namespace and unit`,
    true,
  );
  return fallback;
}

function chooseEnvironments(source: SourceFile, options: ConvertOptions): string[] {
  if (options.environment) return [options.environment];
  const fromFile = /^ecosystem[.-]([A-Za-z0-9_-]+)\.(?:config\.)?(?:c?js|mjs|json|ya?ml)$/.exec(options.sourceName)?.[1];
  if (fromFile && fromFile !== "config") {
    const name = normaliseName(fromFile);
    if (name !== "") return [name];
  }
  if (source.kind === "pm2") {
    for (const process of source.processes) {
      const value = process.env.NODE_ENV;
      if (typeof value === "string" && !(STANDARD_NODE_ENVS as readonly string[]).includes(value) && normaliseName(value) !== "") return [normaliseName(value)];
    }
    const blocks = [...new Set(source.processes.flatMap((p) => Object.keys(p.envBlocks)))].map(normaliseName).filter((name) => name !== "" && name !== "file");
    if (blocks.length > 0) return blocks.sort();
  }
  return ["production"];
}

/** App keys: the PM2 name without the project and environment words, unique. */
function chooseAppKeys(processes: SourceProcess[], project: string, environments: string[]): string[] {
  const projectWords = project.split("-");
  const used = new Set<string>();
  return processes.map((process, index) => {
    let parts = words(process.name);
    if (projectWords.every((word, position) => parts[position] === word) && parts.length > projectWords.length) parts = parts.slice(projectWords.length);
    parts = parts.filter((part) => part !== "undefined" && part !== "null");
    const withoutEnvironment = parts.filter((part) => !environments.includes(part) && part !== "prod" && part !== "stage");
    if (withoutEnvironment.length > 0) parts = withoutEnvironment;
    let key = normaliseName(parts.join("-")) || `app-${index + 1}`;
    const base = key;
    for (let suffix = 2; used.has(key); suffix++) key = `${base.slice(0, 37)}-${suffix}`;
    used.add(key);
    return key;
  });
}

/**
 * An absolute path under the root is noted as hard-coded only when the file says it literally: one
 * computed at load time (path.resolve(__dirname), process.cwd()) already followed the checkout.
 */
function noteAbsolute(value: string, what: string, context: Context): void {
  if (context.sourceText === undefined || context.sourceText.includes(value.replace(/\/+$/, "")) || (context.root !== "/" && context.sourceText.includes(context.root))) {
    if (!context.absolutePaths.includes(what)) context.absolutePaths.push(what);
  }
}

/** A path of the source as the manifest writes it: project-relative, noting absolute ones. */
function projectPath(value: string, context: Context, what: string, base = context.root): string {
  const absolute = path.posix.isAbsolute(value) ? path.posix.normalize(value) : path.posix.join(context.relativeBase, value);
  if (absolute === context.root || absolute.startsWith(`${context.root}/`)) {
    if (path.posix.isAbsolute(value)) noteAbsolute(value, what, context);
    return path.posix.relative(base, absolute) || ".";
  }
  if (!path.posix.isAbsolute(value)) return path.posix.normalize(value);
  context.notes.add("assumed", `${what} ${value} is outside the project root ${context.root}: kept as written; validate reports it if deploygen needs it inside`);
  return value;
}

interface ConvertedProcess {
  app: AppDraft;
  cwdAbs: string;
  /** The command reads $PORT (or is a Procfile web process) but names no number: deploygen must give it one. */
  needsPort: boolean;
}

function convertProcess(process: SourceProcess, key: string, context: Context): ConvertedProcess {
  const { notes } = context;
  const cwd = process.cwd === undefined ? path.posix.relative(context.root, context.relativeBase) || "." : projectPath(process.cwd, context, `${key} cwd`);
  const cwdAbs = path.posix.join(context.root, cwd);
  const relativeToCwd = (file: string, what: string) => {
    if (!path.posix.isAbsolute(file)) return file;
    const inside = file === context.root || file.startsWith(`${context.root}/`);
    if (!inside) return file;
    noteAbsolute(file, what, context);
    return path.posix.relative(cwdAbs, file) || ".";
  };
  let script = process.script;
  let args = [...process.args];
  let interpreter = process.interpreter;
  const app: AppDraft = { runtime: "command", cwd };
  let needsPort = process.name === "web" || (process.shellCommand !== undefined && mentionsPort(process.shellCommand));
  const takePort = (extracted: { port?: number; usesVariable: boolean }) => {
    if (extracted.port !== undefined) app.port = extracted.port;
    if (extracted.usesVariable) needsPort = true;
  };

  // Wrappers that only start the real program.
  if (path.posix.basename(script) === "npx" && args[0] !== undefined && !args[0].startsWith("-")) {
    script = args.shift()!;
  }
  if (path.posix.basename(script) === "nodemon" || path.posix.basename(script) === "ts-node-dev") {
    const target = args.findIndex((arg) => !arg.startsWith("-"));
    if (target >= 0 && /\.[cm]?js$/.test(args[target]!)) {
      const runner = path.posix.basename(script);
      notes.group("fixed", `runner-${runner}`, key, (subjects) => `${quoteList(subjects)} ran under ${runner} (restarts on every file change, a development tool): now plain node`);
      script = args[target]!;
      args = args.slice(target + 1);
      interpreter = "node";
    }
  }
  if (isNodeBinary(script) && args.length > 0) {
    const target = args.findIndex((arg) => !arg.startsWith("-"));
    if (target > 0) notes.add("not-imported", `${key}: node options ${quoteList(args.slice(0, target))}: deploygen has no field for them; set NODE_OPTIONS in env if they matter`);
    if (target >= 0) {
      script = args[target]!;
      args = args.slice(target + 1);
      interpreter = "node";
    }
  }
  const base = path.posix.basename(script);

  if (base === "next" || script.endsWith("next/dist/bin/next")) {
    convertNext(app, key, args, context);
  } else if (isPythonBinary(script) || (interpreter !== undefined && isPythonBinary(interpreter)) || script.endsWith(".py") || PYTHON_TOOLS.has(base)) {
    takePort(convertPython(app, key, script, args, interpreter, process, context, relativeToCwd, cwdAbs));
  } else if (/\.[cm]?js$/.test(script) && (interpreter === undefined || interpreter === "none" || isNodeBinary(interpreter))) {
    app.runtime = "node";
    app.script = relativeToCwd(script, `${key} script`);
    const extracted = extractPort(args, ["--port", "-p"]);
    if (extracted.args.length > 0) app.args = extracted.args;
    takePort(extracted);
    app.install = [guessNodeInstall(cwdAbs, key, context)];
    const build = guessNodeBuild(cwdAbs, context);
    if (build) app.build = [build];
  } else if (PACKAGE_MANAGERS.has(base)) {
    hiddenDevServer(base, args, key, cwdAbs, context);
    const dev = args[0] === "dev" || (["run", "run-script"].includes(args[0] ?? "") && args[1] === "dev");
    if (dev) {
      notes.add("fixed", `${key} ran \`${base} ${args.join(" ")}\` (a development server): now \`${base} start\`; check that your start script runs the production server`);
      args = ["start", ...args.slice(args[0] === "dev" ? 1 : 2).filter((arg) => arg !== "--")];
    }
    app.script = "/usr/bin/env";
    const extracted = extractPort(args, ["--port", "-p"]);
    app.args = [base, ...extracted.args];
    takePort(extracted);
    app.install = [guessNodeInstall(cwdAbs, key, context, base)];
    const build = guessNodeBuild(cwdAbs, context, false, base);
    if (build) app.build = [build];
    notes.group("assumed", "path-lookup", key, (subjects) => `${quoteList(subjects)}: run through /usr/bin/env, which finds the program on the PATH of the service user`);
  } else if (process.shellCommand !== undefined) {
    app.script = "/bin/sh";
    app.args = ["-c", process.shellCommand];
    notes.group("assumed", "shell", key, (subjects) => `${quoteList(subjects)}: the command uses shell syntax, so it runs as /bin/sh -c '...' (deploygen sets PORT for $PORT)`);
  } else {
    // Any other program: an interpreter PM2 was told to use, or the script itself.
    const runner = interpreter && interpreter !== "none" ? interpreter : undefined;
    const program = runner ?? script;
    const rest = runner ? [relativeToCwd(script, `${key} script`), ...args] : args;
    const extracted = extractPort(rest, ["--port", "-p"]);
    const scriptFile = !path.posix.isAbsolute(script) && (script.includes("/") || context.options.probe.exists(path.posix.join(cwdAbs, script)));
    if (runner && /^(ba|da|z)?sh$/.test(path.posix.basename(runner)))
      notes.add("assumed", `${key}: interpreter ${runner}: runs as ${path.posix.basename(runner)} ${script} (runtime command); check that ${script} does not start a development server`);
    if (!runner && interpreter !== "none" && scriptFile && path.posix.extname(script) === "") {
      // PM2 runs a file without an extension (Express's bin/www) with node.
      app.runtime = "node";
      app.script = relativeToCwd(script, `${key} script`);
      if (extracted.args.length > 0) app.args = extracted.args;
      takePort(extracted);
      app.install = [guessNodeInstall(cwdAbs, key, context)];
      const build = guessNodeBuild(cwdAbs, context);
      if (build) app.build = [build];
      notes.add("assumed", `${key}: ${script} has no extension, so PM2 ran it with node: runtime node`);
    } else if (!program.includes("/") && PROJECT_NODE_TOOLS.has(program)) {
      app.script = `node_modules/.bin/${program}`;
      if (extracted.args.length > 0) app.args = extracted.args;
      notes.group("assumed", "node-bin", key, (subjects) => `${quoteList(subjects)}: ${program} is taken from the app's node_modules/.bin (installed by npm ci)`);
      app.install = [guessNodeInstall(cwdAbs, key, context)];
    } else if (!program.includes("/")) {
      app.script = "/usr/bin/env";
      app.args = [program, ...extracted.args];
      notes.group("assumed", "path-lookup", key, (subjects) => `${quoteList(subjects)}: run through /usr/bin/env, which finds the program on the PATH of the service user`);
    } else {
      app.script = relativeToCwd(program, `${key} script`);
      if (extracted.args.length > 0) app.args = extracted.args;
    }
    takePort(extracted);
  }

  if (app.runtime === "nextjs") needsPort = true;
  if (app.args !== undefined) app.args = app.args.map((arg) => relativeArg(arg, key, cwdAbs, context));
  convertProcessOptions(app, key, process, context);
  return { app, cwdAbs, needsPort };
}

function convertNext(app: AppDraft, key: string, args: string[], context: Context): void {
  const { notes } = context;
  app.runtime = "nextjs";
  const [command = "start", ...rest] = args;
  if (command === "dev")
    notes.add("fixed", `${key} ran \`next dev\` (development server: hot reload, unoptimised bundles, source maps) outside development: now runtime nextjs, which builds and runs next start`);
  else if (command !== "start") notes.add("assumed", `${key} ran \`next ${command}\`: now next start after a build`);
  const remaining: string[] = [];
  for (let index = 0; index < rest.length; index++) {
    const arg = rest[index]!;
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (flag === "-p" || flag === "--port") {
      const value = inline ?? rest[++index];
      const port = toNumber(value);
      if (port !== undefined) app.port = port;
    } else if (flag === "-H" || flag === "--hostname") {
      const value = inline ?? rest[++index];
      if (value !== undefined && HOST_PATTERN.test(value)) app.host = value;
    } else remaining.push(arg);
  }
  if (remaining.length > 0) notes.add("not-imported", `${key}: next arguments ${quoteList(remaining)}: runtime nextjs runs \`next start -H <host> -p <port>\``);
  if (app.host === undefined)
    notes.group("assumed", "next-bind", key, (subjects) => `${quoteList(subjects)}: next listened on all interfaces (0.0.0.0, Next.js's default); it now binds 127.0.0.1, reachable through a reverse proxy on the host: set host: 0.0.0.0 if clients connect to it directly`);
  const cwdAbs = path.posix.join(context.root, app.cwd);
  app.install = [guessNodeInstall(cwdAbs, key, context)];
  app.build = [guessNodeBuild(cwdAbs, context, true)!];
  notes.group("fixed", "build", key, (subjects) => `${quoteList(subjects)}: nothing built the app before it started: deploy now runs ${app.build![0]} and checks .next/BUILD_ID before restarting`);
  app.health = { path: "/" };
}

function convertPython(
  app: AppDraft,
  key: string,
  script: string,
  args: string[],
  interpreter: string | undefined,
  process: SourceProcess,
  context: Context,
  relativeToCwd: (file: string, what: string) => string,
  cwdAbs: string,
): { usesVariable: boolean } {
  const { notes } = context;
  app.runtime = "python";
  let python: string;
  let pythonArgs: string[];
  const base = path.posix.basename(script);
  if (isPythonBinary(script)) {
    python = script;
    pythonArgs = args;
  } else if (interpreter !== undefined && isPythonBinary(interpreter) && PYTHON_TOOLS.has(base.replace(/\.exe$/, ""))) {
    // `interpreter: python, script: uvicorn`: Python would look for a file named uvicorn in cwd.
    python = interpreter;
    pythonArgs = ["-m", base, ...args];
    notes.add("fixed", `${key} ran ${interpreter} ${script}, which makes Python look for a file named ${script} in the app's folder: now ${base} runs as a module (-m ${base})`);
  } else if (interpreter !== undefined && isPythonBinary(interpreter)) {
    python = interpreter;
    pythonArgs = [relativeToCwd(script, `${key} script`), ...args];
  } else if (PYTHON_TOOLS.has(base)) {
    python = script.includes("/") ? path.posix.join(path.posix.dirname(script), "python") : "python";
    pythonArgs = ["-m", base, ...args];
  } else {
    python = "python";
    pythonArgs = [relativeToCwd(script, `${key} script`), ...args];
  }
  const outside = path.posix.isAbsolute(python) && !(python === context.root || python.startsWith(`${context.root}/`));
  if (!python.includes("/") || outside) {
    const original = python;
    notes.group("assumed", `python-from-${outside ? "outside" : "path"}-${original}`, key, (subjects) => `${quoteList(subjects)} ran ${original} from ${outside ? "outside the project" : "the PATH"}: now .venv/bin/python, a project virtualenv that install creates; change script if yours lives elsewhere`);
    python = ".venv/bin/python";
  } else python = relativeToCwd(python, `${key} script`);
  app.script = python;
  const reload = pythonArgs.filter((arg) => arg === "--reload" || arg === "--watch" || arg.startsWith("--reload-dir"));
  if (reload.length > 0) {
    notes.group("fixed", `reload-${reload.join(",")}`, key, (subjects) => `${quoteList(subjects)} ran with ${quoteList(reload)} (restart on every file change, a development feature): removed`);
    pythonArgs = pythonArgs.filter((arg) => !reload.includes(arg));
  }
  const extracted = extractPort(pythonArgs, ["--port", "-p", "--bind", "-b"]);
  app.args = extracted.args;
  const instances = toNumber(process.options.instances);
  if (process.options.exec_mode === "cluster" || (instances !== undefined && instances > 1))
    notes.add(
      "fixed",
      `${key}: PM2 cluster mode and instances only work for Node.js apps, not a Python interpreter: one process; let the server run workers (uvicorn --workers N, gunicorn -w N)`,
    );
  app.install = [guessPythonInstall(cwdAbs, python, key, context)];
  const module = pythonArgs[0] === "-m" ? pythonArgs.slice(2).find((arg) => /^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(\))?$/.test(arg)) : undefined;
  const importable = module?.split(":")[0];
  app.verify = { files: [python], ...(importable ? { commands: [`${python} -c 'import ${importable}'`] } : {}) };
  if (context.kind === "pm2")
    notes.group(
    "fixed",
    "verify",
    key,
    (subjects) => `${quoteList(subjects)}: nothing checked the install before starting: deploy now verifies ${importable ? `that ${python} exists and imports ${importable}` : `that ${python} exists`}`,
  );
  return extracted;
}

/** Takes the port out of `--port N`, `--port=N`, `-p N`, `--bind host:N`, `$PORT`, leaving "{port}" in its place. */
function extractPort(args: string[], flags: string[]): { args: string[]; port?: number; usesVariable: boolean } {
  const result: string[] = [];
  let port: number | undefined;
  let usesPortVariable = false;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (mentionsPort(arg)) {
      usesPortVariable = true;
      result.push(portPlaceholder(arg));
      continue;
    }
    const equals = arg.indexOf("=");
    const flag = equals > 0 ? arg.slice(0, equals) : arg;
    if (!flags.includes(flag)) {
      result.push(arg);
      continue;
    }
    const inline = equals > 0 ? arg.slice(equals + 1) : undefined;
    const value = inline ?? args[index + 1];
    const bind = value !== undefined ? /^(.*):(\d+)$/.exec(value) : null;
    const number = bind ? Number(bind[2]) : toNumber(value);
    if (number === undefined || port !== undefined) {
      result.push(arg);
      continue;
    }
    port = number;
    const replaced = bind ? `${bind[1]}:{port}` : "{port}";
    if (inline !== undefined) result.push(`${flag}=${replaced}`);
    else {
      result.push(flag, replaced);
      index++;
    }
  }
  return { args: result, ...(port !== undefined ? { port } : {}), usesVariable: usesPortVariable };
}

const INSTALL_COMMANDS: Record<string, string> = {
  pnpm: "pnpm install --frozen-lockfile",
  yarn: "yarn install --frozen-lockfile",
  "yarn-berry": "yarn install --immutable",
  bun: "bun install --frozen-lockfile",
  npm: "npm ci",
};

function readPackageJson(cwdAbs: string, context: Context): { scripts?: Record<string, unknown>; packageManager?: unknown } | undefined {
  const text = context.options.probe.readText(path.posix.join(cwdAbs, "package.json"));
  if (text === undefined) return undefined;
  try {
    const data = JSON.parse(text) as unknown;
    return typeof data === "object" && data !== null ? (data as { scripts?: Record<string, unknown>; packageManager?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The package manager of the app's folder: its lockfile, else package.json's packageManager field,
 * else the manager the process itself ran (`pnpm start`), with the install command it needs.
 */
function packageManager(cwdAbs: string, context: Context, ranWith?: string): { manager: string; install: string; from: string } | undefined {
  const has = (file: string) => context.options.probe.exists(path.posix.join(cwdAbs, file));
  const declared = readPackageJson(cwdAbs, context)?.packageManager;
  const declaredName = typeof declared === "string" ? /^(npm|pnpm|yarn|bun)@(\d+)?/.exec(declared) : null;
  const yarnKind = () => (has(".yarnrc.yml") || (declaredName?.[1] === "yarn" && Number(declaredName[2] ?? 1) >= 2) ? "yarn-berry" : "yarn");
  const pick = (manager: string, from: string) => ({ manager: manager === "yarn-berry" ? "yarn" : manager, install: INSTALL_COMMANDS[manager]!, from });
  if (has("pnpm-lock.yaml")) return pick("pnpm", "pnpm-lock.yaml");
  if (has("yarn.lock")) return pick(yarnKind(), "yarn.lock");
  if (has("bun.lockb") || has("bun.lock")) return pick("bun", "bun.lock");
  if (has("package-lock.json") || has("npm-shrinkwrap.json")) return pick("npm", "package-lock.json");
  if (declaredName) return pick(declaredName[1] === "yarn" ? yarnKind() : declaredName[1]!, `the packageManager field (${String(declared)})`);
  if (ranWith !== undefined && ranWith !== "npm" && PACKAGE_MANAGERS.has(ranWith)) return pick(ranWith === "yarn" ? yarnKind() : ranWith, `the command (${ranWith})`);
  return undefined;
}

function installFixed(key: string, context: Context): void {
  if (context.kind !== "pm2") return;
  context.notes.group("fixed", "install", key, (subjects) => `${quoteList(subjects)}: nothing installed dependencies, so a fresh host or a changed lockfile broke the start: deploy now runs install in the app's folder first`);
}

function guessNodeInstall(cwdAbs: string, key: string, context: Context, ranWith?: string): string {
  installFixed(key, context);
  const found = packageManager(cwdAbs, context, ranWith);
  if (found) {
    if (!found.from.endsWith(".yaml") && !found.from.endsWith(".lock") && !found.from.endsWith(".json"))
      context.notes.group("assumed", `install-from-${found.manager}`, key, (subjects) => `${quoteList(subjects)}: install is ${found.install} (no lockfile found here; from ${found.from}): check it`);
    return found.install;
  }
  context.notes.group("assumed", "node-install", key, (subjects) => `${quoteList(subjects)}: install is npm ci (no lockfile or packageManager field found here to tell npm, yarn, pnpm or bun apart): check it`);
  return "npm ci";
}

function guessNodeBuild(cwdAbs: string, context: Context, required = false, ranWith?: string): string | undefined {
  const manager = packageManager(cwdAbs, context, ranWith)?.manager ?? "npm";
  const command = manager === "npm" ? "npm run build" : `${manager} run build`;
  if (required) return command;
  const scripts = readPackageJson(cwdAbs, context)?.scripts;
  return scripts && typeof scripts.build === "string" ? command : undefined;
}

/** Development servers that package.json scripts start. */
const DEV_SERVER_COMMANDS = /\b(react-scripts start|next dev|nuxi? dev|vite(?!\s+(build|preview))(\s|$)|nodemon|ts-node-dev|webpack-dev-server|webpack serve|gatsby develop|ng serve|vue-cli-service serve|astro dev|remix dev|tsx watch)|\s--(watch|reload)\b/;

/** `npm start` whose start script is `react-scripts start`: the manifest runs it, but it is a dev server. Reported, never changed. */
function hiddenDevServer(manager: string, args: string[], key: string, cwdAbs: string, context: Context): void {
  const [first, second] = args;
  const name = first === "start" || first === "test" ? first : first === "run" || first === "run-script" ? second : manager !== "npm" && first !== undefined && !first.startsWith("-") ? first : undefined;
  if (name === undefined || name === "dev") return;
  const scripts = readPackageJson(cwdAbs, context)?.scripts;
  const command = scripts?.[name];
  if (typeof command === "string" && DEV_SERVER_COMMANDS.test(command))
    context.notes.add(
      "assumed",
      `${key} runs \`${manager} ${args.join(" ")}\`, whose package.json script is \`${command}\`: a development server (hot reload, unoptimised code); build the app and serve the build instead (change that script or this app's args), or validate cannot tell`,
    );
  else if (typeof command !== "string" && /(^|:)dev(elop(ment)?)?$/.test(name))
    context.notes.add("assumed", `${key} runs the package script ${name}, by its name a development server (no package.json found here to check): run the production server instead`);
}

/** An absolute path in an argument (`--env-file=/srv/app/.env`, `/srv/app/config.yml`): relative to the app's cwd when under the root, else reported. */
function relativeArg(arg: string, key: string, cwdAbs: string, context: Context): string {
  const match = /^(--?[A-Za-z0-9][\w-]*=)?(\/[^\s:]*)$/.exec(arg);
  if (!match) return arg;
  const [, flag = "", file = ""] = match;
  if (file === context.root || file.startsWith(`${context.root}/`)) {
    noteAbsolute(file, `${key} args`, context);
    return `${flag}${path.posix.relative(cwdAbs, path.posix.normalize(file)) || "."}`;
  }
  if (/^\/(root|home|srv|opt|var\/www|Users)\//.test(file))
    context.notes.group("assumed", `arg-outside-${file}`, key, (subjects) => `${quoteList(subjects)}: the argument ${arg} names ${file}, outside the project root ${context.root}: kept as written; it must exist on every host (or move it into the project)`);
  return arg;
}

function guessPythonInstall(cwdAbs: string, python: string, key: string, context: Context): string {
  installFixed(key, context);
  const has = (file: string) => context.options.probe.exists(path.posix.join(cwdAbs, file));
  const venv = python.endsWith("/bin/python") ? python.slice(0, -"/bin/python".length) : ".venv";
  if (has("uv.lock")) return "uv sync --frozen";
  if (has("poetry.lock")) return "poetry install --no-interaction --sync";
  if (has("requirements.txt")) return `python3 -m venv ${venv} && ${venv}/bin/pip install -r requirements.txt`;
  context.notes.group("assumed", "python-install", key, (subjects) => `${quoteList(subjects)}: install is uv sync --frozen (no uv.lock, poetry.lock or requirements.txt found here): check it`);
  return "uv sync --frozen";
}

function convertProcessOptions(app: AppDraft, key: string, process: SourceProcess, context: Context): void {
  const { notes } = context;
  const options = process.options;
  const instancesValue = options.instances;
  const instances = toNumber(instancesValue);
  const execMode = typeof options.exec_mode === "string" ? options.exec_mode.replace(/_mode$/, "") : undefined;
  if (app.runtime === "node" || app.runtime === "nextjs") {
    if (instancesValue === "max" || instances === 0) app.instances = "max";
    else if (instances !== undefined && instances < 0) app.instances = Math.max(-64, Math.ceil(instances));
    else if (instances !== undefined && instances > 1) app.instances = Math.min(64, Math.floor(instances));
    else if (instancesValue !== undefined && instances === undefined)
      notes.add("not-imported", `${key}: instances ${describe(instancesValue)}: write a number of workers, or max for one per CPU`);
    if (app.instances !== undefined && execMode === "fork" && app.port !== undefined)
      notes.add("fixed", `${key}: ${describe(instancesValue)} instances in fork mode would each bind port ${app.port}: now PM2 cluster mode, which shares it`);
    if (execMode === "cluster" && app.instances === undefined) {
      app.execMode = "cluster";
      notes.group("assumed", "cluster-of-one", key, (subjects) => `${quoteList(subjects)}: cluster mode with one instance kept (execMode: cluster): PM2 reloads it without downtime`);
    }
  } else if (app.runtime !== "python" && ((instances !== undefined && instances !== 1) || (instancesValue !== undefined && instances === undefined) || execMode === "cluster"))
    notes.add("not-imported", `${key}: instances ${describe(instancesValue ?? 1)}${execMode === "cluster" ? " in cluster mode" : ""}: PM2's cluster mode runs only Node.js apps; one process`);
  const kill = toNumber(options.kill_timeout);
  if (kill !== undefined) app.stopTimeoutSeconds = Math.min(600, Math.max(1, Math.ceil(kill / 1000)));
  else if (context.kind === "pm2")
    notes.group(
      "fixed",
      "kill-timeout",
      key,
      (subjects) => `${quoteList(subjects)}: no kill_timeout, so PM2 sent SIGKILL ${PM2_DEFAULT_KILL_TIMEOUT_MS / 1000} s after the stop signal: apps now get 10 s to finish requests and close connections (stopTimeoutSeconds)`,
    );
  const listen = toNumber(options.listen_timeout);
  if (listen !== undefined && app.health) app.health.timeoutSeconds = Math.min(3600, Math.max(1, Math.ceil(listen / 1000)));
  else if (listen !== undefined) notes.add("not-imported", `${key}: listen_timeout ${listen}: add health (deploygen waits for the health URL, with health.timeoutSeconds)`);
  const logs = ["out_file", "error_file", "log_file"].filter((option) => typeof options[option] === "string");
  if (logs.length > 0)
    notes.group("assumed", "logs", key, (subjects) => `${quoteList(subjects)}: ${quoteList(logs)} not kept: logs are ${LOGS_DIR}/<pm2 name>.out.log and .err.log under the project root`);
  convertRestartOptions(app, key, options, context);
  if (options.watch !== undefined && options.watch !== false)
    notes.group("fixed", `watch-${describe(options.watch)}`, key, (subjects) => `${quoteList(subjects)}: watch ${describe(options.watch)} restarted the app on every file change (a development feature): removed`);
  if (options.autorestart === false) notes.group("not-imported", "autorestart", key, (subjects) => `${quoteList(subjects)}: autorestart false: deploygen always restarts a crashed app`);
  if (typeof options.namespace === "string" && options.namespace !== namespaceName(context.project, context.environments[0]!))
    notes.group("fixed", "namespace", key, (subjects) => `${quoteList(subjects)}: namespace ${describe(options.namespace)}: now ${context.project}-<environment>`);
  if (options.port !== undefined && app.port === undefined) {
    const port = toNumber(options.port);
    if (port !== undefined) app.port = port;
  }
  for (const [option, value] of Object.entries(process.unknown))
    notes.group("not-imported", `unknown-${option}-${describe(value)}`, key, (subjects) => `${quoteList(subjects)}: ${option}: ${describe(value)}`);
}

/** PM2's restart and process options that the manifest has fields for (max_memory_restart...). */
function convertRestartOptions(app: AppDraft, key: string, options: Record<string, unknown>, context: Context): void {
  const { notes } = context;
  const dropped = (option: string, why: string) => notes.add("not-imported", `${key}: ${option} ${describe(options[option])}: ${why}`);
  const memory = options.max_memory_restart;
  if (memory !== undefined) {
    const size = memorySize(memory);
    if (size) app.maxMemory = size;
    else dropped("max_memory_restart", "not a size PM2 takes (a number of bytes, or a whole number with K, M or G)");
  }
  const restarts = toNumber(options.max_restarts);
  if (restarts !== undefined && Number.isInteger(restarts) && restarts >= 0) app.maxRestarts = restarts;
  else if (options.max_restarts !== undefined) dropped("max_restarts", "not a whole number");
  if (options.min_uptime !== undefined) {
    const ms = durationMs(options.min_uptime);
    if (ms !== undefined) app.minUptimeSeconds = Math.min(86400, Math.max(1, Math.ceil(ms / 1000)));
    else dropped("min_uptime", "not a duration PM2 takes (milliseconds, or a number with s, m or h)");
  }
  const delay = toNumber(options.restart_delay);
  if (delay !== undefined && delay >= 0) app.restartDelaySeconds = Math.min(3600, delay / 1000);
  else if (options.restart_delay !== undefined) dropped("restart_delay", "not a number of milliseconds");
  if (options.exp_backoff_restart_delay !== undefined && app.restartDelaySeconds === undefined)
    notes.add("assumed", `${key}: exp_backoff_restart_delay ${describe(options.exp_backoff_restart_delay)}: deploygen always restarts with an exponential back-off from 0.1 s`);
  if (options.node_args !== undefined) {
    const args = Array.isArray(options.node_args) ? options.node_args.map(String) : typeof options.node_args === "string" ? options.node_args.trim().split(/\s+/).filter(Boolean) : undefined;
    if (args && args.length > 0 && (app.runtime === "node" || app.runtime === "nextjs")) app.nodeArgs = args;
    else if (args && args.length > 0 && app.runtime === "python") app.interpreterArgs = args;
    else if (args && args.length > 0) dropped("node_args", `interpreter options for a ${app.runtime} app: put them in args`);
  }
  if (typeof options.log_date_format === "string" && options.log_date_format.trim() !== "" && !/[\n\r]/.test(options.log_date_format)) app.logDateFormat = options.log_date_format;
  if (options.wait_ready === true) {
    if (app.runtime === "node") app.waitReady = true;
    else dropped("wait_ready", `only a node app can send process.send('ready'); ${key} is ${app.runtime}`);
  }
  if (options.cron_restart !== undefined) {
    const cron = String(options.cron_restart).trim().split(/\s+/).join(" ");
    if (cronProblem(cron) === undefined) app.cronRestart = cron;
    else dropped("cron_restart", cronProblem(cron)!);
  }
}

/** PM2's max_memory_restart as the manifest writes it: "512M", "1G"; bytes become K or M. */
function memorySize(value: unknown): string | undefined {
  if (typeof value === "string") {
    const match = /^\s*(\d+)\s*([KMG])B?\s*$/i.exec(value);
    if (match && Number(match[1]) > 0) return `${Number(match[1])}${match[2]!.toUpperCase()}`;
  }
  const bytes = toNumber(value);
  if (bytes === undefined || !Number.isInteger(bytes) || bytes < 1024) return undefined;
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024}M` : `${Math.ceil(bytes / 1024)}K`;
}

/** PM2's min_uptime: milliseconds, or a number with s, m or h. */
function durationMs(value: unknown): number | undefined {
  const match = typeof value === "string" ? /^\s*(\d+)\s*(ms|s|m|h)?\s*$/.exec(value) : null;
  if (match) return Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "ms"] ?? 1);
  const number = toNumber(value);
  return number !== undefined && number >= 0 ? number : undefined;
}

interface CleanedEnv {
  env: Record<string, string>;
  port?: number;
  host?: string;
  projectValue?: string;
  secrets: string[];
}

/** Non-secret, project-relative, standard: what may be committed as an app's env. */
function cleanEnv(raw: Record<string, unknown>, key: string, app: AppDraft, cwdAbs: string, context: Context, block?: string): CleanedEnv {
  const { notes, root } = context;
  const where = block ? `${key} env_${block}` : `${key} env`;
  const env: Record<string, string> = {};
  const result: CleanedEnv = { env, secrets: [] };
  for (const [name, rawValue] of Object.entries(raw)) {
    if (rawValue === undefined || rawValue === null) continue;
    if (typeof rawValue === "object") {
      notes.add("not-imported", `${where}.${name}: ${describe(rawValue)} (not a string)`);
      continue;
    }
    const value = String(rawValue);
    const leak = leakedValue(name, value, context);
    if (leak === "machine") {
      notes.group("fixed", "leak-machine", name, (subjects) => `${quoteList(subjects)}: copied from the environment of whoever ran PM2 (env: {...process.env} or similar), which differs on every machine: kept out of the manifest (the service user's environment reaches the apps anyway)`);
      continue;
    }
    if (leak === "dotenv") {
      context.loadedFromDotenv.add(name);
      notes.group("fixed", "leak-dotenv", name, (subjects) => `${quoteList(subjects)}: loaded into process.env while the file ran (require('dotenv').config() reading a local .env): kept out of the manifest; the env file on the host gives them to the apps`);
      continue;
    }
    if (leak === "unset") {
      notes.group("fixed", "leak-unset", `${where}.${name}`, (subjects) => `${quoteList(subjects)}: computed from variables that were not set while importing (${quoteList(context.evaluated?.read ?? [])}), giving "undefined": kept out; set the value in the env file on the host`);
      continue;
    }
    if (!ENV_KEY_PATTERN.test(name)) {
      notes.add("not-imported", `${where}: ${JSON.stringify(name)} is not a variable name a shell can pass`);
      continue;
    }
    if (name === "NODE_ENV") {
      const standard = (STANDARD_NODE_ENVS as readonly string[]).includes(value);
      if (!standard) {
        result.projectValue = value;
        notes.group(
          "fixed",
          `node-env-${value}`,
          key,
          (subjects) => `${quoteList(subjects)}: NODE_ENV ${JSON.stringify(value)} is not a value Node.js or Next.js know (development, production, test): NODE_ENV is production and "${value}" moved to ${context.projectVar}`,
        );
        if (app.runtime === "node") env.NODE_ENV = "production";
      } else if (app.runtime === "nextjs") {
        if (value !== "production") notes.add("fixed", `${key}: NODE_ENV ${value} with next start: now production (set by runtime nextjs)`);
      } else env.NODE_ENV = value;
      continue;
    }
    if (name === "PORT") {
      const port = toNumber(value);
      if (port !== undefined && Number.isInteger(port) && port >= 1 && port <= 65535) result.port = port;
      else notes.add("not-imported", `${where}.PORT ${JSON.stringify(value)}: not a port number`);
      continue;
    }
    if (name === "HOST") {
      if (HOST_PATTERN.test(value)) result.host = value;
      else notes.add("not-imported", `${where}.HOST ${JSON.stringify(value)}: not a host address`);
      continue;
    }
    if (name === "PM2_HOME") {
      notes.add("not-imported", `${where}.PM2_HOME ${JSON.stringify(value)}: set environments.<name>.pm2Home instead`);
      continue;
    }
    if (name === projectRootVar(context.project)) {
      notes.add("fixed", `${where}.${name}: deploygen derives the project root from the generated files' location: removed`);
      continue;
    }
    if (isSecretName(name) || CREDENTIALS_IN_URL.test(value)) {
      if (value !== "") result.secrets.push(name);
      continue;
    }
    env[name] = relativeValue(value, `${where} ${name}`, cwdAbs, context, root);
  }
  return result;
}

/** Whether an env value came from the environment the file was loaded in rather than from the file. */
function leakedValue(name: string, value: string, context: Context): "machine" | "dotenv" | "unset" | undefined {
  const evaluated = context.evaluated;
  if (evaluated === undefined) return undefined;
  if (evaluated.fixed[name] !== undefined && evaluated.fixed[name] === value) return "machine";
  if (evaluated.added[name] !== undefined && evaluated.added[name] === value) return "dotenv";
  if (evaluated.read.length > 0 && /\bundefined\b/.test(value)) return "unset";
  return undefined;
}

/** An absolute path (or a colon-separated list of them) under the root becomes relative to the app's cwd. */
function relativeValue(value: string, what: string, cwdAbs: string, context: Context, root: string): string {
  const inside = (part: string) => path.posix.isAbsolute(part) && (part === root || part.startsWith(`${root}/`));
  const parts = value.split(":");
  if (parts.length > 0 && parts.every(inside)) {
    parts.forEach((part) => noteAbsolute(part, what, context));
    return parts.map((part) => path.posix.relative(cwdAbs, path.posix.normalize(part)) || ".").join(":");
  }
  if (root !== "/" && value.includes(root)) context.notes.add("assumed", `${what} contains the absolute path ${root}: make it relative by hand`);
  return value;
}
