// Atomic generation: all files or none. A render failure, a foreign file, a folder in the way or a
// rename that fails half-way all leave the previous files exactly as they were.
import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

// renameSync() of node:fs, as the writer imports it, with a switch to make one call fail.
const failure = vi.hoisted(() => ({ when: null as null | ((from: string, to: string) => boolean), calls: 0 }));
vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const renameSync = (from: import("node:fs").PathLike, to: import("node:fs").PathLike) => {
    failure.calls += 1;
    if (failure.when?.(String(from), String(to))) throw Object.assign(new Error(`EXDEV: simulated failure, rename '${String(from)}' -> '${String(to)}'`), { code: "EXDEV" });
    return actual.renameSync(from, to);
  };
  return { ...actual, renameSync, default: { ...actual, renameSync } };
});

const { parseManifestText } = await import("../../src/manifest/load.js");
const { planGeneration } = await import("../../src/generate.js");
const { createRenderer } = await import("../../src/render.js");
const { writeOutputs, findOrphans } = await import("../../src/write.js");
const { UserError } = await import("../../src/errors.js");
const { tempDir } = await import("./support.js");

const work = tempDir("dg-safety-atomic-");
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeEach(() => {
  failure.when = null;
  failure.calls = 0;
});

const FIXTURE = readFileSync(path.join(import.meta.dirname, "..", "..", "fixtures", "codeframe", "deploygen.yaml"), "utf8");
const planOf = (text: string, renderer?: ReturnType<typeof createRenderer>) =>
  planGeneration(parseManifestText(text, "deploygen.yaml", "deploygen.yaml"), renderer ? { renderer } : {});

/** Path -> { content, mode, mtime, inode } of every file under a folder. */
function snapshot(dir: string): Map<string, { content: string; mode: number; mtimeMs: number; ino: number }> {
  const files = new Map<string, { content: string; mode: number; mtimeMs: number; ino: number }>();
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const stat = statSync(full);
        files.set(path.relative(dir, full), { content: readFileSync(full, "utf8"), mode: stat.mode & 0o777, mtimeMs: stat.mtimeMs, ino: stat.ino });
      }
    }
  };
  walk(dir);
  return files;
}

/** A project generated once (the "previous" files), returning its folders. */
async function project(name: string, manifest = FIXTURE) {
  const root = path.join(work, name);
  mkdirSync(root, { recursive: true });
  const outputDir = path.join(root, "deploy");
  await writeOutputs(outputDir, planOf(manifest).files);
  return { root, outputDir, before: snapshot(outputDir) };
}

const noStagingLeft = (root: string) => expect(readdirSync(root).filter((name) => name.startsWith(".deploygen-tmp-"))).toEqual([]);

/** The fixture with every port moved: every ecosystem file and script changes. */
const changed = FIXTURE.replace(/14200/g, "14201").replace(/15200/g, "15201").replace(/14100/g, "14101").replace(/15100/g, "15101");

describe("all or nothing", () => {
  it("a template that fails to render (one artifact) writes nothing: previous files untouched", async () => {
    const { root, outputDir, before } = await project("render-fails");
    const real = createRenderer();
    const failing = {
      render: (name: Parameters<typeof real.render>[0], view: object) => {
        if (name === "systemd/health.timer") throw new Error("render failure (simulated)");
        return real.render(name, view);
      },
    };
    // What `deploygen generate` does: plan (render) everything, then write.
    const attempt = async () => writeOutputs(outputDir, planOf(changed, failing).files);
    await expect(attempt()).rejects.toThrow(/render failure/);
    expect(snapshot(outputDir)).toEqual(before);
    noStagingLeft(root);
  });

  it("a rename that fails half-way rolls back: replaced files restored, new files and folders removed", async () => {
    const { root, outputDir, before } = await project("rename-fails");
    // v2: other ports (every file changes) and a new environment (new files, a new folder's worth).
    const v2 = `${changed}  qa:\n    envFile: .env.qa\n    apps:\n      backend: { port: 16200 }\n      frontend: { port: 16100 }\n`;
    const files = planOf(v2).files;
    expect(files.length).toBeGreaterThan(before.size);
    let moves = 0;
    // Fail the 12th move into the output folder: some files are replaced, one is new.
    failure.when = (_from, to) => to.startsWith(outputDir) && ++moves === 12;
    await expect(writeOutputs(outputDir, files)).rejects.toThrow(/simulated failure/);
    expect(failure.calls).toBeGreaterThan(12);
    // The very same files (same inode, same mtime, same bytes, same mode) are back in place.
    expect(snapshot(outputDir)).toEqual(before);
    noStagingLeft(root);

    // Without the failure the same write goes through.
    failure.when = null;
    await writeOutputs(outputDir, files);
    expect(snapshot(outputDir).size).toBe(files.length);
    for (const file of files) expect(readFileSync(path.join(outputDir, file.path), "utf8")).toBe(file.content);
  });

  it("a folder created for a new file is removed again on a roll-back", async () => {
    const root = path.join(work, "fresh");
    mkdirSync(root);
    const outputDir = path.join(root, "deploy");
    failure.when = (_from, to) => to.endsWith(".service");
    await expect(writeOutputs(outputDir, planOf(FIXTURE).files)).rejects.toThrow(/simulated failure/);
    expect(existsSync(outputDir) ? readdirSync(outputDir, { recursive: true }) : []).toEqual([]);
    noStagingLeft(root);
  });

  it("a failed removal of an orphan rolls back too", async () => {
    const withQa = `${FIXTURE}  qa:\n    envFile: .env.qa\n    apps:\n      backend: { port: 16200 }\n      frontend: { port: 16100 }\n`;
    const { root, outputDir, before } = await project("orphan-fails", withQa);
    const files = planOf(changed).files;
    const orphans = await findOrphans(outputDir, new Set(files.map((file) => file.path)));
    expect(orphans.length).toBeGreaterThan(0);
    failure.when = (from) => from === path.join(outputDir, orphans.at(-1)!);
    await expect(writeOutputs(outputDir, files, { removeOrphans: orphans })).rejects.toThrow(/simulated failure/);
    for (const [file, state] of before) expect(readFileSync(path.join(outputDir, file), "utf8"), file).toBe(state.content);
    expect(snapshot(outputDir).size).toBe(before.size);
    noStagingLeft(root);
  });

  it("a folder where a file goes is refused before anything is written, with a message", async () => {
    const { root, outputDir } = await project("folder-in-the-way");
    rmSync(path.join(outputDir, "scripts", "stop-staging.sh"));
    mkdirSync(path.join(outputDir, "scripts", "stop-staging.sh"));
    const before = snapshot(outputDir);
    const attempt = writeOutputs(outputDir, planOf(changed).files);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/stop-staging\.sh is a folder/);
    expect(snapshot(outputDir)).toEqual(before);
    noStagingLeft(root);
  });
});

