// Manifest validation as a user meets it: every fixture in fixtures/invalid runs through the real
// CLI (bin/deploygen.js; test/global-setup.ts rebuilds dist/ when src/ changed) and must fail with exit code 1, the
// manifest path, line:column and a fix, and no stack trace. The pure stages (parseManifestText,
// validateManifest, each rule) are tested in-process below.
import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadManifest, parseManifestText } from "../src/manifest/load.js";
import { planGeneration } from "../src/generate.js";
import { validateManifest } from "../src/manifest/validate.js";
import { ManifestSchema, type Manifest } from "../src/manifest/schema.js";
import * as rules from "../src/manifest/rules.js";
import { ManifestError, formatProblem, formatManifestPath, type ManifestProblem } from "../src/errors.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "bin", "deploygen.js");
const INVALID_DIR = path.join(ROOT, "fixtures", "invalid");
const VALID_FIXTURES = ["codeframe", "node-api", "python-api", "json-manifest"] as const;

interface Expectation {
  /** Manifest path as printed (`apps.api.port`, `(manifest)` for the whole file). */
  path: string;
  line: number;
  column: number;
  /** Substrings the error line must contain. */
  message: string[];
}

/** `# expect: <path> @ <line>:<col>` on line 1 (YAML), `# message: ...` lines anywhere, or FILE.expect.json. */
function readExpectation(file: string): Expectation {
  if (file.endsWith(".json")) {
    const sidecar = JSON.parse(readFileSync(file.replace(/\.json$/, ".expect.json"), "utf8")) as Partial<Expectation>;
    return { path: String(sidecar.path), line: Number(sidecar.line), column: Number(sidecar.column), message: sidecar.message ?? [] };
  }
  const text = readFileSync(file, "utf8");
  const first = /^# expect: (\S+) @ (\d+):(\d+)\n/.exec(text);
  if (!first) throw new Error(`${file}: line 1 must be "# expect: <manifest.path> @ <line>:<col>"`);
  const message = [...text.matchAll(/^# message: (.*)$/gm)].map((match) => match[1] ?? "");
  return { path: first[1] ?? "", line: Number(first[2]), column: Number(first[3]), message };
}

const INVALID_FIXTURES = readdirSync(INVALID_DIR)
  .filter((name) => /\.(ya?ml|json)$/.test(name) && !name.endsWith(".expect.json"))
  .sort();

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs tasks with a small concurrency limit (the machine has two cores; node start-up dominates). */
async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|<anonymous>\)?)$/m;

describe("deploygen validate on every invalid fixture (real CLI)", () => {
  const results = new Map<string, CliResult>();

  beforeAll(async () => {
    const all = await mapLimit(INVALID_FIXTURES, 4, (name) => runCli(["validate", "-m", `fixtures/invalid/${name}`]));
    INVALID_FIXTURES.forEach((name, index) => results.set(name, all[index] as CliResult));
  }, 180_000);

  it("covers every rule, and every fixture says what it expects", () => {
    expect(INVALID_FIXTURES.length).toBeGreaterThanOrEqual(40);
    for (const name of INVALID_FIXTURES) expect(() => readExpectation(path.join(INVALID_DIR, name)), name).not.toThrow();
  });

  it.each(INVALID_FIXTURES)("%s: exit 1 with file:line:col, manifest path and a fix", (name) => {
    const result = results.get(name);
    if (!result) throw new Error(`no CLI result for ${name}`);
    const expected = readExpectation(path.join(INVALID_DIR, name));
    expect(result.code, result.stderr).toBe(1);
    const prefix = `fixtures/invalid/${name}:${expected.line}:${expected.column}: ${expected.path}: `;
    const line = result.stderr.split("\n").find((candidate) => candidate.startsWith(`error ${prefix}`));
    expect(line, `stderr:\n${result.stderr}\nexpected a line starting with: error ${prefix}`).toBeDefined();
    expect(line).toMatch(/\. Fix: \S/);
    for (const fragment of expected.message) expect(line).toContain(fragment);
    expect(result.stderr).not.toMatch(STACK_FRAME);
    expect(result.stderr).not.toContain("internal error");
    expect(result.stdout).not.toContain("valid ");
  });
});

