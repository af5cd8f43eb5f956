// `deploygen init`: a commented starter manifest that validates and generates as written.
// Presets are YAML files in templates/init/ with __NAME__ placeholders (plain YAML, so that they
// can be read and linted as such).
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { DEFAULT_MANIFEST_NAMES } from "./manifest/load.js";
import { nameProblem } from "./manifest/schema.js";
import { normaliseName, projectEnvNameVar } from "./names.js";
import { UserError } from "./errors.js";
import { writeNewFile } from "./write.js";

export const PRESETS = ["nextjs-fastapi", "node", "python"] as const;
export type Preset = (typeof PRESETS)[number];
export const DEFAULT_PRESET: Preset = "nextjs-fastapi";

const INIT_TEMPLATES_DIR = fileURLToPath(new URL("../templates/init/", import.meta.url));

/**
 * Where editors find the JSON Schema: the copy inside the installed deploygen package, relative to
 * the manifest. The nearest node_modules/deploygen above the manifest is used when there is one;
 * otherwise ./node_modules/deploygen/... (the usual place once deploygen is a devDependency of the
 * project). Without the package, `deploygen schema > deploygen.schema.json` gives a local copy.
 */
export const SCHEMA_IN_PACKAGE = "node_modules/deploygen/schemas/manifest.schema.json";

export function schemaReference(manifestDir: string): string {
  for (let dir = manifestDir; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, SCHEMA_IN_PACKAGE))) {
      const relative = path.relative(manifestDir, path.join(dir, SCHEMA_IN_PACKAGE)).split(path.sep).join("/");
      return relative.startsWith("../") ? relative : `./${relative}`;
    }
    if (path.dirname(dir) === dir) return `./${SCHEMA_IN_PACKAGE}`;
  }
}

/** Pure: the starter manifest text for a preset and project. */
export function starterManifest(preset: Preset, project: string, schema: string): string {
  const values: Record<string, string> = {
    SCHEMA: schema,
    PROJECT: project,
    PROJECT_ENV: projectEnvNameVar(project),
    MODULE: project.replace(/-/g, "_"),
  };
  const template = readFileSync(path.join(INIT_TEMPLATES_DIR, `${preset}.yaml`), "utf8");
  return template.replace(/__([A-Z_]+?)__/g, (token, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`templates/init/${preset}.yaml: unknown placeholder ${token}`);
    return value;
  });
}

/** JSON has no comments: the same manifest as data, with $schema for editors. */
function asJson(yamlText: string, schema: string): string {
  const data = parseYaml(yamlText) as Record<string, unknown>;
  return `${JSON.stringify({ $schema: schema, ...data }, null, 2)}\n`;
}

export interface InitOptions {
  cwd: string;
  manifest?: string;
  preset?: string;
  project?: string;
}

export interface InitResult {
  file: string;
  preset: Preset;
  project: string;
}

/** Writes the starter manifest; never replaces an existing one. */
export async function initManifest(options: InitOptions): Promise<InitResult> {
  const preset = (options.preset ?? DEFAULT_PRESET) as Preset;
  if (!PRESETS.includes(preset)) throw new UserError(`unknown preset ${options.preset}`, `use one of: ${PRESETS.join(", ")}`, 2);
  const file = path.resolve(options.cwd, options.manifest ?? DEFAULT_MANIFEST_NAMES[0]);
  const shown = path.relative(options.cwd, file) || path.basename(file);
  const extension = path.extname(file);
  if (![".yaml", ".yml", ".json"].includes(extension))
    throw new UserError(`cannot write a manifest named ${shown}`, "name it deploygen.yaml (or another .yaml, .yml or .json file)", 2);
  const existing = options.manifest ? (existsSync(file) ? file : undefined) : DEFAULT_MANIFEST_NAMES.map((name) => path.join(options.cwd, name)).find((candidate) => existsSync(candidate));
  if (existing) {
    const name = path.relative(options.cwd, existing) || path.basename(existing);
    throw new UserError(`${name} already exists; init never overwrites a manifest`, `edit ${name}, or move it away and run deploygen init again (or write elsewhere with -m FILE)`);
  }
  const project = options.project ?? projectFromFolder(path.dirname(file));
  const problem = nameProblem(project, "project");
  if (problem)
    throw new UserError(
      `${options.project === undefined ? `cannot use the folder name as the project name (${JSON.stringify(project)})` : `--project ${JSON.stringify(project)} is not a valid name`}: ${problem}`,
      `pass --project NAME, for example --project ${normaliseName(project) || "my-app"}`,
      2,
    );
  const schema = schemaReference(path.dirname(file));
  const yamlText = starterManifest(preset, project, schema);
  const text = extension === ".json" ? asJson(yamlText, schema) : yamlText;
  if (!writeNewFile(file, text))
    throw new UserError(`${shown} already exists; init never overwrites a manifest`, `edit ${shown}, or move it away and run deploygen init again`);
  return { file: shown, preset, project };
}

function projectFromFolder(folder: string): string {
  return normaliseName(path.basename(folder)) || path.basename(folder);
}