describe("planned paths", () => {
  it("a path that is not relative and normalized is refused before anything is read or written (a builder bug)", async () => {
    const { root, outputDir, before } = await project("bad-paths");
    for (const bad of ["/etc/passwd", "../outside.sh", "scripts/../x.sh", "./x.sh", "scripts//x.sh", "scripts/", "", "a/./b"]) {
      const attempt = writeOutputs(outputDir, [...planOf(changed).files, { path: bad, content: "x\n", mode: 0o644 }]);
      await expect(attempt, JSON.stringify(bad)).rejects.toThrow(`generated file paths must be relative and normalized: ${JSON.stringify(bad)}`);
      await expect(writeOutputs(outputDir, [], { removeOrphans: [bad] }), JSON.stringify(bad)).rejects.toThrow(/must be relative and normalized/);
    }
    expect(snapshot(outputDir)).toEqual(before);
    noStagingLeft(root);
  });

  it("an output folder given as a relative or unnormalized path gets the same files", async () => {
    const root = path.join(work, "relative-output");
    mkdirSync(root, { recursive: true });
    const cwd = process.cwd();
    process.chdir(root);
    try {
      await writeOutputs("./out/../deploy/", planOf(FIXTURE).files);
    } finally {
      process.chdir(cwd);
    }
    const expected = await project("relative-output-reference");
    expect(snapshot(path.join(root, "deploy"))).toEqual(new Map([...expected.before].map(([file, state]) => [file, { ...state, mtimeMs: expect.any(Number), ino: expect.any(Number) }])));
    expect(readdirSync(root).sort()).toEqual(["deploy"]);
  });
});

describe("files deploygen did not write", () => {
  it("are not overwritten without --force (and nothing else is written), and are with it", async () => {
    const { root, outputDir } = await project("foreign");
    const foreign = path.join(outputDir, "scripts", "deploy-staging.sh");
    writeFileSync(foreign, "#!/bin/sh\n# my own deploy script\necho hand-written\n");
    const before = snapshot(outputDir);
    const files = planOf(changed).files;
    const attempt = writeOutputs(outputDir, files);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/did not generate.*deploy-staging\.sh/);
    expect(snapshot(outputDir)).toEqual(before);
    noStagingLeft(root);

    await writeOutputs(outputDir, files, { force: true });
    expect(readFileSync(foreign, "utf8")).toContain("Generated by deploygen");
    for (const file of files) expect(readFileSync(path.join(outputDir, file.path), "utf8")).toBe(file.content);
  });

  it("a generated file (with the header) is replaced without --force", async () => {
    const { outputDir } = await project("own");
    const result = await writeOutputs(outputDir, planOf(changed).files);
    expect(result.written.length).toBeGreaterThan(0);
  });
});

describe("modes", () => {
  it("scripts and the Node helper get 0755, each environment's config (sourced data) and everything else 0644, whatever the umask and the previous mode", async () => {
    const previous = process.umask(0o077);
    try {
      const { outputDir } = await project("modes");
      chmodSync(path.join(outputDir, "scripts", "start-staging.sh"), 0o600);
      chmodSync(path.join(outputDir, "ecosystem.staging.config.js"), 0o666);
      const result = await writeOutputs(outputDir, planOf(FIXTURE).files);
      expect(result.written.sort()).toEqual(["ecosystem.staging.config.js", "scripts/start-staging.sh"]);
      const executable = (file: string) => (file.endsWith(".sh") && !path.basename(file).startsWith("config-")) || file.endsWith(".cjs");
      const files = [...snapshot(outputDir)];
      expect(files.filter(([file]) => file.endsWith(".cjs") || /config-[^/]*\.sh$/.test(file)).length).toBeGreaterThanOrEqual(2);
      for (const [file, state] of files) expect(state.mode, file).toBe(executable(file) ? 0o755 : 0o644);
    } finally {
      process.umask(previous);
    }
  });
});
