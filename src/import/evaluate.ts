// Loads a PM2 ecosystem file written in JavaScript. The file is code: it is run in a child
// Node.js process (as PM2 would run it, from its own folder), never in deploygen's process, and
// the whole process group is killed if it has not exported its value within the timeout.
import { spawn } from "node:child_process";
import path from "node:path";
import { UserError } from "../errors.js";

/** Runs in the child: loads the file, sends its export as JSON on file descriptor 3, exits. */
const CHILD_SOURCE = String.raw`
const fs = require("node:fs");
const { pathToFileURL } = require("node:url");
const file = process.argv[1];
const replacer = (_key, value) =>
  typeof value === "function" ? { "$deploygen": "function " + (value.name || "(anonymous)") }
  : typeof value === "bigint" ? String(value)
  : value instanceof RegExp ? String(value)
  : value;
const send = (message) => { fs.writeSync(3, JSON.stringify({ ...message, envRead: [...envRead], envAdded }, replacer)); process.exit(0); };
// What the file reads from and writes to process.env while it loads: names it read that are not
// set (a value computed from them is the importing machine's, or "undefined"), and variables it
// added (dotenv's config() loading a local .env, for example).
const initialEnv = { ...process.env };
const envRead = new Set();
const envAdded = {};
process.env = new Proxy(process.env, {
  get(target, key) {
    if (typeof key === "string" && !(key in target) && !/^(NODE_|UV_|DOTENV_|FORCE_COLOR|NO_COLOR|TERM|COLORTERM|CI$)/.test(key)) envRead.add(key);
    return Reflect.get(target, key);
  },
  set(target, key, value) {
    if (typeof key === "string" && !(key in initialEnv)) envAdded[key] = String(value);
    return Reflect.set(target, key, value);
  },
});
(async () => {
  let value;
  try {
    value = require(file);
  } catch (error) {
    if (!error || !["ERR_REQUIRE_ESM", "ERR_REQUIRE_ASYNC_MODULE"].includes(error.code)) throw error;
    const namespace = await import(pathToFileURL(file).href);
    value = namespace.default ?? namespace;
  }
  if (Object.prototype.toString.call(value) === "[object Module]") {
    // An ES module: its default export, or its named exports. A file that assigns
    // module.exports while a package.json above it says "type": "module" exports nothing.
    if ("default" in value) value = value.default;
    else if (Object.keys(value).length > 0) value = { ...value };
    else throw new Error("it exports nothing: it is loaded as an ES module (a package.json above it says \"type\": \"module\"), where module.exports is ignored; rename it to .cjs, or use export default");
  }
  if (value && typeof value.then === "function") value = await value;
  send({ ok: true, value });
})().catch((error) => {
  const text = error && error.stack ? String(error.stack) : String(error);
  try { send({ ok: false, error: text }); } catch { process.exit(1); }
});
`;

const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * The whole environment a file is loaded with: fixed, so that nothing of the importing machine's
 * environment (its PATH, HOME, USER, secrets exported in the shell) can end up in the manifest.
 * Values copied from it are recognised by these exact values.
 */
export const IMPORT_ENVIRONMENT: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  HOME: "/nonexistent/deploygen-import-home",
  USER: "deploygen-import",
  LOGNAME: "deploygen-import",
  SHELL: "/bin/sh",
  LANG: "C.UTF-8",
};

/** What loading the file read from and added to process.env. */
export interface EvaluatedEnvironment {
  /** Variables the file read that were not set. */
  read: string[];
  /** Variables the file set while loading (for example from a .env by dotenv), with their values. */
  added: Record<string, string>;
  /** The fixed environment it was loaded with, PWD included. */
  fixed: Record<string, string>;
}

export interface Evaluated {
  value: unknown;
  environment: EvaluatedEnvironment;
}

export interface EvaluateOptions {
  timeoutMs: number;
  /** Shown in messages instead of the absolute path. */
  displayName: string;
}

/** The value `module.exports` (or the default export) of `file` holds, as JSON data, and what it did with process.env. */
export function evaluateEcosystemFile(file: string, options: EvaluateOptions): Promise<Evaluated> {
  const absolute = path.resolve(file);
  const shown = options.displayName;
  const fixed = { ...IMPORT_ENVIRONMENT, PWD: path.dirname(absolute) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", CHILD_SOURCE, absolute], {
      cwd: path.dirname(absolute),
      env: fixed,
      stdio: ["ignore", "ignore", "pipe", "pipe"],
      // Its own process group, so that a timeout also stops anything the file started.
      detached: true,
      windowsHide: true,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = "";
    let timedOut = false;
    let tooLarge = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    const channel = child.stdio[3] as NodeJS.ReadableStream;
    channel.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) {
        tooLarge = true;
        killGroup();
      } else chunks.push(chunk);
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += chunk.toString("utf8");
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new UserError(`cannot start Node.js to read ${shown}: ${error.message}`, "check that deploygen runs under a working Node.js installation"));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut)
        return reject(
          new UserError(
            `${shown} did not finish loading within ${formatSeconds(options.timeoutMs)} and was stopped`,
            "make the file export its configuration without waiting (no servers, timers or prompts at load time), or allow more time with --timeout SECONDS",
          ),
        );
      if (tooLarge) return reject(new UserError(`${shown} exported more than ${MAX_OUTPUT_BYTES / 1024 / 1024} MB of data`, "export only the PM2 configuration ({ apps: [...] })"));
      const text = Buffer.concat(chunks).toString("utf8");
      if (text === "") {
        const why = signal ? `was killed by ${signal}` : `exited with code ${code ?? "?"}`;
        const detail = lastLines(stderr);
        return reject(
          new UserError(
            `${shown} ${why} before exporting anything${detail ? `:\n${detail}` : ""}`,
            "make the file assign its configuration to module.exports (or export default) without calling process.exit",
          ),
        );
      }
      let message: { ok: boolean; value?: unknown; error?: string; envRead?: string[]; envAdded?: Record<string, string> };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return reject(new UserError(`${shown}: its export could not be read as data`, "export plain data: { apps: [...] }"));
      }
      if (!message.ok)
        return reject(
          new UserError(`${shown} throws when loaded:\n${firstLines(message.error ?? "unknown error")}`, `fix the error above (the file is run as PM2 runs it: node -e "require('./${path.basename(absolute)}')" in its folder)`),
        );
      resolve({ value: message.value, environment: { read: message.envRead ?? [], added: message.envAdded ?? {}, fixed } });
    });
  });
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

function firstLines(text: string): string {
  const lines = text.split("\n");
  // A syntax error's stack starts with the place (file:line, the line, a caret) before the error itself.
  const syntax = lines.findIndex((line) => /^SyntaxError\b/.test(line));
  if (syntax > 0) return [...lines.slice(0, syntax).filter((line) => line.trim() !== ""), lines[syntax]!].map((line) => `  ${line.replace(/\s+$/, "")}`).join("\n");
  // The error and the first frame inside the file; Node's own frames are noise here.
  const head = lines.slice(0, 1);
  const frame = lines.find((line) => /^\s+at /.test(line) && !line.includes("node:internal") && !line.includes("[eval]"));
  if (frame) head.push(frame);
  return head.map((line) => `  ${line.trim()}`).join("\n");
}

function lastLines(text: string): string {
  const trimmed = text.trim();
  return trimmed === "" ? "" : trimmed.split("\n").slice(-3).map((line) => `  ${line}`).join("\n");
}
