// The command line's manners: --help everywhere, usage errors exit 2 with the fix, colour only
// on a terminal without NO_COLOR, --quiet, and every error ending with the action that fixes it.
import { describe, expect, it } from "vitest";
import { cp, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { runCli } from "./helpers/cli.js";
import { CLI, FIXTURES, REPO_ROOT } from "./helpers/generate.js";
import { scratchDir } from "./helpers/scratch.js";

const COMMANDS = ["generate", "check", "diff", "validate", "schema", "init", "import"] as const;

async function project(): Promise<string> {
  const root = await scratchDir("deploygen-help-");
  await cp(path.join(FIXTURES, "codeframe", "deploygen.yaml"), path.join(root, "deploygen.yaml"));
  return root;
}

describe("--help", () => {
  it("lists every command", async () => {
    const result = await runCli(["--help"], { cwd: REPO_ROOT });
    expect(result.code).toBe(0);
    for (const command of COMMANDS) expect(result.stdout).toMatch(new RegExp(`^ {2}deploygen ${command}\\b`, "m"));
  });

  it.each(COMMANDS)("deploygen %s --help exits 0 with its usage and options", async (command) => {
    const cwd = await project();
    const result = await runCli([command, "--help"], { cwd });
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(new RegExp(`^deploygen ${command}\\b`));
    expect(result.stdout).toContain("--help");
    // Help does not run the command.
    expect(existsSync(path.join(cwd, "deploy"))).toBe(false);
  });
});

describe("usage errors exit 2 and end with the fix", () => {
  it.each([
    [["deploy"], "Unknown argument: deploy"],
    [[], "name a command"],
    [["check", "--colour"], "Unknown argument: colour"],
    [["import"], "Not enough non-option arguments"],
  ])("deploygen %j", async (argv, message) => {
    const result = await runCli(argv, { cwd: await project() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toMatch(/\nfix: run deploygen --help \(or deploygen <command> --help\)\n$/);
  });
});

describe("every user error ends with the action that fixes it", () => {
  it.each([
    ["check", ["check"], "no manifest"],
    ["diff", ["diff", "-m", "missing.yaml"], "manifest not found"],
    ["validate", ["validate", "-m", "missing.yaml"], "manifest not found"],
    ["import", ["import", "missing.js"], "does not exist"],
  ])("%s", async (_name, argv, message) => {
    const cwd = await scratchDir("deploygen-empty-");
    const result = await runCli(argv, { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(message);
    expect(result.stderr.trimEnd().split("\n").at(-1)).toMatch(/^fix: \S/);
  });

  it("an invalid manifest: each problem is located and says what to do", async () => {
    const cwd = await project();
    await writeFile(path.join(cwd, "deploygen.yaml"), "version: 1\nproject: Shop\napps: {}\nenvironments: {}\n");
    const result = await runCli(["check"], { cwd });
    expect(result.code).toBe(1);
    for (const line of result.stderr.trimEnd().split("\n")) expect(line).toMatch(/^(error deploygen\.yaml:\d+:\d+: .*(Fix|fix): |fix: )/);
  });
});

describe("colour and --quiet", () => {
  it("colours only on a terminal, and never with NO_COLOR", async () => {
    const cwd = await project();
    const tty = await runCli(["validate"], { cwd, tty: true });
    expect(tty.stdout).toBe("\u001b[32mvalid\u001b[0m deploygen.yaml: 2 apps, 2 environments\n");
    expect((await runCli(["validate"], { cwd, tty: true, env: { NO_COLOR: "1" } })).stdout).toBe("valid deploygen.yaml: 2 apps, 2 environments\n");
    expect((await runCli(["validate"], { cwd, tty: true, env: { TERM: "dumb" } })).stdout).not.toContain("\u001b[");
    expect((await runCli(["validate"], { cwd })).stdout).toBe("valid deploygen.yaml: 2 apps, 2 environments\n");
    const error = await runCli(["check"], { cwd, tty: true });
    expect(error.stderr).toContain("\u001b[31merror\u001b[0m deploy is stale");
  });

  it("the real binary colours under a pseudo-terminal and not through a pipe", async () => {
    if (!existsSync(path.join(REPO_ROOT, "dist", "cli.js"))) throw new Error("dist/cli.js is missing: run `npm run build` (npm ci runs it) before the tests");
    if (spawnSync("script", ["--version"]).status !== 0) throw new Error("the tests need `script` (util-linux) for a pseudo-terminal");
    const cwd = await project();
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: "xterm" };
    delete env.NO_COLOR;
    delete env.FORCE_COLOR;
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} validate`;
    const terminal = spawnSync("script", ["-qec", command, "/dev/null"], { cwd, env, encoding: "utf8" });
    expect(terminal.stdout).toContain("\u001b[32mvalid\u001b[0m");
    const noColor = spawnSync("script", ["-qec", command, "/dev/null"], { cwd, env: { ...env, NO_COLOR: "1" }, encoding: "utf8" });
    expect(noColor.stdout).not.toContain("\u001b[");
    expect(noColor.stdout).toContain("valid deploygen.yaml");
    const pipe = spawnSync(process.execPath, [CLI, "validate"], { cwd, env, encoding: "utf8" });
    expect(pipe.stdout).toBe("valid deploygen.yaml: 2 apps, 2 environments\n");
  });

  it("--quiet prints nothing on success, and still prints errors", async () => {
    const cwd = await project();
    for (const argv of [["generate", "-q"], ["check", "--quiet"], ["validate", "-q"], ["diff", "-q"]]) expect(await runCli(argv, { cwd })).toEqual({ code: 0, stdout: "", stderr: "" });
    const init = await runCli(["init", "-q"], { cwd });
    expect(init.code).toBe(1);
    expect(init.stdout).toBe("");
    expect(init.stderr).toMatch(/^error deploygen\.yaml already exists/);
  });
});
