// schemas/manifest.schema.json is generated from the zod schema and committed for editors. This
// file keeps it up to date (`npx vitest run -u` rewrites it) and checks that ajv, reading the
// COMMITTED file, agrees with deploygen on every fixture.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { manifestJsonSchema, ManifestSchema } from "../src/manifest/schema.js";
import { parseManifestText } from "../src/manifest/load.js";
import { validateManifest } from "../src/manifest/validate.js";
import { ManifestError } from "../src/errors.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SCHEMA_FILE = path.join(ROOT, "schemas", "manifest.schema.json");
const INVALID_DIR = path.join(ROOT, "fixtures", "invalid");
const DESIGN = path.join(ROOT, "..", "shared", "DESIGN.md");

/** Every fixture folder with a manifest (codeframe, node-api, python-api, json-manifest, e2e, ...). */
const VALID_MANIFESTS = readdirSync(path.join(ROOT, "fixtures"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== "invalid")
  .flatMap((entry) =>
    readdirSync(path.join(ROOT, "fixtures", entry.name))
      .filter((file) => /^deploygen\.(ya?ml|json)$/.test(file))
      .map((file) => `${entry.name}/${file}`),
  )
  .sort();

const INVALID_MANIFESTS = readdirSync(INVALID_DIR)
  .filter((name) => /\.(ya?ml|json)$/.test(name) && !name.endsWith(".expect.json"))
  .sort();

/** No data to give a JSON Schema: the file does not parse (deploygen rejects it while reading). */
const PARSE_ERRORS = ["duplicate-keys.json", "duplicate-keys.yaml", "syntax.json", "syntax.yaml"];

/**
 * Rejected by deploygen's rules but accepted by the JSON Schema, on purpose. Everything else must
 * be rejected by both validators alike.
 */
const crossFieldOnly: Record<string, string> = {
  // Cross-field: whether an override names an app depends on the keys of `apps`.
  "overridesNameExistingApps.yaml": "override keys must be keys of apps",
  // Cross-field: the effective port of each app in each environment, overrides applied.
  "uniquePortsPerEnvironment.yaml": "ports compared across apps",
  "uniquePortsPerEnvironment.json": "ports compared across apps, after overrides",
  "uniquePortsPerEnvironment-override.yaml": "ports compared across apps, after overrides",
  // Cross-field: runtime, script, args and env of the effective app together, per environment.
  "noDevServerOutsideDevelopment-next-dev.yaml": "script + args + environment name",
  "noDevServerOutsideDevelopment-uvicorn-reload.yaml": "args + environment name",
  "noDevServerOutsideDevelopment-override.yaml": "override args + environment name",
  "nextjsRunsInProduction.yaml": "runtime + NODE_ENV (development is a standard value elsewhere)",
  "runtimeFields-python-missing-script.yaml": "script is required by runtime",
  "runtimeFields-python-instances.yaml": "instances allowed by runtime",
  "runtimeFields-python-instances-max.yaml": "instances allowed by runtime, after overrides",
  "processOptions-instances-zero.yaml": "0 is PM2's one per CPU; the rule asks for max instead",
  "processOptions-execMode-cluster-python.yaml": "execMode allowed by runtime",
  "processOptions-execMode-fork-instances.yaml": "execMode compared with instances",
  "processOptions-nodeArgs-python.yaml": "nodeArgs allowed by runtime",
  "processOptions-interpreterArgs-node.yaml": "interpreterArgs allowed by runtime",
  "processOptions-waitReady-nextjs.yaml": "waitReady allowed by runtime",
  "processOptions-cronRestart-four-fields.yaml": "cron syntax is checked by a rule with a field-by-field message",
  "runtimeFields-nextjs-script.yaml": "script forbidden by runtime",
  "runtimeFields-health-without-port.yaml": "health needs the effective port",
  "runtimeFields-port-placeholder-without-port.yaml": '"{port}" in args needs the effective port',
  "projectRelativePaths-requiredEnv-without-envFile.yaml": "requiredEnv needs envFile",
  // Depends on the project name (<PROJECT>_ROOT) or on the sum of three names' lengths.
  "reservedEnvNames-root.yaml": "the reserved name is derived from project",
  "namesFitTargets.yaml": "length of project-environment-app",
  // Semantic path checks: a path is normalised (a/../../x leaves the root) and whether an
  // absolute path is allowed depends on the field and the runtime (command may run /usr/bin/x).
  // A pattern could catch the simple cases only; the rule gives the one answer and a better fix.
  "projectRelativePaths-absolute-cwd.yaml": "path semantics",
  "projectRelativePaths-absolute-envFile.yaml": "path semantics",
  "projectRelativePaths-absolute-verify-file.yaml": "path semantics",
  "projectRelativePaths-leaves-root.yaml": "path semantics (normalisation)",
  "projectRelativePaths-output-root.yaml": "path semantics (normalisation)",
  "projectRelativePaths-tilde-pm2Home.yaml": "path semantics",
  // Expressible, but kept with its sibling rule above so that one place owns reserved names.
  "reservedEnvNames.yaml": "reserved names live in one rule with <PROJECT>_ROOT",
  // What systemd itself refuses (Unicode noncharacters in a unit) or warns about (a trailing "$"
  // in User=): checked against systemd's rules, which a JSON Schema pattern would only mirror.
  "systemdCarriesValues-noncharacter.yaml": "systemd refuses noncharacters in unit files",
  "systemdUserNames-dollar.yaml": "systemd warns on such user names; the rule names the fix",
  // Cross-field: PM2 and unit names derived from environment and app names must not collide.
  "generatedNamesDistinct.yaml": "names derived from project, environment and app together",
  // JavaScript object semantics, checked on the loaded data before the schema: a "__proto__" key
  // matches the name pattern, but zod (like any JavaScript object) would drop it silently.
  "rawDataProblems-proto-key.yaml": "__proto__ is a valid-looking name that JavaScript cannot carry",
  // Expressible as minProperties, but zod records carry no size check; the rule says what to add.
  "atLeastOneAppAndEnvironment.yaml": "empty apps",
  // Several hosts: hosts and remote go together, and what pm2 deploy carries is checked by rules
  // that know its quoting (echo '...', a regex that stops at a quote, unquoted remote shell) and
  // name the fix; the JSON Schema gives the shapes only.
  "remoteNeedsHosts-hosts-without-remote.yaml": "hosts needs remote",
  "pm2DeployCarriesRemote-backtick-in-user.yaml": "what pm2 deploy carries",
  "pm2DeployCarriesRemote-dollar-in-ssh-option.yaml": "what pm2 deploy carries",
  "pm2DeployCarriesRemote-duplicate-host.yaml": "hosts compared with each other",
  "pm2DeployCarriesRemote-envFile-with-space.yaml": "envFile is named in hooks only when there are hosts",
  "pm2DeployCarriesRemote-local-branch-ref.yaml": "what pm2 deploy carries",
  "pm2DeployCarriesRemote-localhost.yaml": "pm2 deploy runs localhost without SSH",
  "pm2DeployCarriesRemote-quote-in-repo.yaml": "what pm2 deploy carries",
  "pm2DeployCarriesRemote-relative-path.yaml": "path semantics",
  "pm2DeployCarriesRemote-semicolon-in-host.yaml": "what pm2 deploy carries",
  "pm2DeployCarriesRemote-space-in-path.yaml": "what pm2 deploy carries",
};

const readData = (file: string): unknown => parseManifestText(readFileSync(file, "utf8"), file).data;

function deploygenAccepts(file: string): boolean {
  try {
    validateManifest(parseManifestText(readFileSync(file, "utf8"), file));
    return true;
  } catch (error) {
    if (error instanceof ManifestError) return false;
    throw error;
  }
}

let compiled: ValidateFunction | undefined;
/** ajv compiled from the committed file, not the in-memory schema: that is what editors read. */
const validate = Object.assign((data: unknown): boolean => {
  if (!compiled) {
    if (!existsSync(SCHEMA_FILE)) throw new Error("schemas/manifest.schema.json is missing: run `npm test -- test/manifest-schema.test.ts -u`");
    compiled = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as Record<string, unknown>);
  }
  const valid = compiled(data);
  validate.errors = compiled.errors;
  return valid;
}, { errors: undefined as ValidateFunction["errors"] });

