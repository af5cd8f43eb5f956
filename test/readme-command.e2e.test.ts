// The README's first command, run exactly as written in a fresh copy of the repository: it must
// succeed and produce the files it promises (every file the example manifest generates, and every
// path the README names under the output folder), and leave the tests passing when they run next.
import { describe, expect, it, onTestFinished } from "vitest";
import { mkdtemp, readFile, cp, mkdir, rm, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { REPO_ROOT } from "./helpers/generate.js";
import { loadManifest } from "../src/manifest/load.js";
import { planGeneration } from "../src/generate.js";

/** The first command of the README's first ```sh / ```bash block, continuation lines joined. */
export function firstReadmeCommand(readme: string): string {
  const block = /^```(?:sh|bash|shell|console)\s*\n([\s\S]*?)^```/m.exec(readme);
  if (!block) throw new Error("README.md has no ```sh or ```bash block");
  const lines = block[1]!.split("\n");
  let command = "";
  for (const raw of lines) {
    const line = raw.replace(/^\$ /, "");
    if (command === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      command += `${line.slice(0, -1)}\n`;
      continue;
    }
    command += line;
    break;
  }
  if (command.trim() === "") throw new Error("README.md's first shell block has no command");
  return command;
}

/** Files of the working tree a clone would have: tracked, plus new files not ignored. */
function repositoryFiles(): string[] {
  return execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, encoding: "utf8" })
    .split("\0")
    .filter((file) => file !== "" && existsSync(path.join(REPO_ROOT, file)));
}

describe("README.md", () => {
  it("extracts the first command of the first shell block", () => {
    expect(firstReadmeCommand("# x\n\n```sh\n# comment\n$ npm ci && \\\n  node a.js\nsecond\n```\n")).toBe("npm ci && \n  node a.js");
  });

  it("its first command works as written in a fresh copy and produces the promised files", async () => {
    const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
    const command = firstReadmeCommand(readme);
    const scratch = await mkdtemp(path.join(tmpdir(), "deploygen-readme-"));
    onTestFinished(() => rm(scratch, { recursive: true, force: true }));
    const copy = path.join(scratch, "deploygen");
    await mkdir(copy);
    for (const file of repositoryFiles()) {
      await mkdir(path.dirname(path.join(copy, file)), { recursive: true });
      await cp(path.join(REPO_ROOT, file), path.join(copy, file));
    }
    // Nothing built: no dist/, no node_modules/ (the command installs them; its first run builds dist/).
    expect(existsSync(path.join(copy, "dist"))).toBe(false);
    expect(existsSync(path.join(copy, "node_modules"))).toBe(false);
    // A clone: git knows which files are the repository's (the tests ask it).
    execFileSync("git", ["init", "-q"], { cwd: copy });
    execFileSync("git", ["add", "-A"], { cwd: copy });

    // What the command promises: the example manifest's generated files.
    const manifestArg = /(?:-m|--manifest)[ =](\S+)/.exec(command)?.[1];
    expect(manifestArg, `the README's first command names a manifest: ${command}`).toBeDefined();
    const manifest = path.join(copy, manifestArg!);
    const plan = planGeneration(await loadManifest(manifest, copy));
    const outputDir = path.join(path.dirname(manifest), plan.output);
    // If the repository commits the generated output, remove it so the command has to produce it.
    await rm(outputDir, { recursive: true, force: true });

    // Exactly as written, by the shell the README's block is for; npm reads its cache first.
    const run = spawnSync("bash", ["-c", command], {
      cwd: copy,
      encoding: "utf8",
      env: { ...process.env, npm_config_prefer_offline: "true", npm_config_audit: "false", npm_config_fund: "false", NO_COLOR: "1" },
      timeout: 240_000,
    });
    expect(run.status, `${command}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`).toBe(0);

    const written = (await readdir(outputDir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).length;
    expect(written).toBe(plan.files.length);
    for (const file of plan.files) {
      const target = path.join(outputDir, file.path);
      expect(existsSync(target), file.path).toBe(true);
      expect(await readFile(target, "utf8"), file.path).toBe(file.content);
    }
    // Paths the README itself names under the output folder exist too.
    const outputFromRoot = path.relative(copy, outputDir).split(path.sep).join("/");
    for (const [mentioned] of readme.matchAll(new RegExp(`${outputFromRoot.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/[\\w@./-]+[\\w]`, "g"))) {
      if (/[<>*]/.test(mentioned)) continue;
      expect(existsSync(path.join(copy, mentioned)), mentioned).toBe(true);
    }

    // Then the tests: the one that looks for generated output in the fixtures passes in this copy.
    const tests = spawnSync("npx", ["vitest", "run", "--config", "test/vitest.config.ts", "test/manifest-validation.test.ts", "-t", "output folder holds"], {
      cwd: copy,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1" },
      timeout: 120_000,
    });
    expect(tests.status, `${tests.stdout}\n${tests.stderr}`).toBe(0);
    expect(tests.stdout).toMatch(/Tests\s+1 passed/);
  }, 300_000);
});
