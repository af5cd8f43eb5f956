// How the CLI speaks: concise lines, colour only on a terminal without NO_COLOR, JSON on request.
import type { ManifestProblem } from "./errors.js";
import { formatProblem } from "./errors.js";
import type { WriteResult } from "./write.js";

export interface Output {
  raw(text: string): void;
  generated(outputDir: string, result: WriteResult): void;
  validated(file: string, apps: number, environments: number): void;
  problems(problems: ManifestProblem[]): void;
  error(message: string, fix?: string): void;
  bug(error: unknown): void;
}

export function colourEnabled(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

export function createOutput(options: { json: boolean; quiet: boolean }): Output {
  const colour = colourEnabled(process.stderr) && colourEnabled(process.stdout);
  const paint = (code: string, text: string) => (colour ? `\u001b[${code}m${text}\u001b[0m` : text);
  const say = (text: string) => {
    if (!options.quiet) process.stdout.write(`${text}\n`);
  };
  const json = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  return {
    raw: (text) => process.stdout.write(text),
    generated(outputDir, result) {
      if (options.json) return json({ outputDir, ...result });
      for (const file of result.written) say(`${paint("32", "written")}   ${outputDir}/${file}`);
      for (const file of result.removed) say(`${paint("33", "removed")}   ${outputDir}/${file} (no longer generated)`);
      for (const file of result.unchanged) say(`${paint("2", "unchanged")} ${outputDir}/${file}`);
      say(`${result.written.length} written, ${result.unchanged.length} unchanged${result.removed.length ? `, ${result.removed.length} removed` : ""}`);
    },
    validated(file, apps, environments) {
      if (options.json) return json({ valid: true, file, apps, environments });
      say(`${paint("32", "valid")} ${file}: ${apps} app${apps === 1 ? "" : "s"}, ${environments} environment${environments === 1 ? "" : "s"}`);
    },
    problems(problems) {
      if (options.json) return json({ valid: false, problems });
      for (const problem of problems) process.stderr.write(`${paint("31", "error")} ${formatProblem(problem)}\n`);
    },
    error(message, fix) {
      if (options.json) return json({ error: message, fix });
      process.stderr.write(`${paint("31", "error")} ${message}\n`);
      if (fix) process.stderr.write(`${paint("1", "fix")}: ${fix}\n`);
    },
    bug(error) {
      process.stderr.write(`deploygen: internal error (this is a bug; please report it with the command you ran):\n${error instanceof Error ? error.stack : String(error)}\n`);
    },
  };
}
