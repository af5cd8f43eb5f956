// The only stage that touches the disk: all-or-nothing writes of generated files.
// File system calls are synchronous: for a command-line run, each awaited call would only add a
// round trip through libuv's thread pool (and loading node:fs/promises costs a millisecond).
import { chmodSync, closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync, type Dirent, type Stats } from "node:fs";
import path from "node:path";
import type { FileOutput } from "./outputs/types.js";
import { hasGeneratedHeader } from "./outputs/header.js";
import { UserError } from "./errors.js";

export interface WriteResult {
  written: string[];
  unchanged: string[];
  removed: string[];
}

/**
 * A planned path inside a folder. Planned paths are relative, "/"-separated and normalized
 * (FileOutput.path; checked by assertPlannedPaths), so joining is concatenation. path.join would
 * normalize each path again character by character: some 80 calls per generate made V8 optimize
 * Node's normalizeString in the middle of the run, a 3 ms compile (docs/performance.md).
 */
const under = (dir: string, relative: string) => (dir.endsWith("/") ? dir + relative : `${dir}/${relative}`);
const parentOf = (file: string) => {
  const slash = file.lastIndexOf("/");
  return slash > 0 ? file.slice(0, slash) : "/";
};

const NORMALIZED_RELATIVE_PATH = /^(?!\/)(?!.*\/\/)(?!(?:.*\/)?\.\.?(?:\/|$)).+(?<!\/)$/;

/** Refuses paths the concatenation above would get wrong: a bug in an output builder, not in the manifest. */
function assertPlannedPaths(paths: string[]): void {
  const bad = paths.filter((relative) => !NORMALIZED_RELATIVE_PATH.test(relative));
  if (bad.length > 0) throw new Error(`generated file paths must be relative and normalized: ${bad.map((relative) => JSON.stringify(relative)).join(", ")}`);
}

export type FileState = { status: "missing" } | { status: "same" } | { status: "changed"; current: string; generated: boolean };

/** Compares planned files with the disk (read-only). */
export async function compareWithDisk(outputDir: string, files: FileOutput[]): Promise<Map<string, FileState>> {
  const states = new Map<string, FileState>();
  assertPlannedPaths(files.map((file) => file.path));
  const dir = path.resolve(outputDir);
  await Promise.all(
    files.map(async (file) => {
      const target = under(dir, file.path);
      let current: string;
      let stats: Stats | undefined;
      try {
        // Without an exception for a missing file: a fresh output folder has only missing files.
        stats = statSync(target, { throwIfNoEntry: false });
        if (stats === undefined) return states.set(file.path, { status: "missing" });
        current = readFileSync(target, "utf8");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") return states.set(file.path, { status: "missing" });
        if (code === "EISDIR" || code === "ENOTDIR")
          throw new UserError(
            code === "EISDIR" ? `${target} is a folder, where deploygen writes a file` : `a parent of ${target} is a file, where deploygen needs a folder`,
            "move it away (or choose another output folder in the manifest), then generate again; nothing was written",
          );
        throw error;
      }
      const modeOk = (stats.mode & 0o777) === file.mode;
      states.set(file.path, current === file.content && modeOk ? { status: "same" } : { status: "changed", current, generated: hasGeneratedHeader(current) });
    }),
  );
  return states;
}

/** Files under outputDir that carry deploygen's header but are not in `keep` (paths relative to outputDir). */
export async function findOrphans(outputDir: string, keep: Set<string>): Promise<string[]> {
  const orphans: string[] = [];
  // relativeDir: dir's path relative to outputDir ("" for outputDir itself).
  const walk = async (dir: string, relativeDir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = under(dir, entry.name);
      const relative = relativeDir === "" ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.isDirectory()) await walk(full, relative);
      else if (entry.isFile() && !keep.has(relative)) {
        const head = readHead(full);
        if (hasGeneratedHeader(head)) orphans.push(relative);
      }
    }
  };
  await walk(path.resolve(outputDir), "");
  return orphans.sort();
}

