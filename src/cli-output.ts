// How the CLI speaks: concise lines, colour only on a terminal without NO_COLOR, JSON on request.
import type { ManifestProblem } from "./errors.js";
import { formatProblem } from "./errors.js";
import type { WriteResult } from "./write.js";
import type { Comparison } from "./check.js";
import type { ImportResult } from "./import/index.js";
import { STDERR, STDOUT, isTerminal, writeText } from "./stdio.js";
import { sourceMappedStack } from "./bug-report.js";

export interface Output {
  raw(text: string): void;
  generated(outputDir: string, result: WriteResult): void;
  validated(file: string, apps: number, environments: number): void;
  /** `check` (stale is an error) and `diff` (stale is information). `regenerate` is the command that fixes it. */
  compared(command: "check" | "diff", manifest: string, comparison: Comparison, regenerate: string): void;
  initialised(file: string, preset: string, project: string, next: string): void;
  imported(result: ImportResult, written: string | undefined, next: string): void;
  problems(problems: ManifestProblem[]): void;
  error(message: string, fix?: string): void;
  bug(error: unknown): void;
}

/** Where the CLI's text goes. Tests pass their own to capture it in process. */
export interface OutputStreams {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether both stdout and stderr are terminals (asked at most once, and only to paint). */
  terminal(): boolean;
}

export const PROCESS_STREAMS: OutputStreams = {
  stdout: (text) => writeText(STDOUT, text),
  stderr: (text) => writeText(STDERR, text),
  terminal: () => isTerminal(STDERR) && isTerminal(STDOUT),
};

