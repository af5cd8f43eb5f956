// The Node helper's hashes of what a deploy would redo: `input-hash` (a step's inputs, in its app's folder) and
// `source-hash` (the files a release copies, listed for tar). Real files, real git, real `find`; nothing mocked.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { HELPER, HelperServer, helperCli, type Answer } from "./helpers/helper-serve.js";
import { scratchDir } from "./helpers/scratch.js";

const text = (b: Buffer): string => b.toString("utf8");

/** Writes FILES (relative path -> content) under DIR, making folders as needed. */
function write(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  }
}

/** The one hash line a successful run prints. */
function digest(r: Answer): string {
  expect(text(r.err)).toBe("");
  expect(r.status).toBe(0);
  expect(text(r.out)).toMatch(/^[0-9a-f]{64}\n$/);
  return text(r.out).trim();
}

describe("input-hash KIND EXCLUDES PATTERNS SALT [OUTPUT...]", () => {
  const app = async () => {
    const dir = await scratchDir("dg-input-hash-");
    write(dir, {
      "package.json": "{}\n",
      "package-lock.json": "{}\n",
      "requirements-dev.txt": "pytest\n",
      "src/index.js": "console.log(1);\n",
      "src/lib/util.js": "export const x = 1;\n",
      "node_modules/dep/index.js": "dep\n",
      ".next/cache/a": "cache\n",
      ".git/HEAD": "ref: refs/heads/main\n",
      ".venv/bin/python": "#!\n",
      "src/__pycache__/m.pyc": "pyc\n",
      "logs/app.log": "log\n",
      "dist.deploygen-previous/x.js": "old\n",
      "dist/out.js": "built\n",
      "secret.env": "S=1\n",
    });
    return dir;
  };
  const hash = (cwd: string, kind: string, { excludes = "", patterns = "", salt = "v20\nbuild", outputs = [] as string[] } = {}) =>
    digest(helperCli(cwd, ["input-hash", kind, excludes, patterns, salt, ...outputs]));

  it("is stable, and changes when an input's content changes, or a file is added or removed", async () => {
    const dir = await app();
    const before = hash(dir, "build");
    expect(hash(dir, "build")).toBe(before);
    writeFileSync(path.join(dir, "src/lib/util.js"), "export const x = 2;\n");
    const edited = hash(dir, "build");
    expect(edited).not.toBe(before);
    writeFileSync(path.join(dir, "src/lib/util.js"), "export const x = 1;\n");
    expect(hash(dir, "build")).toBe(before);
    writeFileSync(path.join(dir, "src/new.js"), "");
    expect(hash(dir, "build")).not.toBe(before);
    unlinkSync(path.join(dir, "src/new.js"));
    expect(hash(dir, "build")).toBe(before);
    unlinkSync(path.join(dir, "src/index.js"));
    expect(hash(dir, "build")).not.toBe(before);
  });

  it("changes with SALT, and when an OUTPUT appears or disappears (a dangling symlink counts as there)", async () => {
    const dir = await app();
    const base = hash(dir, "build", { outputs: ["dist", "missing"] });
    expect(hash(dir, "build", { salt: "v22\nbuild", outputs: ["dist", "missing"] })).not.toBe(base);
    expect(hash(dir, "build", { salt: "", outputs: ["dist", "missing"] })).not.toBe(base);
    expect(hash(dir, "build", { outputs: ["missing"] })).not.toBe(base);
    rmSync(path.join(dir, "dist"), { recursive: true });
    expect(hash(dir, "build", { outputs: ["dist", "missing"] })).toBe(hash(dir, "build", { outputs: ["missing"] }));
    expect(hash(dir, "build", { outputs: ["dist", "missing"] })).not.toBe(base);
    symlinkSync("nowhere", path.join(dir, "missing"));
    expect(hash(dir, "build", { outputs: ["missing"] })).not.toBe(hash(dir, "build"));
  });

  it("ignores dependency folders, dot-folders, logs, caches, previous outputs and EXCLUDES", async () => {
    const dir = await app();
    const before = hash(dir, "build", { excludes: "dist\nsecret.env" });
    for (const rel of ["node_modules/dep/index.js", ".next/cache/a", ".git/HEAD", ".venv/bin/python", "src/__pycache__/m.pyc",
      "logs/app.log", "dist.deploygen-previous/x.js", "dist/out.js", "secret.env", "node_modules/new.js", "src/.cache/new"]) {
      write(dir, { [rel]: `changed ${rel}\n` });
      expect(hash(dir, "build", { excludes: "dist\nsecret.env" }), rel).toBe(before);
    }
    writeFileSync(path.join(dir, "secret.env"), "S=2\n");
    expect(hash(dir, "build")).not.toBe(hash(dir, "build", { excludes: "secret.env" }));
  });

  it("install hashes only the top-level dependency manifests and lock files; build only PATTERNS when given", async () => {
    const dir = await app();
    const install = hash(dir, "install");
    writeFileSync(path.join(dir, "src/index.js"), "changed\n");
    write(dir, { "sub/package.json": "{}", "requirements/extra.txt": "x" });
    expect(hash(dir, "install")).toBe(install);
    writeFileSync(path.join(dir, "requirements-dev.txt"), "pytest==8\n");
    expect(hash(dir, "install")).not.toBe(install);

    const only = hash(dir, "build", { patterns: "src/lib/*\n*.json" });
    writeFileSync(path.join(dir, "src/index.js"), "changed again\n");
    expect(hash(dir, "build", { patterns: "src/lib/*\n*.json" })).toBe(only);
    writeFileSync(path.join(dir, "src/lib/util.js"), "changed\n");
    expect(hash(dir, "build", { patterns: "src/lib/*\n*.json" })).not.toBe(only);
  });

  it("follows a symlink to its file's content, hashes a dangling one's text, and fails on a file it cannot read", async () => {
    const dir = await app();
    write(dir, { "real.js": "one\n" });
    symlinkSync("../real.js", path.join(dir, "src/link.js"));
    symlinkSync("../nowhere", path.join(dir, "src/dangling.js"));
    symlinkSync("..", path.join(dir, "src/up"));
    const before = hash(dir, "build", { patterns: "src/*" });
    writeFileSync(path.join(dir, "real.js"), "two\n");
    const followed = hash(dir, "build", { patterns: "src/*" });
    expect(followed).not.toBe(before);
    unlinkSync(path.join(dir, "src/dangling.js"));
    symlinkSync("../elsewhere", path.join(dir, "src/dangling.js"));
    expect(hash(dir, "build", { patterns: "src/*" })).not.toBe(followed);

    // Root reads every file: the helper runs as nobody then.
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, "src/private.js"), "x\n", { mode: 0o600 });
    if (process.getuid?.() !== 0) chmodSync(path.join(dir, "src/private.js"), 0o000);
    const asOther = process.getuid?.() === 0 ? ["runuser", "-u", "nobody", "--"] : [];
    const r = spawnSync(asOther[0] ?? process.execPath, [...asOther.slice(1), ...(asOther.length ? [process.execPath] : []), HELPER,
      "input-hash", "build", "", "", "salt"], { cwd: dir });
    expect(r.status).toBe(1);
    expect(text(r.stdout)).toBe("");
    expect(text(r.stderr)).toMatch(/^error\tinput-hash: EACCES: permission denied, open '\.\/src\/private\.js'\n$/);
  });

  it("never lets bytes move between a name, a content and the SALT unnoticed", async () => {
    const [a, b] = [await scratchDir("dg-input-hash-"), await scratchDir("dg-input-hash-")];
    write(a, { ab: "c" });
    write(b, { a: "bc" });
    expect(hash(a, "build")).not.toBe(hash(b, "build"));
    write(a, { dist: "" });
    expect(hash(b, "install", { salt: "v20\nbuild\noutput dist" })).not.toBe(hash(a, "install", { salt: "v20\nbuild", outputs: ["dist"] }));
  });

  it("answers served requests as on the command line, relative to each request's folder", async () => {
    const dir = await app();
    const files = await scratchDir("dg-input-hash-serve-");
    const server = new HelperServer(path.join(files, "out"), path.join(files, "err"));
    try {
      for (const args of [["build", "", "", "s", "dist"], ["install", "", "", "s"], ["build", "secret.env", "src/*", "s\nt", "gone"]]) {
        const served = await server.ask(dir, ["input-hash", ...args]);
        expect(served).toEqual(helperCli(dir, ["input-hash", ...args]));
        digest(served);
      }
      expect((await server.ask(dir, ["input-hash", "build", ""])).status).toBe(2);
    } finally {
      await server.close();
    }
  });
});

