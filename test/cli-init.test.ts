// deploygen init: a commented starter manifest that validates and generates as written, and never
// replaces an existing manifest.
import { describe, expect, it } from "vitest";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { parse as parseYaml } from "yaml";
import { runCli } from "./helpers/cli.js";
import { REPO_ROOT } from "./helpers/generate.js";
import { PRESETS, SCHEMA_IN_PACKAGE } from "../src/init.js";
import { manifestJsonSchema } from "../src/manifest/schema.js";
import { scratchDir } from "./helpers/scratch.js";

async function folder(name = "shop-app"): Promise<string> {
  const dir = path.join(await scratchDir("deploygen-init-"), name);
  await mkdir(dir);
  return dir;
}

const validateAgainstJsonSchema = new Ajv({ allErrors: true, strict: false }).compile(manifestJsonSchema());

describe("deploygen init", () => {
  it.each(PRESETS)("preset %s: writes a commented manifest that validates, generates and checks as is", async (preset) => {
    const dir = await folder();
    const init = await runCli(["init", "--preset", preset], { cwd: dir });
    expect(init).toMatchObject({ code: 0, stderr: "" });
    expect(init.stdout).toBe(`written deploygen.yaml (preset ${preset}, project shop-app)\nnext: replace the values marked "change:", then run deploygen generate\n`);
    const text = await readFile(path.join(dir, "deploygen.yaml"), "utf8");
    const lines = text.split("\n");
    expect(lines[0]).toBe(`# yaml-language-server: $schema=./${SCHEMA_IN_PACKAGE}`);
    expect(text).not.toMatch(/__[A-Z_]+__/);
    expect(text).toContain("project: shop-app");
    expect(text).toContain("SHOP_APP_ENV");
    // Commented: a header and an explanation on most fields.
    expect(lines.filter((line) => /^\s*#/.test(line)).length).toBeGreaterThanOrEqual(6);
    expect(lines.filter((line) => /\S\s+# /.test(line)).length).toBeGreaterThanOrEqual(12);
    // What an editor sees through the schema reference, and what deploygen itself says.
    expect(validateAgainstJsonSchema(parseYaml(text)), JSON.stringify(validateAgainstJsonSchema.errors)).toBe(true);
    expect(await runCli(["validate"], { cwd: dir })).toMatchObject({ code: 0, stderr: "" });
    const generate = await runCli(["generate", "-q"], { cwd: dir });
    expect(generate).toMatchObject({ code: 0, stderr: "" });
    expect(existsSync(path.join(dir, "deploy", "scripts", "deploy-production.sh"))).toBe(true);
    expect((await runCli(["check", "-q"], { cwd: dir })).code).toBe(0);
  });

  it("refers editors to the schema deploygen ships, which exists in the package", async () => {
    const packageJson = JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as { name: string; files: string[] };
    const inPackage = SCHEMA_IN_PACKAGE.replace(`node_modules/${packageJson.name}/`, "");
    expect(packageJson.files).toContain(inPackage.split("/")[0]);
    expect(existsSync(path.join(REPO_ROOT, inPackage))).toBe(true);
  });

  it("points at the nearest installed deploygen when the manifest is in a subfolder", async () => {
    const project = await folder("mono");
    await mkdir(path.join(project, "node_modules", "deploygen", "schemas"), { recursive: true });
    await writeFile(path.join(project, SCHEMA_IN_PACKAGE), "{}");
    const result = await runCli(["init", "-m", "services/api/deploygen.yaml", "--preset", "python", "--project", "api"], { cwd: project });
    expect(result.code).toBe(0);
    const text = await readFile(path.join(project, "services", "api", "deploygen.yaml"), "utf8");
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=../../node_modules/deploygen/schemas/manifest.schema.json");
    expect(result.stdout).toContain("then run deploygen generate -m services/api/deploygen.yaml\n");
  });

  it("refuses to overwrite an existing manifest (exit 1, with the fix) and leaves it untouched", async () => {
    const dir = await folder();
    await writeFile(path.join(dir, "deploygen.yaml"), "mine\n");
    const result = await runCli(["init"], { cwd: dir });
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: "error deploygen.yaml already exists; init never overwrites a manifest\nfix: edit deploygen.yaml, or move it away and run deploygen init again (or write elsewhere with -m FILE)\n",
    });
    expect(await readFile(path.join(dir, "deploygen.yaml"), "utf8")).toBe("mine\n");
  });

  it("refuses when another default manifest name exists (it would be the one deploygen reads)", async () => {
    const dir = await folder();
    await writeFile(path.join(dir, "deploygen.yml"), "mine\n");
    const result = await runCli(["init", "--preset", "node"], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error deploygen.yml already exists");
    expect(existsSync(path.join(dir, "deploygen.yaml"))).toBe(false);
  });

  it("checks --project with the manifest's name rule (exit 2) and writes nothing", async () => {
    const dir = await folder();
    const result = await runCli(["init", "--project", "Shop_App"], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'error --project "Shop_App" is not a valid name: a project name is lower-case letters, digits and single dashes, starting with a letter (for example "web-api")\nfix: pass --project NAME, for example --project shop-app\n',
    );
    expect(existsSync(path.join(dir, "deploygen.yaml"))).toBe(false);
  });

  it("derives the project name from the folder, normalised", async () => {
    const dir = await folder("My Shop.v2");
    expect((await runCli(["init", "--preset", "node"], { cwd: dir })).stdout).toContain("project my-shop-v2)");
    const digits = await folder("2024");
    const result = await runCli(["init"], { cwd: digits });
    expect(result.code).toBe(0);
    expect(await readFile(path.join(digits, "deploygen.yaml"), "utf8")).toContain("project: app-2024");
  });

  it("rejects an unknown preset (exit 2) and lists the presets", async () => {
    const result = await runCli(["init", "--preset", "rails"], { cwd: await folder() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Choices: "nextjs-fastapi", "node", "python"');
    expect(result.stderr).toMatch(/\nfix: run deploygen --help/);
  });

  it("writes JSON (with $schema, without comments) for a .json name; it validates", async () => {
    const dir = await folder();
    const result = await runCli(["init", "-m", "deploygen.json", "--preset", "node", "--json"], { cwd: dir });
    expect(JSON.parse(result.stdout)).toEqual({ written: "deploygen.json", preset: "node", project: "shop-app" });
    const data = JSON.parse(await readFile(path.join(dir, "deploygen.json"), "utf8")) as Record<string, unknown>;
    expect(data.$schema).toBe(`./${SCHEMA_IN_PACKAGE}`);
    expect((await runCli(["generate", "-q"], { cwd: dir })).code).toBe(0);
  });

  it("refuses a manifest name deploygen would not read", async () => {
    const result = await runCli(["init", "-m", "deploy.toml"], { cwd: await folder() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("fix: name it deploygen.yaml");
  });
});
