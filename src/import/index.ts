// `deploygen import FILE`: an existing PM2 ecosystem file or Procfile in, a manifest out, with a
// comment block naming every defect fixed, every guess made and every option left behind.
import { readFile } from "node:fs/promises";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { Document, parse as parseYaml, isMap, isSeq, type Node } from "yaml";
import { UserError, ManifestError, type ManifestProblem } from "../errors.js";
import { parseManifestText } from "../manifest/load.js";
import { validateManifest } from "../manifest/validate.js";
import { schemaReference } from "../init.js";
import { writeNewFile } from "../write.js";
import { evaluateEcosystemFile } from "./evaluate.js";
import { pm2Source, procfileSource, type SourceFile } from "./sources.js";
import { convertSource, type Conversion, type ImportNote, type Probe } from "./convert.js";

export type { ImportNote } from "./convert.js";

export const DEFAULT_IMPORT_TIMEOUT_SECONDS = 5;

export interface ImportOptions {
  cwd: string;
  /** Where the manifest will be written (its folder decides the schema reference); default: deploygen.yaml in cwd. */
  output?: string;
  project?: string;
  environment?: string;
  root?: string;
  timeoutSeconds?: number;
  probe?: Probe;
}

export interface ImportResult {
  /** The source file as given. */
  source: string;
  kind: "pm2" | "procfile";
  apps: number;
  project: string;
  environments: string[];
  notes: ImportNote[];
  /** Problems `deploygen validate` would report in the result (empty when it validates). */
  problems: ManifestProblem[];
  /** The manifest text (YAML with the comment block). */
  manifest: string;
}

const SOURCE_KINDS = "a PM2 ecosystem file (.js, .cjs, .mjs, .json, .yaml) or a Procfile";

const diskProbe: Probe = {
  exists: (file) => existsSync(file),
  readText: (file) => {
    try {
      return statSync(file).isFile() ? readFileSync(file, "utf8") : undefined;
    } catch {
      return undefined;
    }
  },
};

export function isProcfile(file: string): boolean {
  return /^Procfile(\.[A-Za-z0-9_-]+)?$/i.test(path.basename(file));
}

/** Reads the source: JavaScript in a child process, data (JSON, YAML, Procfile) in this one. */
export async function readSource(file: string, shown: string, timeoutMs: number): Promise<SourceFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`${shown} does not exist`, `pass the path of ${SOURCE_KINDS}`);
    if (code === "EISDIR") throw new UserError(`${shown} is a folder`, `pass the path of ${SOURCE_KINDS} inside it`);
    if (code === "EACCES") throw new UserError(`${shown} cannot be read (permission denied)`, `make it readable (chmod u+r ${shown}) or run deploygen as its owner`);
    throw new UserError(`${shown} cannot be read: ${(error as Error).message}`, "check the path and its permissions");
  }
  if (isProcfile(file)) return procfileSource(text, shown);
  const extension = path.extname(file).toLowerCase();
  if (extension === ".json") {
    try {
      return { ...pm2Source(JSON.parse(text), shown), text };
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(`${shown} is not valid JSON: ${(error as Error).message}`, "correct the JSON syntax");
    }
  }
  if (extension === ".yaml" || extension === ".yml") {
    try {
      return { ...pm2Source(parseYaml(text), shown), text };
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(`${shown} is not valid YAML: ${(error as Error).message.split("\n")[0]}`, "correct the YAML syntax");
    }
  }
  if ([".js", ".cjs", ".mjs"].includes(extension)) {
    const evaluated = await evaluateEcosystemFile(file, { timeoutMs, displayName: shown });
    return { ...pm2Source(evaluated.value, shown), text, environment: evaluated.environment };
  }
  throw new UserError(`cannot tell what kind of file ${shown} is`, `pass ${SOURCE_KINDS} (a Procfile must be named Procfile)`, 2);
}

