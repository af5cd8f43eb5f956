// What an existing process file says, before any interpretation: one SourceProcess per PM2 app
// or Procfile line. Pure: data in, data out.
import { UserError } from "../errors.js";
import { splitCommand } from "./shell-words.js";

export interface SourceProcess {
  /** As written in the source (PM2 `name`, Procfile process type). */
  name: string;
  script: string;
  args: string[];
  /** The command needs a shell (Procfile line with pipes, variables...): run as /bin/sh -c. */
  shellCommand?: string;
  /** As written: absolute, or relative to the source file's folder. */
  cwd?: string;
  interpreter?: string;
  /** Values as written (PM2 accepts numbers and booleans; they are stringified later). */
  env: Record<string, unknown>;
  /** PM2 `env_<name>` blocks (selected with `pm2 start --env <name>`), by name. */
  envBlocks: Record<string, Record<string, unknown>>;
  /** PM2 options deploygen interprets (normalised to snake_case). */
  options: Record<string, unknown>;
  /** PM2 options deploygen has no equivalent for, as written. */
  unknown: Record<string, unknown>;
}

export interface SourceFile {
  kind: "pm2" | "procfile";
  processes: SourceProcess[];
  /** Top-level keys other than apps (PM2 `deploy`, ...), as written. */
  unknownTopLevel: Record<string, unknown>;
  /** The file's text (to tell a path written in it from one computed at load time). */
  text?: string;
  /** For a JavaScript file: what it read from and added to process.env while loading. */
  environment?: import("./evaluate.js").EvaluatedEnvironment;
}

/** PM2 options deploygen maps onto the manifest or makes unnecessary, with PM2's aliases. */
const HANDLED_OPTIONS = new Map<string, string>([
  ["name", "name"],
  ["script", "script"],
  ["args", "args"],
  ["cwd", "cwd"],
  ["interpreter", "interpreter"],
  ["exec_interpreter", "interpreter"],
  ["env", "env"],
  ["env_file", "env_file"],
  ["instances", "instances"],
  ["exec_mode", "exec_mode"],
  ["kill_timeout", "kill_timeout"],
  ["listen_timeout", "listen_timeout"],
  ["out_file", "out_file"],
  ["output", "out_file"],
  ["out", "out_file"],
  ["out_log", "out_file"],
  ["error_file", "error_file"],
  ["error", "error_file"],
  ["err", "error_file"],
  ["err_file", "error_file"],
  ["err_log", "error_file"],
  ["log_file", "log_file"],
  ["log", "log_file"],
  ["merge_logs", "merge_logs"],
  ["combine_logs", "merge_logs"],
  ["time", "time"],
  ["autorestart", "autorestart"],
  ["watch", "watch"],
  ["namespace", "namespace"],
  ["port", "port"],
  ["max_memory_restart", "max_memory_restart"],
  ["max_restarts", "max_restarts"],
  ["min_uptime", "min_uptime"],
  ["restart_delay", "restart_delay"],
  ["exp_backoff_restart_delay", "exp_backoff_restart_delay"],
  ["node_args", "node_args"],
  ["interpreter_args", "node_args"],
  ["log_date_format", "log_date_format"],
  ["wait_ready", "wait_ready"],
  ["cron_restart", "cron_restart"],
  ["cron", "cron_restart"],
]);

/** Names some ecosystem files use for the program to run, where PM2 documents `script`. */
const SCRIPT_ALIASES = ["cmd", "command", "exec"];

/** PM2's automatic camelCase aliases (`killTimeout`), back to the documented snake_case name. */
function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `module.exports` of an ecosystem file as PM2 takes it: `{ apps: [...] }`, `{ apps: {...} }`, a bare
 * list of apps, a bare app object (`{ name, script }`), or the apps under a `pm2` key (as in a
 * package.json).
 */
export function pm2Source(exported: unknown, displayName: string): SourceFile {
  const fix = "export { apps: [{ name, script, ... }] } as PM2 expects";
  let apps: unknown;
  const unknownTopLevel: Record<string, unknown> = {};
  if (Array.isArray(exported)) apps = exported;
  else if (isRecord(exported) && exported.apps === undefined && exported.pm2 === undefined && [...SCRIPT_ALIASES, "script"].some((key) => typeof exported[key] === "string"))
    apps = [exported];
  else if (isRecord(exported)) {
    const key = exported.apps === undefined && exported.pm2 !== undefined ? "pm2" : "apps";
    apps = exported[key];
    for (const [other, value] of Object.entries(exported)) if (other !== key) unknownTopLevel[other] = value;
  } else throw new UserError(`${displayName} exports ${exported === null ? "null" : typeof exported}, not a PM2 configuration`, fix);
  if (isRecord(apps)) apps = [apps];
  if (!Array.isArray(apps) || apps.length === 0) throw new UserError(`${displayName} defines no apps`, fix);
  const processes = apps.map((app, index) => pm2Process(app, index, displayName));
  return { kind: "pm2", processes, unknownTopLevel };
}