describe("deploygen validate and generate on every valid fixture (real CLI)", () => {
  const copies: string[] = [];
  afterAll(async () => {
    await Promise.all(copies.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it.each(VALID_FIXTURES)("%s validates (exit 0) and generates into a copy (exit 0)", async (name) => {
    const manifest = readdirSync(path.join(ROOT, "fixtures", name)).find((file) => /^deploygen\.(ya?ml|json)$/.test(file));
    if (!manifest) throw new Error(`fixtures/${name} has no manifest`);
    const validated = await runCli(["validate", "-m", `fixtures/${name}/${manifest}`]);
    expect(validated.stderr).toBe("");
    expect(validated.code).toBe(0);
    expect(validated.stdout).toMatch(new RegExp(`^valid fixtures/${name}/${manifest.replace(".", "\\.")}: \\d+ apps?, \\d+ environments?\\n$`));

    const copy = await mkdtemp(path.join(tmpdir(), `deploygen-valid-${name}-`));
    copies.push(copy);
    await cp(path.join(ROOT, "fixtures", name), copy, { recursive: true, filter: (source) => !/(^|\/)(node_modules|deploy|\.next|\.venv)(\/|$)/.test(path.relative(path.join(ROOT, "fixtures", name), source)) });
    const generated = await runCli(["generate"], copy);
    expect(generated.stderr).toBe("");
    expect(generated.code).toBe(0);
    const output = await readdir(path.join(copy, "deploy"), { recursive: true });
    expect(output.some((file) => /^ecosystem\.[a-z0-9-]+\.config\.js$/.test(String(file)))).toBe(true);
  }, 60_000);

  // Tests generate into copies. Output inside a fixture is either what a person generated there
  // (the README's example writes fixtures/codeframe/deploy/), which git ignores, or a mistake that
  // git would pick up: only the latter fails.
  it("no fixture's output folder holds a file git would commit", async () => {
    for (const name of VALID_FIXTURES) {
      const manifest = readdirSync(path.join(ROOT, "fixtures", name)).find((file) => /^deploygen\.(ya?ml|json)$/.test(file));
      if (!manifest) throw new Error(`fixtures/${name} has no manifest`);
      const { output } = planGeneration(await loadManifest(path.join(ROOT, "fixtures", name, manifest), ROOT));
      const outputDir = path.join("fixtures", name, output);
      const committable = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "--", outputDir], { cwd: ROOT, encoding: "utf8" });
      expect(committable, outputDir).toBe("");
    }
  });
});

// --- Pure stages -------------------------------------------------------------------------------

const fixtureText = (name: string) => readFileSync(path.join(INVALID_DIR, name), "utf8");
const codeframeText = readFileSync(path.join(ROOT, "fixtures", "codeframe", "deploygen.yaml"), "utf8");

/** Parses and validates text; returns the problems (empty when valid). */
function problemsOf(text: string, file = "deploygen.yaml"): ManifestProblem[] {
  try {
    validateManifest(parseManifestText(text, file));
    return [];
  } catch (error) {
    if (error instanceof ManifestError) return error.problems;
    throw error;
  }
}

describe("validateManifest and parseManifestText (in-process)", () => {
  it.each(INVALID_FIXTURES)("%s: the first problem has the expected path, position and a fix", (name) => {
    const expected = readExpectation(path.join(INVALID_DIR, name));
    const problems = problemsOf(fixtureText(name), name);
    expect(problems.length).toBeGreaterThan(0);
    const problem = problems[0] as ManifestProblem;
    expect(formatManifestPath(problem.path)).toBe(expected.path);
    expect(problem.position).toEqual({ line: expected.line, column: expected.column });
    for (const each of problems) expect(each.fix, formatProblem(each)).toMatch(/\S/);
  });

  it("returns the typed manifest with defaults filled in", () => {
    const manifest = validateManifest(parseManifestText(codeframeText, "deploygen.yaml"));
    expect(manifest.output).toBe("deploy");
    expect(manifest.apps.backend?.cwd).toBe(".");
    expect(manifest.apps.frontend?.cwd).toBe("web-ui");
    expect(manifest.apps.frontend?.args).toEqual([]);
    expect(manifest.apps.frontend?.health).toEqual({ path: "/", timeoutSeconds: 60 });
    expect(manifest.apps.backend?.stopTimeoutSeconds).toBe(10);
    expect(manifest.apps.backend?.env).toEqual({ PYTHONPATH: "." });
    expect(manifest.environments.production?.apps.frontend).toEqual({ port: 15100, instances: 2 });
    expect(manifest.environments.staging?.requiredEnv).toEqual(["ANTHROPIC_API_KEY"]);
  });

  it("reads JSON and YAML into the same manifest", () => {
    const fromYaml = validateManifest(parseManifestText(codeframeText, "deploygen.yaml"));
    const json = JSON.stringify(parseManifestText(codeframeText, "deploygen.yaml").data, null, 2);
    expect(validateManifest(parseManifestText(json, "deploygen.json"))).toEqual(fromYaml);
    expect(validateManifest(parseManifestText(`\uFEFF${json}`, "deploygen.json"))).toEqual(fromYaml);
  });

  it("accepts a $schema key (YAML and JSON)", () => {
    expect(problemsOf(`$schema: ./schemas/manifest.schema.json\n${codeframeText}`)).toEqual([]);
    const data = { $schema: "https://example.com/manifest.schema.json", ...(parseManifestText(codeframeText, "x.yaml").data as object) };
    expect(problemsOf(JSON.stringify(data), "deploygen.json")).toEqual([]);
  });

  it("locates values, keys and missing fields (at their parent)", () => {
    const loaded = parseManifestText(codeframeText, "deploygen.yaml");
    const lines = codeframeText.split("\n");
    const lineOf = (needle: string) => lines.findIndex((line) => line.includes(needle)) + 1;
    expect(loaded.locate(["apps", "backend"])).toEqual({ line: lineOf("  backend:"), column: 3 });
    expect(loaded.locate(["apps", "backend", "port"])).toEqual({ line: lineOf("port: 14200"), column: 5 });
    expect(loaded.locate(["apps", "backend", "args", 1])).toEqual({ line: lineOf("args: [-m"), column: codeframeText.split("\n")[lineOf("args: [-m") - 1]!.indexOf("uvicorn") + 1 });
    // A field that is not there is reported where it would go: at the app.
    expect(loaded.locate(["apps", "frontend", "script"])).toEqual({ line: lineOf("  frontend:"), column: 3 });
    expect(loaded.locate([])).toEqual({ line: 1, column: 1 });
  });

  it("locates JSON too", () => {
    const text = '{\n  "version": 1,\n  "apps": {\n    "api": { "port": 80 }\n  }\n}\n';
    const loaded = parseManifestText(text, "deploygen.json");
    expect(loaded.locate(["apps", "api", "port"])).toEqual({ line: 4, column: 14 });
  });

  it.each([
    ["trailing comma", '{\n  "version": 1,\n}\n', { line: 3, column: 1 }],
    ["single quotes", "{\n  'version': 1\n}\n", { line: 2, column: 3 }],
    ["a comment", '{\n  "version": 1 // one\n}\n', { line: 2, column: 16 }],
    ["a truncated file", '{\n  "version": 1,', { line: 2, column: 16 }],
  ])("JSON syntax error (%s) has a line and column", (_what, text, position) => {
    const [problem] = problemsOf(text, "deploygen.json");
    expect(problem?.message).toMatch(/^JSON syntax error: /);
    expect(problem?.position).toEqual(position);
    expect(problem?.fix).toBeTruthy();
  });

  it("rejects duplicate keys in YAML and JSON, naming the key", () => {
    const [yaml] = problemsOf("version: 1\nversion: 1\n");
    expect(yaml).toMatchObject({ path: ["version"], position: { line: 2, column: 1 } });
    const [json] = problemsOf('{"apps": {"a": {}, "a": {}}}', "deploygen.json");
    expect(json).toMatchObject({ path: ["apps", "a"], position: { line: 1, column: 20 } });
  });

  it("never drops an env variable silently (an invalid name is an error, a valid one is kept)", () => {
    const text = codeframeText.replace("env: { PYTHONPATH: . }", 'env: { PYTHONPATH: ., "MY-VAR": x, NODE_ENV: production }');
    expect(problemsOf(text).map((problem) => formatManifestPath(problem.path))).toEqual(["apps.backend.env.MY-VAR"]);
    const fixed = text.replace('"MY-VAR": x, ', "MY_VAR: x, ");
    expect(validateManifest(parseManifestText(fixed, "deploygen.yaml")).apps.backend?.env).toEqual({ PYTHONPATH: ".", MY_VAR: "x", NODE_ENV: "production" });
  });

  it("reports every unknown field at the field itself, with a suggestion for a typo", () => {
    const text = codeframeText.replace("    port: 14100\n", "    port: 14100\n    helth: { path: / }\n    colour: red\n");
    const problems = problemsOf(text);
    expect(problems.map((problem) => formatManifestPath(problem.path))).toEqual(["apps.frontend.helth", "apps.frontend.colour"]);
    expect(problems[0]?.fix).toContain('did you mean "health"');
    expect(problems[1]?.fix).not.toContain("did you mean");
  });

  it("explains a wrong type by what was given", () => {
    expect(problemsOf(codeframeText.replace("port: 14200", "port: [14200]"))[0]?.message).toBe("expected a number, got a list");
    expect(problemsOf(codeframeText.replace("port: 14200", "port:"))[0]?.message).toBe("expected a number, got an empty value");
    expect(problemsOf(codeframeText.replace("port: 14200", "port: 99999"))[0]).toMatchObject({ message: "must be at most 65535" });
  });

  it("keeps paths in messages verbatim (no '..' collapsed)", () => {
    const line = formatProblem({ file: "m.yaml", path: ["apps", "a", "cwd"], position: { line: 1, column: 2 }, message: "cwd ../x leaves the project root", fix: "keep it inside" });
    expect(line).toBe("m.yaml:1:2: apps.a.cwd: cwd ../x leaves the project root. Fix: keep it inside");
    expect(formatProblem({ file: "m.yaml", path: [], message: "ends with a period.", fix: "x" })).toBe("m.yaml: (manifest): ends with a period. Fix: x");
  });
});

describe("each rule on its own", () => {
  const ruleEntries = Object.entries(rules).filter(([, value]) => rules.RULES.includes(value as rules.Rule)) as [string, rules.Rule][];

  it("every rule in RULES is exported under a name and has an invalid fixture named after it", () => {
    expect(ruleEntries.length).toBe(rules.RULES.length);
    for (const [name] of ruleEntries) expect(INVALID_FIXTURES.some((file) => file.startsWith(name)), `fixtures/invalid/${name}*.yaml`).toBe(true);
  });

  // A rule fixture passes the schema (except standardNodeEnv: the schema checks NODE_ENV first, so
  // that editors flag it; the rule is the backstop) and its rule alone reports the expected path.
  it.each(INVALID_FIXTURES.filter((file) => ruleEntries.some(([name]) => file.startsWith(name) && name !== "standardNodeEnv")))("%s is caught by its rule", (file) => {
    const [name, rule] = ruleEntries.find(([candidate]) => file.startsWith(candidate)) as [string, rules.Rule];
    const parsed = ManifestSchema.safeParse(parseManifestText(fixtureText(file), file).data);
    expect(parsed.success, `${file} should pass the schema and fail only ${name}`).toBe(true);
    const problems = rule(parsed.data as Manifest);
    expect(problems.map((problem) => formatManifestPath(problem.path))).toContain(readExpectation(path.join(INVALID_DIR, file)).path);
  });

  it("standardNodeEnv reports a non-standard NODE_ENV anywhere and suggests a project variable", () => {
    const manifest = validateManifest(parseManifestText(codeframeText, "deploygen.yaml"));
    const staging = manifest.environments.staging as Manifest["environments"][string];
    const broken: Manifest = {
      ...manifest,
      apps: { ...manifest.apps, backend: { ...manifest.apps.backend!, env: { NODE_ENV: "prod" } } },
      environments: { ...manifest.environments, staging: { ...staging, env: { NODE_ENV: "staging" }, apps: { frontend: { env: { NODE_ENV: "qa" } } } } },
    };
    const problems = rules.standardNodeEnv(broken);
    expect(problems.map((problem) => formatManifestPath(problem.path))).toEqual([
      "apps.backend.env.NODE_ENV",
      "environments.staging.env.NODE_ENV",
      "environments.staging.apps.frontend.env.NODE_ENV",
    ]);
    for (const problem of problems) expect(problem.fix).toContain("CODEFRAME_ENV");
    expect(rules.standardNodeEnv(manifest)).toEqual([]);
  });

  it("noDevServerOutsideDevelopment allows dev servers in an environment named development", () => {
    const app = "apps:\n  api:\n    runtime: python\n    script: .venv/bin/python\n    args: [-m, uvicorn, shop.main:app, --reload]\n";
    expect(problemsOf(`version: 1\nproject: shop\n${app}environments:\n  development: {}\n`)).toEqual([]);
    expect(problemsOf(`version: 1\nproject: shop\n${app}environments:\n  dev: {}\n`)[0]?.message).toContain("environment dev");
  });

  it("uniquePortsPerEnvironment: the same port in different environments is fine", () => {
    const text = codeframeText.replace("port: 15200", "port: 14200");
    expect(problemsOf(text)).toEqual([]);
  });

  it("all rules pass on every valid fixture", () => {
    for (const name of VALID_FIXTURES) {
      const dir = path.join(ROOT, "fixtures", name);
      const file = readdirSync(dir).find((candidate) => /^deploygen\.(ya?ml|json)$/.test(candidate)) as string;
      expect(problemsOf(readFileSync(path.join(dir, file), "utf8"), file), name).toEqual([]);
    }
  });
});
