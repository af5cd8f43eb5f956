// The only stage that touches the disk: all-or-nothing writes of generated files.
import fs from "fs-extra";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { FileOutput } from "./outputs/types.js";
import { hasGeneratedHeader } from "./outputs/header.js";
import { UserError } from "./errors.js";

export interface WriteResult {
  written: string[];
  unchanged: string[];
  removed: string[];
}

export type FileState = { status: "missing" } | { status: "same" } | { status: "changed"; current: string; generated: boolean };

/** Compares planned files with the disk (read-only). */
export async function compareWithDisk(outputDir: string, files: FileOutput[]): Promise<Map<string, FileState>> {
  const states = new Map<string, FileState>();
  await Promise.all(
    files.map(async (file) => {
      const target = path.join(outputDir, file.path);
      let current: string;
      try {
        current = await fs.readFile(target, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return states.set(file.path, { status: "missing" });
        throw error;
      }
      const modeOk = ((await fs.stat(target)).mode & 0o777) === file.mode;
      states.set(file.path, current === file.content && modeOk ? { status: "same" } : { status: "changed", current, generated: hasGeneratedHeader(current) });
    }),
  );
  return states;
}

/** Files under outputDir that carry deploygen's header but are not in `keep` (paths relative to outputDir). */
export async function findOrphans(outputDir: string, keep: Set<string>): Promise<string[]> {
  const orphans: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      const relative = path.relative(outputDir, full).split(path.sep).join("/");
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile() && !keep.has(relative)) {
        const head = await readHead(full);
        if (hasGeneratedHeader(head)) orphans.push(relative);
      }
    }
  };
  await walk(outputDir);
  return orphans.sort();
}

async function readHead(file: string): Promise<string> {
  const handle = await fs.promises.open(file, "r");
  try {
    const buffer = Buffer.alloc(1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * Writes every changed file, or none: new contents are staged in a temporary folder beside the
 * output, then moved into place; if any move fails, the files already moved are put back.
 * A file without deploygen's header is never overwritten unless `force`.
 */
export async function writeOutputs(outputDir: string, files: FileOutput[], options: { force?: boolean; removeOrphans?: string[] } = {}): Promise<WriteResult> {
  const states = await compareWithDisk(outputDir, files);
  const foreign = files.filter((file) => {
    const state = states.get(file.path);
    return state?.status === "changed" && !state.generated;
  });
  if (foreign.length > 0 && !options.force) {
    throw new UserError(
      `refusing to overwrite ${foreign.length === 1 ? "a file" : "files"} that deploygen did not generate: ${foreign.map((file) => path.join(outputDir, file.path)).join(", ")}`,
      "move them away, choose another output folder in the manifest, or pass --force to overwrite them",
    );
  }
  const changed = files.filter((file) => states.get(file.path)?.status !== "same");
  const unchanged = files.filter((file) => states.get(file.path)?.status === "same").map((file) => file.path);
  const removals = options.removeOrphans ?? [];
  if (changed.length === 0 && removals.length === 0) return { written: [], unchanged, removed: [] };

  await fs.mkdirp(path.dirname(outputDir));
  const staging = path.join(path.dirname(outputDir), `.deploygen-tmp-${randomBytes(6).toString("hex")}`);
  const moved: Move[] = [];
  try {
    for (const file of changed) {
      const staged = path.join(staging, "new", file.path);
      await fs.outputFile(staged, file.content, { mode: file.mode });
      await fs.chmod(staged, file.mode);
    }
    for (const file of changed) {
      const target = path.join(outputDir, file.path);
      const backup = path.join(staging, "old", file.path);
      await fs.mkdirp(path.dirname(target));
      const exists = states.get(file.path)?.status !== "missing";
      if (exists) {
        await fs.mkdirp(path.dirname(backup));
        await fs.rename(target, backup);
      }
      moved.push(exists ? { kind: "replaced", target, backup } : { kind: "created", target });
      await fs.rename(path.join(staging, "new", file.path), target);
    }
    for (const relative of removals) {
      const target = path.join(outputDir, relative);
      const backup = path.join(staging, "old", relative);
      await fs.mkdirp(path.dirname(backup));
      await fs.rename(target, backup);
      moved.push({ kind: "removed", target, backup });
    }
  } catch (error) {
    await rollBack(moved);
    await fs.remove(staging);
    throw error;
  }
  await fs.remove(staging);
  for (const relative of removals) await removeEmptyParents(outputDir, path.dirname(path.join(outputDir, relative)));
  return { written: changed.map((file) => file.path), unchanged, removed: removals };
}

/** What a write did to one path, so that a failure can undo it. */
type Move = { kind: "created"; target: string } | { kind: "replaced" | "removed"; target: string; backup: string };

async function rollBack(moved: Move[]): Promise<void> {
  for (const move of moved.reverse()) {
    if (move.kind === "created") await fs.remove(move.target).catch(() => undefined);
    else await fs.rename(move.backup, move.target).catch(() => undefined);
  }
}

async function removeEmptyParents(root: string, dir: string): Promise<void> {
  let current = dir;
  while (current.startsWith(root) && current !== root) {
    const entries = await fs.readdir(current).catch(() => ["?"]);
    if (entries.length > 0) return;
    await fs.rmdir(current).catch(() => undefined);
    current = path.dirname(current);
  }
}
