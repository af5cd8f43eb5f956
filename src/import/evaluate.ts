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
const send = (message) => { fs.writeSync(3, JSON.stringify(message, replacer)); process.exit(0); };
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

export interface EvaluateOptions {
  timeoutMs: number;
  /** Shown in messages instead of the absolute path. */
  displayName: string;
}

/** The value `module.exports` (or the default export) of `file` holds, as JSON data. */
export function evaluateEcosystemFile(file: string, options: EvaluateOptions): Promise<unknown> {
  const absolute = path.resolve(file);
  const shown = options.displayName;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", CHILD_SOURCE, absolute], {
      cwd: path.dirname(absolute),
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
      let message: { ok: boolean; value?: unknown; error?: string };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return reject(new UserError(`${shown}: its export could not be read as data`, "export plain data: { apps: [...] }"));
      }
      if (!message.ok)
        return reject(
          new UserError(`${shown} throws when loaded:\n${firstLines(message.error ?? "unknown error")}`, `fix the error above (the file is run as PM2 runs it: node -e "require('./${path.basename(absolute)}')" in its folder)`),
        );
      resolve(message.value);
    });
  });
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

function firstLines(text: string): string {
  // The error and the first frame inside the file; Node's own frames are noise here.
  const lines = text.split("\n");
  const head = lines.slice(0, 1);
  const frame = lines.find((line) => /^\s+at /.test(line) && !line.includes("node:internal") && !line.includes("[eval]"));
  if (frame) head.push(frame);
  return head.map((line) => `  ${line.trim()}`).join("\n");
}

function lastLines(text: string): string {
  const trimmed = text.trim();
  return trimmed === "" ? "" : trimmed.split("\n").slice(-3).map((line) => `  ${line}`).join("\n");
}
