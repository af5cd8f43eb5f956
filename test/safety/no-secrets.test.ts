// No secret lands in a committed file: generation never reads env file values (nor the
// generating user's environment) into its outputs.
import { afterAll, describe, expect, it } from "vitest";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadManifest, findManifest } from "../../src/manifest/load.js";
import { planGeneration } from "../../src/generate.js";
import { writeOutputs } from "../../src/write.js";
import { tempDir } from "./support.js";

const FIXTURE = path.join(import.meta.dirname, "..", "..", "fixtures", "codeframe");
const work = tempDir("dg-safety-secrets-");
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every file under a folder, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(path.join(dir, entry.name)) : [path.join(dir, entry.name)],
  );
}

const SECRETS = {
  ANTHROPIC_API_KEY: "sk-ant-SECRET-1f6d2b9a7c",
  DATABASE_URL: "postgres://app:pa55-SECRET-93kd@db.internal/app",
  SESSION_SECRET: "SECRET-session-5e8a0c",
  MULTI_LINE: "-----BEGIN KEY-----\nSECRET-line-two-77\n-----END KEY-----",
};

describe("generation with populated env files beside the manifest", () => {
  it("writes no env file value, and no value of the generating user's environment, into any output", async () => {
    const root = path.join(work, "project");
    cpSync(FIXTURE, root, { recursive: true });
    const envText = Object.entries(SECRETS)
      .map(([key, value]) => (value.includes("\n") ? `${key}="${value.replace(/\n/g, "\\n")}"` : `${key}=${value}`))
      .join("\n");
    writeFileSync(path.join(root, ".env.staging"), `${envText}\n`, { mode: 0o600 });
    // The example holds placeholders only; it is committed, but its values must not be copied either.
    writeFileSync(path.join(root, ".env.staging.example"), "ANTHROPIC_API_KEY=EXAMPLE-placeholder-4411\n");
    // .env.production is a folder: generation would fail with EISDIR if it ever read it.
    mkdirSync(path.join(root, ".env.production"));

    const saved = { ...process.env };
    process.env.ANTHROPIC_API_KEY = "sk-ant-FROM-SHELL-0b2e";
    process.env.CODEFRAME_ROOT = "/home/SHELL-ROOT-8c1a";
    process.env.PM2_HOME = "/home/SHELL-PM2HOME-55e0";
    try {
      const loaded = await loadManifest(findManifest(root), root);
      const generation = planGeneration(loaded);
      await writeOutputs(path.join(root, generation.output), generation.files);
    } finally {
      for (const key of ["ANTHROPIC_API_KEY", "CODEFRAME_ROOT", "PM2_HOME"]) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }

    const outputs = filesUnder(path.join(root, "deploy"));
    expect(outputs.length).toBeGreaterThanOrEqual(19);
    const needles = [
      ...Object.values(SECRETS),
      ...Object.values(SECRETS).flatMap((value) => value.split("\n")).filter((part) => part.includes("SECRET")),
      "EXAMPLE-placeholder-4411",
      "sk-ant-FROM-SHELL-0b2e",
      "SHELL-ROOT-8c1a",
      "SHELL-PM2HOME-55e0",
      root,
      work,
    ];
    for (const file of outputs) {
      const text = readFileSync(file, "utf8");
      for (const needle of needles) expect(text.includes(needle), `${path.relative(root, file)} contains ${needle}`).toBe(false);
      // Only the env file's name travels: its keys' values are read on the host at run time.
      expect(text).not.toMatch(/SECRET/);
    }
    // The names are there (to be read on the host), the values are not.
    const ecosystem = readFileSync(path.join(root, "deploy", "ecosystem.staging.config.js"), "utf8");
    expect(ecosystem).toContain('".env.staging"');
    expect(ecosystem).toContain("parseEnv(fs.readFileSync(");
  });

  it("the generated files read the env file on the host only: the ecosystem parses it, the scripts parse it as data", () => {
    const root = path.join(work, "project");
    const scripts = filesUnder(path.join(root, "deploy", "scripts")).filter((file) => file.endsWith(".sh")).map((file) => readFileSync(file, "utf8"));
    expect(scripts.length).toBeGreaterThan(10);
    let sourced = 0;
    for (const text of scripts) {
      const code = text.split("\n").filter((line) => !/^\s*#/.test(line));
      // Nothing is sourced but deploygen's own files (the library, beside it the fleet functions,
      // and the environment's generated config), nothing is evaluated. (`source`, `.` or `eval`
      // in command position: at the start, or after ; && || then do {.)
      const command = (word: string) => new RegExp(`(^|;|&&|\\|\\||\\bthen|\\bdo|\\{)\\s*${word}\\s`);
      const ownFile = /^source ("\$DG_SCRIPT_DIR\/deploygen-fleet\.sh"|"\$\(dirname -- "\$\{BASH_SOURCE\[0\]\}"\)\/deploygen-lib\.sh"|"\$\(dirname -- "\$\{BASH_SOURCE\[0\]\}"\)"\/'config-[a-z0-9-]+\.sh')$/;
      expect(code.filter((line) => command("(source|\\.)").test(line))).toEqual(code.filter((line) => ownFile.test(line)));
      expect(code.filter((line) => command("eval").test(line))).toEqual([]);
      sourced += code.filter((line) => ownFile.test(line)).length;
    }
    // Each command script sources its config, each config the library.
    expect(sourced).toBeGreaterThan(scripts.length - 2);
    // The env file itself is read by the Node helper: util.parseEnv, values as data.
    const helper = readFileSync(path.join(root, "deploy", "scripts", "deploygen-helper.cjs"), "utf8");
    expect(helper).toContain("parseEnv(text)");
  });
});