function readHead(file: string): string {
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.alloc(1024);
    const bytesRead = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes every changed file, or none: new contents are staged in a temporary folder beside the
 * output, then moved into place; if any move fails, the files already moved are put back.
 * A file without deploygen's header is never overwritten unless `force`.
 */
export async function writeOutputs(outputFolder: string, files: FileOutput[], options: { force?: boolean; removeOrphans?: string[] } = {}): Promise<WriteResult> {
  const outputDir = path.resolve(outputFolder);
  assertPlannedPaths(options.removeOrphans ?? []);
  const states = await compareWithDisk(outputDir, files);
  const foreign = files.filter((file) => {
    const state = states.get(file.path);
    return state?.status === "changed" && !state.generated;
  });
  if (foreign.length > 0 && !options.force) {
    throw new UserError(
      `refusing to overwrite ${foreign.length === 1 ? "a file" : "files"} that deploygen did not generate: ${foreign.map((file) => under(outputDir, file.path)).join(", ")}`,
      "move them away, choose another output folder in the manifest, or pass --force to overwrite them",
    );
  }
  const changed = files.filter((file) => states.get(file.path)?.status !== "same");
  const unchanged = files.filter((file) => states.get(file.path)?.status === "same").map((file) => file.path);
  const removals = options.removeOrphans ?? [];
  if (changed.length === 0 && removals.length === 0) return { written: [], unchanged, removed: [] };

  mkdirSync(parentOf(outputDir), { recursive: true });
  const staging = mkdtempSync(under(parentOf(outputDir), ".deploygen-tmp-"));
  const moved: Move[] = [];
  // Each folder is made once (the files of a folder share it).
  const made = new Set<string>();
  const makeFolder = (dir: string) => {
    if (made.has(dir)) return undefined;
    made.add(dir);
    return mkdirSync(dir, { recursive: true });
  };
  try {
    for (const file of changed) {
      const staged = under(staging, `new/${file.path}`);
      makeFolder(parentOf(staged));
      writeFileSync(staged, file.content, { mode: file.mode });
      chmodSync(staged, file.mode);
    }
    for (const file of changed) {
      const target = under(outputDir, file.path);
      const backup = under(staging, `old/${file.path}`);
      const createdDir = makeFolder(parentOf(target));
      // Folders this write created are removed again (deepest first, only when empty) on a roll-back.
      if (createdDir !== undefined) moved.push({ kind: "createdDir", target: parentOf(target), top: createdDir });
      const exists = states.get(file.path)?.status !== "missing";
      if (exists) {
        makeFolder(parentOf(backup));
        renameSync(target, backup);
      }
      moved.push(exists ? { kind: "replaced", target, backup } : { kind: "created", target });
      renameSync(under(staging, `new/${file.path}`), target);
    }
    for (const relative of removals) {
      const target = under(outputDir, relative);
      const backup = under(staging, `old/${relative}`);
      makeFolder(parentOf(backup));
      renameSync(target, backup);
      moved.push({ kind: "removed", target, backup });
    }
  } catch (error) {
    await rollBack(moved);
    removeTree(staging);
    throw error;
  }
  removeTree(staging);
  for (const relative of removals) await removeEmptyParents(outputDir, parentOf(under(outputDir, relative)));
  return { written: changed.map((file) => file.path), unchanged, removed: removals };
}

/**
 * rm -rf for the writer's own paths (its staging folder, a file it created): a missing path is not an
 * error. Hand-written because fs.rmSync's recursive mode loads a module of its own on each run.
 */
function removeTree(target: string): void {
  let isFolder: boolean;
  try {
    isFolder = lstatSync(target).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (!isFolder) return unlinkSync(target);
  for (const name of readdirSync(target)) removeTree(under(target, name));
  rmdirSync(target);
}

/** What a write did to one path, so that a failure can undo it. */
type Move =
  | { kind: "created"; target: string }
  | { kind: "createdDir"; target: string; top: string }
  | { kind: "replaced" | "removed"; target: string; backup: string };

/** A roll-back step that fails leaves that path as it is and goes on with the others. */
function ignoreFailure(step: () => void): void {
  try {
    step();
  } catch {
    // the other steps still run
  }
}

async function rollBack(moved: Move[]): Promise<void> {
  for (const move of moved.reverse()) {
    if (move.kind === "created") ignoreFailure(() => removeTree(move.target));
    else if (move.kind === "createdDir") await removeEmptyParents(path.dirname(move.top), move.target);
    else ignoreFailure(() => renameSync(move.backup, move.target));
  }
}

async function removeEmptyParents(root: string, dir: string): Promise<void> {
  let current = dir;
  while (current.startsWith(root) && current !== root) {
    let entries: string[];
    try {
      entries = readdirSync(current);
    } catch {
      entries = ["?"];
    }
    if (entries.length > 0) return;
    try {
      rmdirSync(current);
    } catch {
      // ignored: the next check decides
    }
    current = path.dirname(current);
  }
}

/**
 * Writes one file a person will edit from then on (a manifest from init or import): made with its
 * folder, never replacing an existing file unless `replace`. Returns false, writing nothing, when
 * the file exists and `replace` is not set.
 */
export function writeNewFile(file: string, content: string, options: { replace?: boolean; mode?: number } = {}): boolean {
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    writeFileSync(file, content, { flag: options.replace ? "w" : "wx", mode: options.mode ?? 0o644 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}
