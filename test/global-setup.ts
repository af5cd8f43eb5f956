// Before any test: rebuild dist/ (the bundled CLI that tests run through bin/deploygen.js) when a
// file under src/ or templates/ is newer than dist/cli.cjs, so that no test passes or fails
// against a stale build. The check reads only modification times; the build is the bundler alone
// (`npm test` type-checks separately). Several test runs in one working tree take turns through a
// lock folder, and the one that waited finds dist/ fresh.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUNDLE = path.join(ROOT, "dist", "cli.cjs");
const SOURCES = ["src", "templates"].map((dir) => path.join(ROOT, dir));
const LOCK = path.join(ROOT, "node_modules", ".cache", "deploygen-build.lock");
/** A lock older than this was left by a build that died. */
const STALE_LOCK_MS = 5 * 60_000;

/** The newest modification time under dir, in milliseconds. */
function newestUnder(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** The sources' newest file that dist/cli.cjs predates, or undefined when the build is current. */
export function staleBecause(): string | undefined {
  const built = statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs;
  if (built === undefined) return "dist/cli.cjs is missing";
  const newer = SOURCES.find((dir) => newestUnder(dir) > built);
  return newer === undefined ? undefined : `${path.relative(ROOT, newer)}/ changed after dist/cli.cjs was built`;
}

function takeLock(): void {
  for (;;) {
    try {
      mkdirSync(path.dirname(LOCK), { recursive: true });
      mkdirSync(LOCK);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const since = statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
}

export default function setup(): void {
  if (staleBecause() === undefined) return;
  takeLock();
  try {
    const reason = staleBecause();
    if (reason === undefined) return;
    process.stderr.write(`test setup: building dist/ (${reason})\n`);
    const build = spawnSync(process.execPath, [path.join(ROOT, "src", "build", "bundle.mjs")], { cwd: ROOT, encoding: "utf8" });
    if (build.status !== 0) throw new Error(`building dist/ failed (node src/build/bundle.mjs):\n${build.stdout}${build.stderr}`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