/** Colour only on terminals, and neither NO_COLOR nor TERM=dumb says otherwise. */
function colourEnabled(terminal: () => boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.NO_COLOR && env.TERM !== "dumb" && terminal();
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;

export function createOutput(options: { json: boolean; quiet: boolean }, streams: OutputStreams = PROCESS_STREAMS): Output {
  let colourDecided: boolean | undefined;
  const colour = () => (colourDecided ??= colourEnabled(streams.terminal));
  const paint = (code: string, text: string) => (colour() ? `\u001b[${code}m${text}\u001b[0m` : text);
  const { stdout, stderr } = streams;
  const say = (text: string) => {
    if (!options.quiet) stdout(`${text}\n`);
  };
  const warn = (text: string) => {
    if (!options.quiet) stderr(`${paint("33", "warning")} ${text}\n`);
  };
  const json = (value: unknown) => stdout(`${JSON.stringify(value, null, 2)}\n`);
  const fail = (message: string, fix?: string) => {
    stderr(`${paint("31", "error")} ${message}\n`);
    if (fix) stderr(`${paint("1", "fix")}: ${fix}\n`);
  };
  const paintPatch = (patch: string) =>
    colour()
      ? patch
          .split("\n")
          .map((line) =>
            /^(diff --git|old mode|new mode|--- |\+\+\+ )/.test(line)
              ? paint("1", line)
              : line.startsWith("@@")
                ? paint("36", line)
                : line.startsWith("+")
                  ? paint("32", line)
                  : line.startsWith("-")
                    ? paint("31", line)
                    : line,
          )
          .join("\n")
      : patch;
  return {
    raw: (text) => stdout(text),
    generated(outputDir, result) {
      if (options.json) return json({ outputDir, ...result });
      for (const file of result.written) say(`${paint("32", "written")}   ${outputDir}/${file}`);
      for (const file of result.removed) say(`${paint("33", "removed")}   ${outputDir}/${file} (no longer generated)`);
      for (const file of result.unchanged) say(`${paint("2", "unchanged")} ${outputDir}/${file}`);
      say(`${result.written.length} written, ${result.unchanged.length} unchanged${result.removed.length ? `, ${result.removed.length} removed` : ""}`);
    },
    validated(file, apps, environments) {
      if (options.json) return json({ valid: true, file, apps, environments });
      say(`${paint("32", "valid")} ${file}: ${plural(apps, "app")}, ${plural(environments, "environment")}`);
    },
    compared(command, manifest, comparison, regenerate) {
      const { patches, ...report } = comparison;
      if (options.json) return json({ manifest, ...report, patch: patches.join("") });
      const dir = comparison.outputDir;
      if (comparison.upToDate) return say(`${paint("32", "up to date")}: ${dir} matches ${manifest} (${plural(comparison.checked, "file")})`);
      // The diff is what `diff` is for; `check --quiet` keeps only the verdict.
      if (command === "diff" || !options.quiet) for (const patch of patches) stdout(paintPatch(patch));
      if (patches.length > 0 && !options.quiet) say("");
      for (const file of comparison.changed) say(`${paint("33", "changed")}  ${dir}/${file}`);
      for (const { path, expected, actual } of comparison.modeChanged) say(`${paint("33", "mode")}     ${dir}/${path} is ${actual}, generated as ${expected}`);
      for (const file of comparison.missing) say(`${paint("33", "missing")}  ${dir}/${file}`);
      for (const file of comparison.orphans) say(`${paint("33", "orphan")}   ${dir}/${file} (generated earlier; the manifest no longer produces it)`);
      const counts = [
        comparison.changed.length && `${comparison.changed.length} changed`,
        comparison.modeChanged.length && `${comparison.modeChanged.length} with another mode`,
        comparison.missing.length && `${comparison.missing.length} missing`,
        comparison.orphans.length && plural(comparison.orphans.length, "orphan"),
      ].filter(Boolean);
      const foreign = comparison.notGenerated.length > 0;
      const fix = `run \`${regenerate}${foreign ? " --force" : ""}\` and commit the result${
        foreign ? ` (--force because ${comparison.notGenerated.map((file) => `${dir}/${file}`).join(", ")} lack${comparison.notGenerated.length === 1 ? "s" : ""} deploygen's header: move them away first if they are yours)` : ""
      }`;
      if (command === "check") fail(`${dir} is stale: ${counts.join(", ")} compared with ${manifest}`, fix);
      else say(`${counts.join(", ")}; to write them: ${fix.replace(/^run /, "")}`);
    },
    initialised(file, preset, project, next) {
      if (options.json) return json({ written: file, preset, project });
      say(`${paint("32", "written")} ${file} (preset ${preset}, project ${project})`);
      say(`next: ${next}`);
    },
    imported(result, written, next) {
      if (options.json) return json({ written: written ?? null, ...result });
      if (written === undefined) stdout(result.manifest);
      else say(`${paint("32", "written")} ${written}`);
      const fixed = result.notes.filter((note) => note.kind === "fixed").length;
      const assumed = result.notes.filter((note) => note.kind === "assumed").length;
      const dropped = result.notes.filter((note) => note.kind === "not-imported").length;
      const summary = `imported ${plural(result.apps, "app")} from ${result.source}: ${plural(fixed, "defect")} fixed, ${plural(assumed, "assumption")} to check, ${dropped} option${dropped === 1 ? "" : "s"} not imported (listed at the top of the manifest)`;
      // With the manifest on stdout, the summary goes to stderr so that `> deploygen.yaml` stays clean.
      if (!options.quiet) (written === undefined ? stderr : stdout)(`${summary}\n`);
      if (result.problems.length > 0) {
        for (const problem of result.problems) stderr(`${paint("31", "error")} ${formatProblem(problem)}\n`);
        fail("the imported manifest does not validate yet", "edit it as the lines above say, then run `deploygen validate`");
      } else if (written !== undefined) say(`next: ${next}`);
      else warn(`review the comments at the top, save it as deploygen.yaml, then: ${next}`);
    },
    problems(problems) {
      if (options.json) return json({ valid: false, problems });
      for (const problem of problems) stderr(`${paint("31", "error")} ${formatProblem(problem)}\n`);
      if (problems.some((problem) => !problem.fix)) stderr(`${paint("1", "fix")}: correct the manifest at the positions above, then run \`deploygen validate\`\n`);
    },
    error(message, fix) {
      if (options.json) return json({ error: message, fix });
      fail(message, fix);
    },
    bug(error) {
      stderr(`deploygen: internal error (this is a bug; please report it with the command you ran):\n${sourceMappedStack(error)}\n`);
    },
  };
}