export async function importFile(file: string, options: ImportOptions): Promise<ImportResult> {
  const absolute = path.resolve(options.cwd, file);
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_IMPORT_TIMEOUT_SECONDS;
  if (!(timeoutSeconds > 0)) throw new UserError(`--timeout ${timeoutSeconds} is not a positive number of seconds`, `pass --timeout ${DEFAULT_IMPORT_TIMEOUT_SECONDS}, for example`, 2);
  const source = await readSource(absolute, file, timeoutSeconds * 1000);
  const conversion = convertSource(source, {
    sourceName: path.basename(absolute),
    sourceDir: path.dirname(absolute),
    ...(options.project !== undefined ? { project: options.project } : {}),
    ...(options.environment !== undefined ? { environment: options.environment } : {}),
    ...(options.root !== undefined ? { root: path.resolve(options.cwd, options.root) } : {}),
    probe: options.probe ?? diskProbe,
  });
  const outputFile = path.resolve(options.cwd, options.output ?? "deploygen.yaml");
  const manifest = renderManifest(conversion, source, path.basename(absolute), schemaReference(path.dirname(outputFile)));
  return {
    source: file,
    kind: source.kind,
    apps: source.processes.length,
    project: conversion.project,
    environments: conversion.environments,
    notes: conversion.notes,
    problems: validationProblems(manifest, path.relative(options.cwd, outputFile) || path.basename(outputFile)),
    manifest,
  };
}

/** Writes the imported manifest; never replaces an existing file unless `force`. */
export async function writeImported(file: string, text: string, force: boolean): Promise<void> {
  if (!writeNewFile(file, text, { replace: force }))
    throw new UserError(`${path.basename(file)} already exists; import does not overwrite it`, "choose another file with -o FILE, or pass --force to replace it");
}

function validationProblems(text: string, displayName: string): ManifestProblem[] {
  try {
    validateManifest(parseManifestText(text, displayName, displayName));
    return [];
  } catch (error) {
    if (error instanceof ManifestError) return error.problems;
    throw error;
  }
}

const KIND_TITLES: Record<ImportNote["kind"], string> = {
  fixed: "Fixed (defects of the imported file that this manifest no longer has):",
  assumed: "Assumed (guesses: check each one):",
  "not-imported": "Not imported (deploygen has no equivalent; decide what to do with each):",
};

/** The manifest as YAML, the note block on top; short lists and maps in flow style as in the docs. */
export function renderManifest(conversion: Conversion, source: SourceFile, sourceName: string, schema: string): string {
  const described = source.kind === "pm2" ? "PM2 ecosystem file" : "Procfile";
  const n = source.processes.length;
  const count = source.kind === "pm2" ? `${n} app${n === 1 ? "" : "s"}` : `${n} process${n === 1 ? "" : "es"}`;
  const rootLine =
    conversion.rootOrigin === "absolute-paths"
      ? `Project root: ${conversion.root} (the common folder of the apps' cwd). Save this file in that folder`
      : conversion.rootOrigin === "option"
        ? `Project root: the folder given with --root. Save this file in that folder`
        : `Project root: the folder of ${sourceName}. Save this file in that folder`;
  const lines = [
    ` yaml-language-server: $schema=${schema}`,
    ` deploygen manifest imported from ${sourceName} (${described}, ${count}) by \`deploygen import\`.`,
    ` ${rootLine} (as deploygen.yaml); every path below is relative to it.`,
    " Review the notes, run `deploygen validate` and `deploygen generate`, then delete the notes.",
  ];
  for (const kind of ["fixed", "assumed", "not-imported"] as const) {
    const notes = conversion.notes.filter((note) => note.kind === kind);
    if (notes.length === 0) continue;
    lines.push("", ` ${KIND_TITLES[kind]}`, ...notes.map((note) => ` - ${note.text.replace(/\n/g, " ")}`));
  }
  const doc = new Document(conversion.manifest);
  doc.commentBefore = lines.join("\n");
  flowStyle(doc.contents as Node | null, []);
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** Lists of scalars and small maps of scalars read best on one line ("args: [-m, uvicorn]"). */
function flowStyle(node: Node | null, at: string[]): void {
  if (isSeq(node)) {
    if (node.items.every((item) => !isMap(item) && !isSeq(item))) node.flow = true;
    node.items.forEach((item, index) => flowStyle(item as Node, [...at, String(index)]));
  } else if (isMap(node)) {
    const last = at[at.length - 1];
    const scalarsOnly = node.items.every((pair) => !isMap(pair.value) && !isSeq(pair.value));
    if (scalarsOnly && node.items.length > 0 && at.length >= 3 && last !== undefined && ["env", "health", "systemd"].includes(last)) node.flow = true;
    else if (scalarsOnly && node.items.length > 0 && at.length === 4 && at[0] === "environments" && at[2] === "apps") node.flow = true;
    for (const pair of node.items) flowStyle(pair.value as Node, [...at, String((pair.key as { value?: unknown })?.value ?? pair.key)]);
  }
}