function pm2Process(app: unknown, index: number, displayName: string): SourceProcess {
  if (!isRecord(app)) throw new UserError(`${displayName}: apps[${index}] is not an object`, "write each app as { name, script, ... }");
  const options: Record<string, unknown> = {};
  const unknown: Record<string, unknown> = {};
  const envBlocks: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of Object.entries(app)) {
    if (value === undefined || value === null) continue;
    const snake = snakeCase(key);
    const handled = HANDLED_OPTIONS.get(snake) ?? HANDLED_OPTIONS.get(key);
    if (handled) options[handled] = value;
    else if (SCRIPT_ALIASES.includes(key) && typeof value === "string" && app.script === undefined) options.script = value;
    else if (/^env_\S+$/.test(key) && isRecord(value)) envBlocks[key.slice(4)] = value;
    else unknown[key] = value;
  }
  const script = options.script;
  if (typeof script !== "string" || script.trim() === "")
    throw new UserError(`${displayName}: apps[${index}]${typeof options.name === "string" ? ` (${options.name})` : ""} has no script`, "give every app a script, as PM2 requires");
  const rawArgs = options.args;
  let args: string[];
  if (Array.isArray(rawArgs)) args = rawArgs.map(String);
  else if (typeof rawArgs === "string") args = splitCommand(rawArgs).words;
  else args = [];
  // PM2 runs "script" with spaces ("npm start") through its own splitting: do the same.
  let scriptPath = script.trim();
  if (/\s/.test(scriptPath)) {
    const words = splitCommand(scriptPath).words;
    scriptPath = words[0] ?? scriptPath;
    args = [...words.slice(1), ...args];
  }
  const name = typeof options.name === "string" && options.name.trim() !== "" ? options.name : scriptPath.replace(/^.*\//, "").replace(/\.[^.]*$/, "");
  return {
    name,
    script: scriptPath,
    args,
    ...(typeof options.cwd === "string" ? { cwd: options.cwd } : {}),
    ...(typeof options.interpreter === "string" ? { interpreter: options.interpreter } : {}),
    env: isRecord(options.env) ? options.env : {},
    envBlocks,
    options,
    unknown,
  };
}

/** A Procfile: `type: command` lines (Heroku, foreman, honcho). */
export function procfileSource(text: string, displayName: string): SourceFile {
  const processes: SourceProcess[] = [];
  const unknownTopLevel: Record<string, unknown> = {};
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = /^([A-Za-z0-9_-]+)\s*:\s*(.*)$/.exec(line);
    if (!match) throw new UserError(`${displayName}:${index + 1}: not a Procfile line: ${line}`, 'write each process as "name: command"');
    const [, name, command] = match as unknown as [string, string, string];
    if (command.trim() === "") throw new UserError(`${displayName}:${index + 1}: process ${name} has no command`, 'write "name: command"');
    if (name === "release") {
      unknownTopLevel.release = command;
      return;
    }
    const { words, needsShell } = splitCommand(command);
    // Leading VAR=value words set the process's environment; "exec" only replaces the shell.
    const env: Record<string, string> = {};
    while (words.length > 1 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]!)) {
      const word = words.shift()!;
      const equals = word.indexOf("=");
      env[word.slice(0, equals)] = word.slice(equals + 1);
    }
    if (words[0] === "exec" && words.length > 1) words.shift();
    processes.push({
      name,
      script: needsShell ? "/bin/sh" : words[0]!,
      args: needsShell ? ["-c", command.trim()] : words.slice(1),
      ...(needsShell ? { shellCommand: command.trim() } : {}),
      env: needsShell ? {} : env,
      envBlocks: {},
      options: {},
      unknown: {},
    });
  });
  if (processes.length === 0) throw new UserError(`${displayName} defines no processes`, 'write each process as "name: command"');
  return { kind: "procfile", processes, unknownTopLevel };
}
