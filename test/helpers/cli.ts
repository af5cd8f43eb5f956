// Runs the CLI in this process (src/cli.ts main) and captures what it prints. Faster than a child
// process and independent of dist/; tests that need the real binary or a terminal spawn it.
import { main } from "../../src/cli.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(argv: string[], options: { cwd: string; tty?: boolean; env?: Record<string, string | undefined> }): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const originalOut = process.stdout.write.bind(process.stdout);
  const originalErr = process.stderr.write.bind(process.stderr);
  const ttyOut = process.stdout.isTTY;
  const ttyErr = process.stderr.isTTY;
  const savedEnv = new Map<string, string | undefined>();
  for (const [key, value] of Object.entries({ NO_COLOR: undefined, TERM: "xterm-256color", ...options.env })) {
    savedEnv.set(key, process.env[key]);
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stderr.write;
  // yargs prints help and usage errors with console.log / console.error.
  const originalLog = console.log;
  const originalError = console.error;
  console.log = (...args: unknown[]) => void (stdout += `${args.map(String).join(" ")}\n`);
  console.error = (...args: unknown[]) => void (stderr += `${args.map(String).join(" ")}\n`);
  process.stdout.isTTY = Boolean(options.tty);
  process.stderr.isTTY = Boolean(options.tty);
  try {
    const code = await main(argv, options.cwd);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = originalOut;
    console.log = originalLog;
    console.error = originalError;
    process.stderr.write = originalErr;
    process.stdout.isTTY = ttyOut;
    process.stderr.isTTY = ttyErr;
    for (const [key, value] of savedEnv) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}
