// The documentation that can drift is generated or executed: docs/manifest.md comes from the
// schema, and the CI recipe's workflow and hook are parsed and run.
import { describe, expect, it } from "vitest";
import { readFile, writeFile, mkdir, symlink, chmod, cp } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { parse as parseYaml } from "yaml";
import { manifestReference, anchor } from "../src/docs.js";
import { manifestJsonSchema } from "../src/manifest/schema.js";
import { REPO_ROOT, FIXTURES } from "./helpers/generate.js";
import { runCli } from "./helpers/cli.js";
import { scratchDir } from "./helpers/scratch.js";

const DOCS = path.join(REPO_ROOT, "docs");

/** Fenced code blocks of a Markdown file: [language, text]. */
function codeBlocks(markdown: string): [string, string][] {
  const blocks: [string, string][] = [];
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of markdown.split("\n")) {
    if (open) {
      if (/^ {0,3}```\s*$/.test(line)) {
        blocks.push([open.lang, open.lines.join("\n")]);
        open = undefined;
      } else open.lines.push(line);
    } else {
      const start = /^ {0,3}```(\S*)/.exec(line);
      if (start) open = { lang: start[1] ?? "", lines: [] };
    }
  }
  return blocks;
}

describe("docs/manifest.md", () => {
  it("is generated from the schema's descriptions (npm test -- test/docs.test.ts -u regenerates it)", async () => {
    await expect(manifestReference()).toMatchFileSnapshot("../docs/manifest.md");
  });

  it("documents every field of the schema, each with a description, and its links resolve", () => {
    const text = manifestReference();
    const fields: string[] = [];
    const walk = (schema: Record<string, unknown>) => {
      const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [name, child] of Object.entries(properties)) {
        if (name !== "NODE_ENV") fields.push(name);
        walk(child);
        if (typeof child.additionalProperties === "object") walk(child.additionalProperties as Record<string, unknown>);
      }
    };
    walk(manifestJsonSchema());
    for (const field of new Set(fields)) expect(text, field).toContain(`| \`${field}\` |`);
    expect(text).not.toMatch(/\| *\|\n/);
    const anchors = new Set([...text.matchAll(/^## (.*)$/gm)].map((match) => anchor(match[1]!)));
    for (const [, target] of text.matchAll(/\]\(#([^)]+)\)/g)) expect(anchors, target).toContain(target);
  });

  it("fails loudly when a field has no description", () => {
    const schema = manifestJsonSchema() as { properties: Record<string, Record<string, unknown>> };
    delete schema.properties.output!.description;
    expect(() => manifestReference(schema)).toThrow("docs: output has no description; add .describe() to it in src/manifest/schema.ts");
  });
});

describe("docs/ci.md", () => {
  const read = () => readFile(path.join(DOCS, "ci.md"), "utf8");

  it("has a GitHub Actions job that installs and runs deploygen check", async () => {
    const workflow = codeBlocks(await read()).find(([lang, text]) => lang === "yaml" && text.includes("jobs:"));
    expect(workflow).toBeDefined();
    const data = parseYaml(workflow![1]) as { on: unknown; jobs: Record<string, { "runs-on": string; steps: { run?: string; uses?: string }[] }> };
    expect(data.on).toHaveProperty("pull_request");
    const job = Object.values(data.jobs)[0]!;
    const runs = job.steps.map((step) => step.run ?? "");
    expect(runs.indexOf("npm ci")).toBeGreaterThanOrEqual(0);
    expect(runs.findIndex((run) => /^npx --no-install deploygen check$/.test(run))).toBeGreaterThan(runs.indexOf("npm ci"));
    expect(job.steps[0]!.uses).toMatch(/^actions\/checkout@/);
  });

  it("has a pre-commit hook that refuses a stale or unstaged deploy/ and accepts a regenerated one", async () => {
    const hook = codeBlocks(await read()).find(([lang, text]) => lang === "sh" && text.startsWith("#!/bin/sh"));
    expect(hook).toBeDefined();
    if (!existsSync(path.join(REPO_ROOT, "dist", "cli.js"))) throw new Error("dist/cli.js is missing: run `npm run build` (npm ci runs it) before the tests");
    const repo = await scratchDir("deploygen-hook-");
    const git = (...args: string[]) => spawnSync("git", args, { cwd: repo, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    git("init", "-q");
    git("config", "user.email", "test@example.com");
    git("config", "user.name", "test");
    // deploygen installed in the project, as the recipe assumes (npx --no-install finds it).
    await mkdir(path.join(repo, "node_modules", ".bin"), { recursive: true });
    await symlink(path.join(REPO_ROOT, "bin", "deploygen.js"), path.join(repo, "node_modules", ".bin", "deploygen"));
    await writeFile(path.join(repo, ".gitignore"), "node_modules/\n");
    await cp(path.join(FIXTURES, "codeframe", "deploygen.yaml"), path.join(repo, "deploygen.yaml"));
    // The same binary as the hook's, so that generate and check agree whatever dist/ was built from.
    const generate = () => spawnSync(path.join(repo, "node_modules", ".bin", "deploygen"), ["generate", "-q"], { cwd: repo, encoding: "utf8" }).status;
    expect(generate()).toBe(0);
    expect(git("add", ".").status).toBe(0);
    expect(git("commit", "-q", "-m", "initial").status).toBe(0);
    const hookFile = path.join(repo, ".git", "hooks", "pre-commit");
    await writeFile(hookFile, `${hook![1]}\n`);
    await chmod(hookFile, 0o755);
    expect(spawnSync("sh", ["-n", hookFile]).status).toBe(0);

    // The manifest changes, deploy/ does not: refused.
    const manifest = path.join(repo, "deploygen.yaml");
    await writeFile(manifest, (await readFile(manifest, "utf8")).replace("port: 14100", "port: 14101"));
    git("add", "deploygen.yaml");
    const stale = git("commit", "-q", "-m", "port");
    expect(stale.status).not.toBe(0);
    expect(stale.stderr).toContain("deploy is stale");
    expect(stale.stderr).toContain("pre-commit: run npx deploygen generate");
    // Regenerated but not staged: refused.
    expect(generate()).toBe(0);
    const unstaged = git("commit", "-q", "-m", "port");
    expect(unstaged.status).not.toBe(0);
    expect(unstaged.stderr).toContain("pre-commit: stage them with git add deploygen.yaml deploy");
    // Staged: accepted.
    git("add", "deploygen.yaml", "deploy");
    const accepted = git("commit", "-q", "-m", "port");
    expect(accepted.stderr).toBe("");
    expect(accepted.status).toBe(0);
    expect(execFileSync("git", ["log", "--oneline"], { cwd: repo, encoding: "utf8" }).split("\n").filter(Boolean)).toHaveLength(2);
  });

  it("has a pre-commit framework config that runs deploygen check", async () => {
    const config = codeBlocks(await read()).find(([lang, text]) => lang === "yaml" && text.includes("repos:"));
    const data = parseYaml(config![1]) as { repos: { repo: string; hooks: { entry: string; files: string }[] }[] };
    expect(data.repos[0]!.hooks[0]!.entry).toBe("npx --no-install deploygen check");
    const files = new RegExp(data.repos[0]!.hooks[0]!.files);
    for (const file of ["deploygen.yaml", "deploygen.yml", "deploy/ecosystem.staging.config.js"]) expect(files.test(file), file).toBe(true);
    expect(files.test("src/app.ts")).toBe(false);
  });
});

describe("docs/runbook.md", () => {
  it("covers first install, update and rollback with the generated scripts' real names and options", async () => {
    const text = await readFile(path.join(DOCS, "runbook.md"), "utf8");
    for (const heading of ["## First install (on the host)", "## Update", "## Rollback"]) expect(text).toContain(heading);
    expect(text).toMatch(/git checkout --detach <good-commit>\n.*deploy\/scripts\/deploy-staging\.sh/);
    // The codeframe example, with releases for staging as the runbook's rollback section has them.
    const root = await scratchDir("deploygen-runbook-");
    const manifest = (await readFile(path.join(FIXTURES, "codeframe", "deploygen.yaml"), "utf8")).replace("  staging:\n", "  staging:\n    releases: { keep: 5 }\n");
    expect(manifest).toContain("releases: { keep: 5 }");
    await writeFile(path.join(root, "deploygen.yaml"), manifest);
    expect((await runCli(["generate", "-q"], { cwd: root })).code).toBe(0);
    // Every deploy/... path the runbook names exists in the codeframe example's output.
    for (const [file] of text.matchAll(/deploy\/(scripts|systemd)\/[\w@.-]+/g)) expect(existsSync(path.join(root, file)), file).toBe(true);
    // Every option it passes to a generated script is one the script accepts: the script reads
    // its options in order, so OPTION --help prints the usage (exit 0) only when OPTION is known.
    const accepts = (script: string, option: string) =>
      spawnSync("bash", [path.join(root, "deploy", "scripts", script), option, "--help"], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    const unknown = accepts("deploy-staging.sh", "--no-such-option");
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("unknown option: --no-such-option");
    const options = [...text.matchAll(/([a-z-]+-staging\.sh) (--[a-z-]+)/g)];
    expect(options.length).toBeGreaterThan(0);
    for (const [, script, option] of options) {
      const result = accepts(script!, option!);
      expect(result.status, `${script} ${option}: ${result.stderr}`).toBe(0);
      expect(result.stdout).toMatch(/^Usage: /);
    }
  });
});
