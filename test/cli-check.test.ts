// deploygen check and deploygen diff: in-memory render compared with the disk, never a write.
import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp, cp, readFile, writeFile, chmod, rm, readdir, stat, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { runCli } from "./helpers/cli.js";
import { FIXTURES, planFixture } from "./helpers/generate.js";

const MANIFEST = path.join(FIXTURES, "codeframe", "deploygen.yaml");

async function project(): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "deploygen-check-"));
  await cp(MANIFEST, path.join(root, "deploygen.yaml"));
  const generated = await runCli(["generate", "-q"], { cwd: root });
  expect(generated.code).toBe(0);
  return root;
}

/** Every file under dir with its content, mode and mtime: proof that nothing was written. */
async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    result[path.relative(dir, file)] = `${(info.mode & 0o777).toString(8)} ${info.mtimeMs} ${await readFile(file, "utf8")}`;
  }
  return result;
}

/** How many files the codeframe manifest generates (the library and helper once, per environment the rest). */
const GENERATED = (await planFixture("codeframe")).files.length;

let root: string;
beforeEach(async () => {
  root = await project();
});

describe("deploygen check", () => {
  it("exits 0 and says so when the output is up to date", async () => {
    const result = await runCli(["check"], { cwd: root });
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(GENERATED).toBeGreaterThanOrEqual(25);
    expect(result.stdout).toBe(`up to date: deploy matches deploygen.yaml (${GENERATED} files)\n`);
  });

  it("exits 1 on a changed file, printing a unified diff with a/ b/ paths and the fix", async () => {
    const file = path.join(root, "deploy", "ecosystem.staging.config.js");
    const original = await readFile(file, "utf8");
    await writeFile(file, original.replace("'use strict';", "'use strict'; // hand edit"));
    const result = await runCli(["check"], { cwd: root });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("diff --git a/deploy/ecosystem.staging.config.js b/deploy/ecosystem.staging.config.js\n--- a/deploy/ecosystem.staging.config.js\n+++ b/deploy/ecosystem.staging.config.js\n@@ ");
    expect(result.stdout).toContain("\n-'use strict'; // hand edit\n+'use strict';\n");
    expect(result.stdout).toContain("changed  deploy/ecosystem.staging.config.js\n");
    expect(result.stderr).toBe(
      "error deploy is stale: 1 changed compared with deploygen.yaml\nfix: run `deploygen generate -m deploygen.yaml` and commit the result\n",
    );
  });

  it("lists missing files, orphans and mode differences; --json gives them as data", async () => {
    await rm(path.join(root, "deploy", "scripts", "deploy-staging.sh"));
    await chmod(path.join(root, "deploy", "scripts", "stop-staging.sh"), 0o644);
    // An orphan: a file with deploygen's header that the manifest no longer produces.
    await cp(path.join(root, "deploy", "ecosystem.staging.config.js"), path.join(root, "deploy", "ecosystem.qa.config.js"));
    // Not an orphan: a file without the header is someone else's.
    await writeFile(path.join(root, "deploy", "NOTES.md"), "hand-written\n");
    const human = await runCli(["check"], { cwd: root });
    expect(human.code).toBe(1);
    expect(human.stdout).toContain("missing  deploy/scripts/deploy-staging.sh\n");
    expect(human.stdout).toContain("mode     deploy/scripts/stop-staging.sh is 644, generated as 755\n");
    expect(human.stdout).toContain("orphan   deploy/ecosystem.qa.config.js (generated earlier; the manifest no longer produces it)\n");
    expect(human.stdout).toContain("diff --git a/deploy/scripts/stop-staging.sh b/deploy/scripts/stop-staging.sh\nold mode 100644\nnew mode 100755\n");
    expect(human.stdout).not.toContain("NOTES.md");
    expect(human.stderr).toContain("error deploy is stale: 1 with another mode, 1 missing, 1 orphan compared with deploygen.yaml\n");

    const json = await runCli(["check", "--json"], { cwd: root });
    expect(json.code).toBe(1);
    expect(json.stderr).toBe("");
    const report = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(report).toEqual({
      manifest: "deploygen.yaml",
      upToDate: false,
      outputDir: "deploy",
      checked: GENERATED,
      changed: [],
      missing: ["scripts/deploy-staging.sh"],
      orphans: ["ecosystem.qa.config.js"],
      modeChanged: [{ path: "scripts/stop-staging.sh", expected: "755", actual: "644" }],
      notGenerated: [],
      patch: "diff --git a/deploy/scripts/stop-staging.sh b/deploy/scripts/stop-staging.sh\nold mode 100644\nnew mode 100755\n",
    });
  });

  it("--json on an up-to-date output", async () => {
    const result = await runCli(["check", "--json"], { cwd: root });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ upToDate: true, changed: [], missing: [], orphans: [], modeChanged: [], patch: "" });
  });

  it("reports a planned path held by a hand-written file and says generate needs --force", async () => {
    await writeFile(path.join(root, "deploy", "scripts", "start-staging.sh"), "#!/bin/sh\necho mine\n", { mode: 0o755 });
    const result = await runCli(["check", "--json"], { cwd: root });
    expect(JSON.parse(result.stdout)).toMatchObject({ changed: ["scripts/start-staging.sh"], notGenerated: ["scripts/start-staging.sh"] });
    const human = await runCli(["check"], { cwd: root });
    expect(human.stderr).toMatch(/fix: run `deploygen generate -m deploygen\.yaml --force` and commit the result \(--force because deploy\/scripts\/start-staging\.sh lacks deploygen's header/);
  });

  it("exits 1 with the located error when the manifest is invalid", async () => {
    const manifest = path.join(root, "deploygen.yaml");
    await writeFile(manifest, (await readFile(manifest, "utf8")).replace("port: 14100", "port: 14200"));
    const result = await runCli(["check"], { cwd: root });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error deploygen\.yaml:\d+:\d+: apps\.frontend\.port: port 14200 is used by both backend and frontend in environment (production|staging)/);
  });

  it("exits 1 when nothing was generated yet", async () => {
    await rm(path.join(root, "deploy"), { recursive: true });
    const result = await runCli(["check", "--json"], { cwd: root });
    expect(result.code).toBe(1);
    const missing = (JSON.parse(result.stdout) as { missing: string[] }).missing;
    expect(missing).toHaveLength(GENERATED);
    expect(missing).toEqual(expect.arrayContaining(["scripts/deploygen-lib.sh", "scripts/deploygen-helper.cjs", "scripts/config-staging.sh", "scripts/deploy-staging.sh"]));
  });

  it("--quiet prints only the verdict and its fix", async () => {
    await writeFile(path.join(root, "deploy", "scripts", "deploygen-lib.sh"), "# Generated by deploygen\nstale\n", { mode: 0o755 });
    const stale = await runCli(["check", "--quiet"], { cwd: root });
    expect(stale).toEqual({
      code: 1,
      stdout: "",
      stderr: "error deploy is stale: 1 changed compared with deploygen.yaml\nfix: run `deploygen generate -m deploygen.yaml` and commit the result\n",
    });
    await runCli(["generate", "-q"], { cwd: root });
    expect(await runCli(["check", "-q"], { cwd: root })).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("shows paths relative to the working directory when run from elsewhere with -m", async () => {
    const parent = path.dirname(root);
    const name = path.basename(root);
    await writeFile(path.join(root, "deploy", "scripts", "start-production.sh"), "# Generated by deploygen\n", { mode: 0o755 });
    const result = await runCli(["check", "-m", `${name}/deploygen.yaml`], { cwd: parent });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`diff --git a/${name}/deploy/scripts/start-production.sh b/${name}/deploy/scripts/start-production.sh\n`);
    expect(result.stderr).toContain(`fix: run \`deploygen generate -m ${name}/deploygen.yaml\``);
  });

  it("--env compares one environment's files but still judges orphans against all environments", async () => {
    await writeFile(path.join(root, "deploy", "scripts", "start-production.sh"), "# Generated by deploygen\nedited\n", { mode: 0o755 });
    const staging = await runCli(["check", "--env", "staging", "--json"], { cwd: root });
    expect(staging.code).toBe(0);
    expect(JSON.parse(staging.stdout)).toMatchObject({ upToDate: true, orphans: [] });
    const production = await runCli(["check", "--env", "production"], { cwd: root });
    expect(production.code).toBe(1);
    expect(production.stderr).toContain("fix: run `deploygen generate -m deploygen.yaml --env production` and commit the result");
    const unknown = await runCli(["check", "--env", "qa"], { cwd: root });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("fix: use one of: production, staging");
  });
});

