// `check` and `diff`: what `generate` would change, computed in memory and compared with the
// disk without writing anything. Reads the disk (through write.ts's comparison); writes nothing.
import { statSync } from "node:fs";
import path from "node:path";
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from "diff";
import type { LoadedManifest } from "./manifest/load.js";
import { planGeneration } from "./generate.js";
import { compareWithDisk, findOrphans } from "./write.js";
import type { FileOutput } from "./outputs/types.js";

export interface ModeChange {
  path: string;
  /** Octal, as `ls -l` and git show them: "755". */
  expected: string;
  actual: string;
}

/** Paths are relative to the output folder, sorted. */
export interface Comparison {
  upToDate: boolean;
  /** Output folder as printed: relative to the working directory (or to the manifest's folder when outside it). */
  outputDir: string;
  /** How many planned files were compared. */
  checked: number;
  /** Content differs (the file may also have the wrong mode). */
  changed: string[];
  /** Planned files that do not exist. */
  missing: string[];
  /** Files carrying deploygen's header that the manifest no longer produces (judged against every environment). */
  orphans: string[];
  /** Mode differs (whether or not the content does). */
  modeChanged: ModeChange[];
  /** Planned paths held by a file without deploygen's header: `generate` refuses them without --force. */
  notGenerated: string[];
  /** One git-style unified diff per changed or mode-changed file, in path order. */
  patches: string[];
}

export interface CompareOptions {
  /** Compare only these environments' files; orphans are still judged against all environments. */
  environments?: string[];
  /** Output folder (absolute); default: the manifest's output next to it. */
  outputDir?: string;
  /** Working directory, for the paths shown in patches. */
  cwd: string;
}

/** Renders the manifest in memory and compares the result with the output folder on disk. */
export async function compareManifestWithDisk(loaded: LoadedManifest, options: CompareOptions): Promise<Comparison> {
  const plan = planGeneration(loaded, options.environments ? { environments: options.environments } : {});
  const manifestDir = path.dirname(loaded.file);
  const outputDir = options.outputDir ?? path.resolve(manifestDir, plan.output);
  const every = options.environments ? planGeneration(loaded).files : plan.files;
  const orphans = await findOrphans(outputDir, new Set(every.map((file) => file.path)));
  const shown = displayPath(outputDir, options.cwd, manifestDir);
  return compareFiles(outputDir, shown, plan.files, orphans);
}

/** The comparison proper, for any list of planned files (paths relative to outputDir). */
export async function compareFiles(outputDir: string, shownOutputDir: string, files: FileOutput[], orphans: string[]): Promise<Comparison> {
  const states = await compareWithDisk(outputDir, files);
  const changed: string[] = [];
  const missing: string[] = [];
  const modeChanged: ModeChange[] = [];
  const notGenerated: string[] = [];
  const patches: string[] = [];
  for (const file of [...files].sort((a, b) => compareText(a.path, b.path))) {
    const state = states.get(file.path);
    if (!state || state.status === "same") continue;
    if (state.status === "missing") {
      missing.push(file.path);
      continue;
    }
    const actualMode = statSync(path.join(outputDir, file.path)).mode & 0o777;
    const contentChanged = state.current !== file.content;
    if (contentChanged) changed.push(file.path);
    if (actualMode !== file.mode) modeChanged.push({ path: file.path, expected: octal(file.mode), actual: octal(actualMode) });
    if (!state.generated) notGenerated.push(file.path);
    patches.push(gitPatch(`${shownOutputDir}/${file.path}`, state.current, file.content, actualMode, file.mode));
  }
  return {
    upToDate: changed.length + missing.length + orphans.length + modeChanged.length === 0,
    outputDir: shownOutputDir,
    checked: files.length,
    changed,
    missing,
    orphans,
    modeChanged,
    notGenerated,
    patches,
  };
}

/**
 * A unified diff from the file on disk (a/) to the file deploygen would write (b/), in git's
 * format (mode lines included) so that `git apply` reads it from the working directory.
 */
export function gitPatch(file: string, current: string, planned: string, currentMode: number, plannedMode: number): string {
  const lines = [`diff --git a/${file} b/${file}`];
  if (currentMode !== plannedMode) lines.push(`old mode 100${octal(currentMode)}`, `new mode 100${octal(plannedMode)}`);
  const head = `${lines.join("\n")}\n`;
  if (current === planned) return head;
  return head + createTwoFilesPatch(`a/${file}`, `b/${file}`, current, planned, undefined, undefined, { headerOptions: FILE_HEADERS_ONLY, context: 3 });
}

/** Relative to the working directory when inside it; else relative to the manifest's folder. POSIX separators, never absolute. */
export function displayPath(target: string, cwd: string, manifestDir: string): string {
  const fromCwd = path.relative(cwd, target);
  const chosen = fromCwd === "" ? "." : !fromCwd.startsWith("..") && !path.isAbsolute(fromCwd) ? fromCwd : path.relative(manifestDir, target) || ".";
  return chosen.split(path.sep).join("/");
}

function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(3, "0");
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