describe("source-hash ROOT LIST_FILE [EXCLUDES]", () => {
  const git = (cwd: string, ...args: string[]) => {
    const r = spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd });
    expect(r.status, text(r.stderr)).toBe(0);
    return r.stdout;
  };
  const names = (list: Buffer): string[] => text(list).split("\0");
  const sourceHash = (root: string, excludes = "", env?: NodeJS.ProcessEnv) => {
    const list = `${root}.list`;
    onTestFinished(() => rmSync(list, { force: true }));
    const hash = digest(helperCli(path.dirname(root), ["source-hash", root, list, excludes], env));
    return { hash, list: readFileSync(list) };
  };

  it("in a git work tree, lists exactly git's tracked and untracked-not-ignored files, less EXCLUDES, state and gone ones", async () => {
    const root = await scratchDir("dg-source-git-");
    git(root, "init", "-q");
    write(root, {
      ".gitignore": "ignored.txt\nbuild/\n",
      "tracked.js": "1\n",
      "src/deleted.js": "gone soon\n",
      "a b.txt": "spaces\n",
      "line\nbreak.txt": "newline\n",
      "é😀.txt": "non-ASCII\n",
      ".env.production": "SECRET=1\n",
      "logs/tracked.log": "log\n",
      "src/logs/kept.txt": "not the top-level logs\n",
    });
    git(root, "add", "-A");
    git(root, "commit", "-qm", "first");
    write(root, { "untracked.js": "2\n", "ignored.txt": "ignored\n", "build/out.js": "built\n", "node_modules/m/i.js": "dep\n" });
    unlinkSync(path.join(root, "src/deleted.js"));

    const { hash, list } = sourceHash(root, ".env.production\nother");
    const expected = [".gitignore", "a b.txt", "line\nbreak.txt", "src/logs/kept.txt", "tracked.js", "untracked.js", "é😀.txt"];
    expect(names(list)).toEqual([...expected, ""]);
    expect(list.equals(Buffer.from(expected.map((f) => `${f}\0`).join("")))).toBe(true);
    // git's own listing, less what a release never copies: the same names.
    const gits = names(git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")).filter(Boolean);
    expect(gits.filter((f) => !/^(logs|node_modules)\/|^\.env\.production$|^src\/deleted\.js$/.test(f)).sort()).toEqual([...expected].sort());

    // Content changes change the hash; an excluded, ignored or never-copied file's do not.
    for (const rel of [".env.production", "ignored.txt", "build/out.js", "node_modules/m/i.js", "logs/tracked.log"]) {
      write(root, { [rel]: `changed ${rel}\n` });
      expect(sourceHash(root, ".env.production\nother").hash, rel).toBe(hash);
    }
    write(root, { "é😀.txt": "changed\n" });
    expect(sourceHash(root, ".env.production\nother").hash).not.toBe(hash);
  });

  it("outside git (or without git installed), walks ROOT like find, pruning state, dependencies and the top-level logs", async () => {
    const root = await scratchDir("dg-source-walk-");
    write(root, {
      "app.js": "1\n",
      ".env.production": "SECRET=1\n",
      "a b/c.txt": "x\n",
      "logs/top.log": "pruned\n",
      "src/logs/kept.log": "kept\n",
      "node_modules/m/i.js": "pruned\n",
      "web/node_modules/m/i.js": "pruned\n",
      ".git/HEAD": "pruned\n",
      ".deploygen/state": "pruned\n",
      "api/.venv/bin/python": "pruned\n",
      "api/__pycache__/m.pyc": "pruned\n",
      ".hidden/file": "kept\n",
    });
    symlinkSync("src", path.join(root, "src-link"));
    symlinkSync("app.js", path.join(root, "app-link.js"));
    symlinkSync("nowhere", path.join(root, "dangling"));
    writeFileSync(Buffer.concat([Buffer.from(`${root}/latin1-`), Buffer.from([0xe9]), Buffer.from(".txt")]), "not UTF-8\n");

    // What the bash library ran before: find, then the same filter (state, EXCLUDES, present on disk).
    const find = spawnSync("find", [".", "-mindepth", "1", "(", "-name", ".git", "-o", "-name", ".deploygen", "-o", "-path", "./logs", "-o", "-name",
      "node_modules", "-o", "-name", ".venv", "-o", "-name", "__pycache__", ")", "-prune", "-o", "(", "-type", "f", "-o", "-type", "l", ")", "-printf", "%P\\0"],
      { cwd: root }).stdout;
    const found = find.toString("latin1").split("\0").filter((f) => f && f !== ".env.production" && f !== "dangling").sort();
    const { hash, list } = sourceHash(root, ".env.production");
    expect(list.equals(Buffer.from(found.map((f) => `${f}\0`).join(""), "latin1"))).toBe(true);
    expect(found).toEqual([".hidden/file", "a b/c.txt", "app-link.js", "app.js", "latin1-\xe9.txt", "src-link", "src/logs/kept.log"]);

    // A symlink is hashed as its text (tar copies the link): its target's content does not count, retargeting it does.
    write(root, { ".env.production": "SECRET=2\n", "node_modules/m/i.js": "changed\n" });
    expect(sourceHash(root, ".env.production").hash).toBe(hash);
    unlinkSync(path.join(root, "app-link.js"));
    symlinkSync("./app.js", path.join(root, "app-link.js"));
    expect(sourceHash(root, ".env.production").hash).not.toBe(hash);

    // In a git work tree without git on PATH: the same walk (node is run by its full path).
    rmSync(path.join(root, ".git"), { recursive: true });
    git(root, "init", "-q");
    writeFileSync(path.join(root, ".gitignore"), "app.js\n");
    const withGit = names(sourceHash(root, ".env.production").list);
    expect(withGit).not.toContain("app.js");
    const noGit = sourceHash(root, ".env.production", { ...process.env, PATH: "/nonexistent" });
    expect(names(noGit.list)).toContain("app.js");
    expect(names(noGit.list)).toContain(".gitignore");
  });

  it("answers served requests as on the command line; a missing LIST_FILE argument is a usage error", async () => {
    const [root, files] = [await scratchDir("dg-source-serve-"), await scratchDir("dg-source-serve-files-")];
    write(root, { "a.js": "1\n", "b/c.js": "2\n" });
    const server = new HelperServer(path.join(files, "out"), path.join(files, "err"));
    try {
      const served = await server.ask("/", ["source-hash", root, path.join(files, "served"), "b"]);
      const cli = helperCli("/", ["source-hash", root, path.join(files, "cli"), "b"]);
      expect(served).toEqual(cli);
      digest(served);
      expect(readFileSync(path.join(files, "served"))).toEqual(Buffer.from("a.js\0"));
      expect(readFileSync(path.join(files, "cli"))).toEqual(Buffer.from("a.js\0"));
      expect((await server.ask("/", ["source-hash", root])).status).toBe(2);
      const missing = await server.ask("/", ["source-hash", path.join(root, "nope"), path.join(files, "x")]);
      expect(missing.status).toBe(1);
      expect(text(missing.err)).toMatch(/^error\tsource-hash: ENOENT: no such file or directory, scandir '.*\/nope\/\.'\n$/);
    } finally {
      await server.close();
    }
  });
});
