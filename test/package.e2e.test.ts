// The package as a user installs it: `npm pack`, then `npm install <tarball>` in a new project.
// It must install without an install script (npm warns about those) and without building, and
// work there: --help, generate, check, and stack traces mapped through the shipped source map.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { FIXTURES, REPO_ROOT } from "./helpers/generate.js";

/** Scripts npm runs when a package is installed as a dependency. */
const INSTALL_SCRIPTS = ["preinstall", "install", "postinstall", "prepare"];
const NPM_ENV = { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false", NO_COLOR: "1" };

let scratch: string;
let tarball: string;
let project: string;
let installOutput: string;

beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), "deploygen-package-"));
  // dist/ is current (test/global-setup.ts); prepack would build the same files again.
  const packed = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], { cwd: REPO_ROOT, encoding: "utf8", env: NPM_ENV });
  tarball = path.join(scratch, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  project = path.join(scratch, "project");
  mkdirSync(project);
  writeFileSync(path.join(project, "package.json"), `${JSON.stringify({ name: "uses-deploygen", private: true }, null, 2)}\n`);
  const install = spawnSync("npm", ["install", "--prefer-offline", tarball], { cwd: project, encoding: "utf8", env: NPM_ENV, timeout: 180_000 });
  installOutput = `${install.stdout}${install.stderr}`;
  if (install.status !== 0) throw new Error(`npm install ${tarball} failed:\n${installOutput}`);
}, 240_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const installed = () => path.join(project, "node_modules", "deploygen");
const npx = (args: string[], cwd = project) => spawnSync("npx", ["--no", "--", "deploygen", ...args], { cwd, encoding: "utf8", env: NPM_ENV });

describe("the packed package", () => {
  it("has no install script, ships the built CLI and no sources or tests", () => {
    const manifest = JSON.parse(readFileSync(path.join(installed(), "package.json"), "utf8")) as { scripts?: Record<string, string> };
    for (const name of INSTALL_SCRIPTS) expect(manifest.scripts?.[name], name).toBeUndefined();
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean);
    for (const file of ["package/bin/deploygen.js", "package/dist/run.cjs", "package/dist/cli.cjs", "package/dist/cli.cjs.map", "package/dist/cli.cache", "package/templates/ecosystem.config.js.hbs", "package/schemas/manifest.schema.json"]) {
      expect(files, file).toContain(file);
    }
    expect(files.filter((file) => /^package\/(src|test|fixtures|docs)\//.test(file))).toEqual([]);
  });

  it("installs without npm's install-script warning, and without building", () => {
    expect(installOutput).not.toMatch(/install-scripts|install script/i);
    expect(existsSync(path.join(installed(), "src"))).toBe(false);
    expect(readdirSync(path.join(installed(), "dist")).sort()).toEqual(["cli.cache", "cli.cjs", "cli.cjs.map", "cli.js", "run.cjs"]);
  });

  it("npx deploygen --help works", () => {
    const help = npx(["--help"]);
    expect(help.stderr).toBe("");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^deploygen <command> \[options\]/);
  });

  it("generates the example project, which is then up to date", () => {
    const manifest = path.join(project, "deploygen.yaml");
    copyFileSync(path.join(FIXTURES, "codeframe", "deploygen.yaml"), manifest);
    const generated = npx(["generate"]);
    expect(generated.stderr).toBe("");
    expect(generated.status).toBe(0);
    expect(generated.stdout).toMatch(/^\d+ written, 0 unchanged$/m);
    expect(existsSync(path.join(project, "deploy", "ecosystem.staging.config.js"))).toBe(true);
    const checked = npx(["check"]);
    expect(checked.status, checked.stdout + checked.stderr).toBe(0);
  });

  it("maps an internal error's stack to src/ positions with the shipped source map", async () => {
    const cli = createRequire(import.meta.url)(path.join(installed(), "dist", "run.cjs")) as { main: (argv: unknown) => Promise<number>; sourceMappedStack: (error: unknown) => string };
    const error = await cli.main(null).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(cli.sourceMappedStack(error)).toContain(`${path.join(installed(), "src", "cli.ts")}:`);
  });
});
