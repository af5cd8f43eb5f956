// The generated Node helper (templates/scripts/deploygen-helper.cjs) run for real, on the command line or as one
// `serve` process that answers requests the way the bash library sends them.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const HELPER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "templates", "scripts", "deploygen-helper.cjs");

/** What one run printed: its status, its stdout bytes, its stderr bytes. */
export interface Answer {
  status: number | null;
  out: Buffer;
  err: Buffer;
}

/** `node deploygen-helper.cjs ARGS...` in CWD. */
export function helperCli(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Answer {
  const r = spawnSync(process.execPath, [HELPER, ...args], { cwd, env });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** A request as the bash library writes it: `N\0CWD\0ARG1\0...ARGN\0`. */
export const request = (cwd: string, args: readonly string[]): Buffer =>
  Buffer.from([String(args.length), cwd, ...args].map((field) => `${field}\0`).join(""));

/** One `serve OUT_FILE ERR_FILE` process: send requests, read each answer from the status line and the two files. */
export class HelperServer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  private stdout = "";
  private stderr = "";
  private waiting: Array<(line: string) => void> = [];
  private readonly files: [string, string];

  constructor(
    readonly outFile: string,
    readonly errFile: string,
    opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.child = spawn(process.execPath, [HELPER, "serve", outFile, errFile], { cwd: opts.cwd, env: opts.env ?? process.env });
    this.files = [path.resolve(opts.cwd ?? process.cwd(), outFile), path.resolve(opts.cwd ?? process.cwd(), errFile)];
    this.child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
      this.deliver();
    });
    this.child.stderr.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })),
    );
  }

  private consumed = 0;
  private deliver(): void {
    for (;;) {
      const end = this.stdout.indexOf("\n", this.consumed);
      if (end < 0 || this.waiting.length === 0) return;
      const line = this.stdout.slice(this.consumed, end);
      this.consumed = end + 1;
      this.waiting.shift()!(line);
    }
  }

  /** The next status line (without its newline). */
  nextLine(timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no status line within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiting.push((line) => (clearTimeout(timer), resolve(line)));
      this.deliver();
    });
  }

  /** Sends raw bytes (one or more requests, or a malformed one). */
  send(bytes: Buffer): void {
    this.child.stdin.write(bytes);
  }

  /** Runs one request and returns its answer: the status line as a number, OUT_FILE and ERR_FILE as written. */
  async ask(cwd: string, args: readonly string[], timeoutMs?: number): Promise<Answer> {
    this.send(request(cwd, args));
    return this.answer(timeoutMs);
  }

  /** The answer to the request sent before: status line, then both files. */
  async answer(timeoutMs?: number): Promise<Answer> {
    const line = await this.nextLine(timeoutMs);
    if (!/^\d+$/.test(line)) throw new Error(`not a status line: ${JSON.stringify(line)}`);
    return { status: Number(line), out: readFileSync(this.files[0]), err: readFileSync(this.files[1]) };
  }

  /** Closes stdin (EOF) and waits for the process to end. */
  async close(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
    const started = Date.now();
    this.child.stdin.end();
    const result = await this.exited;
    return { ...result, ms: Date.now() - started };
  }
}
