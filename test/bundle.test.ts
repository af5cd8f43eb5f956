// The bundled CLI (src/build/bundle.mjs): the same output as the sources, a light start-up, usable
// stack traces. The bundle itself is exercised by every test that runs bin/deploygen.js.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { CLI, FIXTURES, REPO_ROOT } from "./helpers/generate.js";
import { runCli } from "./helpers/cli.js";

const LOADER = path.join(REPO_ROOT, "dist", "run.cjs");

describe("the bundled CLI and the sources print the same help and usage errors", () => {
  // The bundle rewrites import.meta.url (yargs finds its locale strings with it): help and errors must not change.
  const helpCases = [[], ["--help"], ...["generate", "check", "diff", "validate", "schema", "init", "import"].map((command) => [command, "--help"]), ["generate", "--colour"], ["nonsense"], ["import"], ["--version"], ["generate", "--version"]];
  it.each(helpCases.map((argv) => [argv.join(" ") || "(no arguments)", argv]))("%s", async (_name, argv) => {
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
      expect(run.stdout).toMatch(/^\d+ written, 0 unchanged$/m);
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
      expect(whole.stdout.length).toBeGreaterThan(2 * 64 * 1024); // a pipe buffer is 64 KiB
      const run = spawnSync("bash", ["-c", `set -o pipefail; node ${JSON.stringify(CLI)} diff | head -1`], { cwd, encoding: "utf8" });
      expect(run.stdout).toBe(`${whole.stdout.split("\n")[0]}\n`);
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