describe("schemas/manifest.schema.json", () => {
  it("is the zod schema's JSON Schema (npx vitest run -u regenerates it)", async () => {
    await expect(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`).toMatchFileSnapshot("../schemas/manifest.schema.json");
  });

  it("is what `deploygen schema` prints", () => {
    const printed = execFileSync(process.execPath, [path.join(ROOT, "bin", "deploygen.js"), "schema"], { cwd: ROOT, encoding: "utf8" });
    expect(printed).toBe(readFileSync(SCHEMA_FILE, "utf8"));
  });

  it("is draft-07, closed to unknown fields, and constrains NODE_ENV", () => {
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as { $schema: string; additionalProperties: boolean; required: string[] };
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required.sort()).toEqual(["apps", "environments", "project", "version"]);
    expect(readFileSync(SCHEMA_FILE, "utf8")).toContain('"NODE_ENV"');
  });
});

describe("ajv (committed JSON Schema) and deploygen agree", () => {
  it("finds the expected fixtures", () => {
    for (const name of ["codeframe/deploygen.yaml", "node-api/deploygen.yaml", "python-api/deploygen.yaml", "json-manifest/deploygen.json"])
      expect(VALID_MANIFESTS).toContain(name);
    for (const name of [...PARSE_ERRORS, ...Object.keys(crossFieldOnly)]) expect(INVALID_MANIFESTS, name).toContain(name);
  });

  it.each(VALID_MANIFESTS)("valid fixture %s: accepted by both", (name) => {
    const file = path.join(ROOT, "fixtures", name);
    const data = readData(file);
    expect(validate(data), JSON.stringify(validate.errors, null, 2)).toBe(true);
    expect(deploygenAccepts(file)).toBe(true);
  });

  it.each(PARSE_ERRORS)("%s: rejected while reading (no data for a schema)", (name) => {
    expect(() => parseManifestText(readFileSync(path.join(INVALID_DIR, name), "utf8"), name)).toThrow(ManifestError);
  });

  const checked = INVALID_MANIFESTS.filter((name) => !PARSE_ERRORS.includes(name));

  it.each(checked.filter((name) => !(name in crossFieldOnly)))("schema-level fixture %s: rejected by both", (name) => {
    const file = path.join(INVALID_DIR, name);
    const data = readData(file);
    expect(validate(data)).toBe(false);
    expect(ManifestSchema.safeParse(data).success).toBe(false);
    expect(deploygenAccepts(file)).toBe(false);
  });

  it.each(Object.keys(crossFieldOnly))("rule-level fixture %s: JSON Schema accepts, deploygen's rules reject", (name) => {
    const file = path.join(INVALID_DIR, name);
    const data = readData(file);
    expect(validate(data), JSON.stringify(validate.errors, null, 2)).toBe(true);
    // The zod schema agrees with the JSON Schema; only a rule rejects it.
    expect(ManifestSchema.safeParse(data).success).toBe(true);
    expect(deploygenAccepts(file)).toBe(false);
  });

  it("accepts a $schema key in both", () => {
    const data = { $schema: "./schemas/manifest.schema.json", ...(readData(path.join(ROOT, "fixtures", "codeframe", "deploygen.yaml")) as object) };
    expect(validate(data)).toBe(true);
    expect(ManifestSchema.safeParse(data).success).toBe(true);
    expect((readData(path.join(ROOT, "fixtures", "json-manifest", "deploygen.json")) as { $schema?: unknown }).$schema).toBeTypeOf("string");
  });

  it("agrees with the zod schema on random edits of the example", () => {
    const base = readData(path.join(ROOT, "fixtures", "codeframe", "deploygen.yaml")) as Record<string, unknown>;
    // Mostly values near the boundaries of the patterns, plus arbitrary strings.
    const text = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom("", "a", "web-api", "Web", "a--b", "-a", "a-", "1a", "a_b", "_a", ".", "./x", "/abs", "../up", "a/../../x", "a\nb", "a\rb", "a\0b", "~/x", "a b", "/health", "/a b", "health", "{port}", "API_KEY", "NODE_ENV", "production", "staging", "é", "a".repeat(41)) },
      // "__proto__" is refused before the schema (rawDataProblems) and would set a prototype here.
      { weight: 1, arbitrary: fc.string().filter((key) => key !== "__proto__") },
    );
    const value = fc.oneof(
      { weight: 4, arbitrary: text },
      { weight: 2, arbitrary: fc.oneof(fc.integer({ min: -2, max: 70000 }), fc.constantFrom(0, 1, 9, 10, 60, 64, 65, 600, 3600, 65535, 65536, 86400, 86401)) },
      { weight: 2, arbitrary: fc.array(text, { maxLength: 2 }) },
      { weight: 2, arbitrary: fc.dictionary(text, text, { maxKeys: 2 }) },
      { weight: 1, arbitrary: fc.oneof(fc.double(), fc.boolean(), fc.constant(null)) },
    );
    const fields = [["project"], ["output"], ["version"], ["apps", "backend", "runtime"], ["apps", "backend", "port"], ["apps", "backend", "cwd"], ["apps", "backend", "script"], ["apps", "backend", "host"], ["apps", "backend", "args"], ["apps", "backend", "health", "path"], ["apps", "backend", "health", "timeoutSeconds"], ["apps", "backend", "instances"], ["apps", "backend", "stopTimeoutSeconds"], ["apps", "backend", "install"], ["apps", "backend", "verify", "files"], ["apps", "backend", "verify", "commands"], ["apps", "frontend", "env"], ["environments", "staging", "envFile"], ["environments", "staging", "exampleFile"], ["environments", "staging", "requiredEnv"], ["environments", "staging", "systemd", "user"], ["environments", "staging", "systemd", "group"], ["environments", "staging", "pm2Home"], ["environments", "staging", "alerts", "webhookEnv"], ["environments", "staging", "healthIntervalSeconds"], ["environments", "production", "apps", "backend", "port"], ["environments", "production", "apps", "backend", "args"], ["environments", "production", "env"]];
    const records = [["apps", "backend", "env"], ["environments", "staging", "env"], ["environments", "production", "apps", "frontend", "env"], ["apps"], ["environments"], ["environments", "production", "apps"], ["apps", "backend"], ["environments", "staging"], []];
    // Where to put the random value: a field, a key of a record (or an unknown field of an object).
    const edit = fc.oneof(
      fc.tuple(fc.constantFrom(...fields), value),
      fc.tuple(fc.constantFrom(...records), text, value).map(([at, key, inner]) => [[...at, key], inner] as const),
    );
    fc.assert(
      fc.property(edit, ([at, inner]) => {
        const data = structuredClone(base);
        let target = data as Record<string, unknown>;
        for (const part of at.slice(0, -1)) {
          target[part] ??= {};
          target = target[part] as Record<string, unknown>;
        }
        target[at[at.length - 1] as string] = inner;
        const zodAccepts = ManifestSchema.safeParse(data).success;
        return validate(data) === zodAccepts;
      }),
      { numRuns: 3000 },
    );
  });
});

describe("DESIGN.md", () => {
  // ../shared is the planning folder beside the repository; a clean clone does not have it, and the
  // fixture stands in for it there.
  it.runIf(existsSync(DESIGN))("its manifest example is fixtures/codeframe/deploygen.yaml, byte for byte, and validates", () => {
    const design = readFileSync(DESIGN, "utf8");
    const block = /^```yaml\n([\s\S]*?)^```$/m.exec(design)?.[1];
    expect(block).toBeDefined();
    const fixture = readFileSync(path.join(ROOT, "fixtures", "codeframe", "deploygen.yaml"), "utf8");
    expect(block).toBe(fixture);
    expect(validate(parseYaml(block as string))).toBe(true);
    expect(() => validateManifest(parseManifestText(block as string, "DESIGN.md"))).not.toThrow();
  });
});
