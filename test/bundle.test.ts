// What the bundle (src/build/bundle.mjs) relies on about its dependencies. The bundle itself is
// exercised by every test that runs bin/deploygen.js.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { CLI, FIXTURES, REPO_ROOT } from "./helpers/generate.js";
import { runCli } from "./helpers/cli.js";
// @ts-expect-error: a build script without type declarations
import { ASCII_WIDTH_IS_LENGTH } from "../src/build/string-width-fast.mjs";
// @ts-expect-error: a build script without type declarations
import { YARGS_PATCHES, patchYargsSource } from "../src/build/yargs-patches.mjs";

const LOADER = path.join(REPO_ROOT, "dist", "run.cjs");

/** Every installed copy of string-width (yargs, cliui and wrap-ansi each pin their own). */
function stringWidthCopies(dir = path.join(REPO_ROOT, "node_modules"), depth = 0): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const full = path.join(dir, entry.name);
    if (entry.name === "string-width") found.push(path.join(full, "index.js"));
    else if (depth < 3 && (entry.name === "node_modules" || path.basename(dir) === "node_modules" || entry.name.startsWith("@"))) found.push(...stringWidthCopies(full, depth + 1));
  }
  return found;
}

describe("the bundle's string-width fast path", () => {
  const printable = Array.from({ length: 0x7f - 0x20 }, (_, index) => String.fromCharCode(0x20 + index));
  const copies = stringWidthCopies();

  it("finds the copies that yargs' help layout uses", () => {
    expect(copies.length).toBeGreaterThanOrEqual(1);
  });

  it.each(copies.map((file) => [path.relative(REPO_ROOT, file), file]))("%s measures printable ASCII as its length", async (_name, file) => {
    const stringWidth = (await import(pathToFileURL(file).href)).default as (text: string) => number;
    for (const character of printable) expect(stringWidth(character), JSON.stringify(character)).toBe(1);
    for (const text of ["", "deploygen generate [-m FILE] [--env E]...", printable.join(""), "  --json  machine-readable output  [boolean]"]) {
      expect(ASCII_WIDTH_IS_LENGTH.test(text)).toBe(true);
      expect(stringWidth(text)).toBe(text.length);
    }
  });

  it("takes nothing else: control characters, ANSI escapes and non-ASCII go to string-width", () => {
    for (const text of ["\t", "a\nb", "\u001b[31mred\u001b[0m", "\u007f", "é", "日本", "👍"]) expect(ASCII_WIDTH_IS_LENGTH.test(text)).toBe(false);
  });
});

describe("the bundle's edits to yargs", () => {
  const patches = YARGS_PATCHES as { file: string; from: string; to: string }[];

  it("each matches the installed yargs exactly once", () => {
    for (const patch of patches) {
      const source = readFileSync(path.join(REPO_ROOT, "node_modules", patch.file), "utf8");
      expect(source.split(patch.from).length - 1, patch.file).toBe(1);
    }
  });

  it("stop the build, naming the file, when yargs no longer has the code they replace", () => {
    expect(() => patchYargsSource("/x/node_modules/yargs/build/lib/command.js", "// another yargs")).toThrow(/yargs\/build\/lib\/command\.js no longer contains .*yargs-patches\.mjs/);
  });

  // The bundled yargs is edited, the one tests import is not: both must print the same.
  const helpCases = [[], ["--help"], ...["generate", "check", "diff", "validate", "schema", "init", "import"].map((command) => [command, "--help"]), ["generate", "--colour"], ["nonsense"], ["import"], ["--version"], ["generate", "--version"]];
  it.each(helpCases.map((argv) => [argv.join(" ") || "(no arguments)", argv]))("leave help and usage errors as they were: %s", async (_name, argv) => {
    const cwd = mkdtempSync(path.join(tmpdir(), "dg-bundle-help-"));
    try {
      const bundled = spawnSync(process.execPath, [CLI, ...argv], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
      const unbundled = await runCli(argv, { cwd, env: { NO_COLOR: "1" } });
      expect({ code: bundled.status, stdout: bundled.stdout, stderr: bundled.stderr }).toEqual(unbundled);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("start-up of the bundled CLI", () => {
  it("generate loads none of Node's modules that only some paths need (streams, assert, tty, fs/promises, rimraf)", () => {
    const cwd = mkdtempSync(path.join(tmpdir(), "dg-bundle-modules-"));
    try {
      cpSync(path.join(FIXTURES, "codeframe", "deploygen.yaml"), path.join(cwd, "deploygen.yaml"));
      // stdout is a pipe here, as in CI and hooks; the list is printed to a file so that printing loads nothing.
      const script = `const before = new Set(process.moduleLoadList);
        require(${JSON.stringify(LOADER)}).main(["generate"], process.cwd()).then((code) => {
          require("node:fs").writeFileSync("loaded.json", JSON.stringify({ code, loaded: process.moduleLoadList.filter((name) => !before.has(name)) }));
        });`;
      const run = spawnSync(process.execPath, ["-e", script], { cwd, encoding: "utf8" });
      expect(run.stderr).toBe("");
      const { code, loaded } = JSON.parse(readFileSync(path.join(cwd, "loaded.json"), "utf8")) as { code: number; loaded: string[] };
      expect(code).toBe(0);
      expect(run.stdout).toContain("20 written");
      const unwanted = loaded.filter((name) => /^NativeModule (stream|net|tty|assert|fs\/promises|readline|internal\/(streams|fs\/promises|fs\/rimraf|assert|readline)\b)/.test(name));
      expect(unwanted).toEqual([]);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("prints an internal error's stack at src/ positions, through the bundle's source map", async () => {
    const cli = createRequire(import.meta.url)(LOADER) as { main: (argv: unknown) => Promise<number>; sourceMappedStack: (error: unknown) => string };
    const error = await cli.main(null).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(TypeError);
    const stack = cli.sourceMappedStack(error);
    expect(stack).toContain(`${path.join(REPO_ROOT, "src", "cli.ts")}:`);
    expect(stack).not.toMatch(/cli\.cjs:\d+:\d+/);
  });
});

describe("output through file descriptors", () => {
  it("a reader that stops early (| head -1) ends the output quietly: exit 0, nothing on stderr", () => {
    const cwd = mkdtempSync(path.join(tmpdir(), "dg-bundle-epipe-"));
    try {
      // 300 apps generated, then every app's environment changed: the diff is far more than a pipe buffer holds.
      const manifest = path.join(cwd, "deploygen.yaml");
      const bench = spawnSync(process.execPath, [path.join(REPO_ROOT, "test", "bench", "run.mjs"), "--manifest", "300"], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
      writeFileSync(manifest, bench.stdout);
      expect(spawnSync(process.execPath, [CLI, "generate"], { cwd, encoding: "utf8" }).status).toBe(0);
      writeFileSync(manifest, bench.stdout.replaceAll("path: /health", "path: /healthz"));
      const whole = spawnSync(process.execPath, [CLI, "diff"], { cwd, encoding: "utf8" });
      expect(whole.stdout.length).toBeGreaterThan(4 * 64 * 1024); // a pipe buffer is 64 KiB
      const run = spawnSync("bash", ["-c", `set -o pipefail; node ${JSON.stringify(CLI)} diff | head -1`], { cwd, encoding: "utf8" });
      expect(run.stdout).toBe(`${whole.stdout.split("\n")[0]}\n`);
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
