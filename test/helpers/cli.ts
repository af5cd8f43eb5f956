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
  const savedEnv = new Map<string, string | undefined>();
  for (const [key, value] of Object.entries({ NO_COLOR: undefined, TERM: "xterm-256color", ...options.env })) {
    savedEnv.set(key, process.env[key]);
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  // yargs prints help and usage errors with console.log / console.error.
  const originalLog = console.log;
  const originalError = console.error;
  console.log = (...args: unknown[]) => void (stdout += `${args.map(String).join(" ")}\n`);
  console.error = (...args: unknown[]) => void (stderr += `${args.map(String).join(" ")}\n`);
  const streams = {
    stdout: (text: string) => void (stdout += text),
    stderr: (text: string) => void (stderr += text),
    terminal: () => Boolean(options.tty),
  };
  try {
    const code = await main(argv, options.cwd, streams);
    return { code, stdout, stderr };
  } finally {
    console.log = originalLog;
    console.error = originalError;
    for (const [key, value] of savedEnv) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}