describe("deploygen diff", () => {
  it("prints the same diff, exits 0 and writes nothing", async () => {
    const file = path.join(root, "deploy", "scripts", "health-check-staging.sh");
    await writeFile(file, `${await readFile(file, "utf8")}# local edit\n`);
    await chmod(path.join(root, "deploy", "scripts", "start-staging.sh"), 0o600);
    await rm(path.join(root, "deploy", "systemd", "codeframe-staging@.service"));
    const before = await snapshotTree(root);
    const diff = await runCli(["diff"], { cwd: root });
    const check = await runCli(["check"], { cwd: root });
    expect(await snapshotTree(root)).toEqual(before);
    expect(diff.code).toBe(0);
    expect(check.code).toBe(1);
    const patches = (text: string) => text.slice(0, text.indexOf("\n\n"));
    expect(patches(diff.stdout)).toBe(patches(check.stdout));
    expect(diff.stdout).toContain("-# local edit\n");
    expect(diff.stdout).toContain("missing  deploy/systemd/codeframe-staging@.service\n");
    expect(diff.stdout).toContain("1 changed, 1 with another mode, 1 missing; to write them: `deploygen generate -m deploygen.yaml` and commit the result\n");
    expect(diff.stderr).toBe("");
  });

  it("prints a patch that git apply accepts and that makes check pass", async () => {
    if (spawnSync("git", ["--version"]).status !== 0) throw new Error("git is required for this test");
    const git = (...args: string[]) => execFileSync("git", ["-c", "core.fileMode=true", ...args], { cwd: root, encoding: "utf8" });
    git("init", "-q");
    const file = path.join(root, "deploy", "ecosystem.production.config.js");
    await writeFile(file, (await readFile(file, "utf8")).replace("const fs = require('node:fs');", "const fs = require('fs');\n// extra line"));
    await chmod(path.join(root, "deploy", "scripts", "deploy-production.sh"), 0o644);
    const diff = await runCli(["diff", "-q"], { cwd: root });
    expect(diff.stdout).not.toBe("");
    await writeFile(path.join(root, "fix.patch"), diff.stdout);
    git("apply", "fix.patch");
    await rm(path.join(root, "fix.patch"));
    expect((await runCli(["check"], { cwd: root })).code).toBe(0);
  });

  it("colours the diff only on a terminal without NO_COLOR", async () => {
    await writeFile(path.join(root, "deploy", "scripts", "stop-production.sh"), "# Generated by deploygen\nold\n", { mode: 0o755 });
    const tty = await runCli(["diff"], { cwd: root, tty: true });
    expect(tty.stdout).toContain("\u001b[31m-old\u001b[0m");
    expect(tty.stdout).toContain("\u001b[33mchanged\u001b[0m");
    const noColor = await runCli(["diff"], { cwd: root, tty: true, env: { NO_COLOR: "1" } });
    expect(noColor.stdout).not.toContain("\u001b[");
    const pipe = await runCli(["diff"], { cwd: root });
    expect(pipe.stdout).not.toContain("\u001b[");
  });

  it("with --out compares another folder", async () => {
    const elsewhere = path.join(root, "elsewhere");
    await mkdir(elsewhere);
    const result = await runCli(["diff", "--out", "elsewhere", "--json"], { cwd: root });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ outputDir: "elsewhere", upToDate: false });
  });
});
