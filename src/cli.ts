// Arguments, printing and exit codes. No logic: every command calls into the pipeline.
import yargs, { type Argv } from "yargs";
import path from "node:path";
import { findManifest, loadManifest } from "./manifest/load.js";
import { validateManifest } from "./manifest/validate.js";
import { planGeneration } from "./generate.js";
import { writeOutputs, findOrphans } from "./write.js";
import { manifestJsonSchema } from "./manifest/schema.js";
import { compareManifestWithDisk } from "./check.js";
import { initManifest, PRESETS, DEFAULT_PRESET } from "./init.js";
import { importFile, writeImported, DEFAULT_IMPORT_TIMEOUT_SECONDS } from "./import/index.js";
import { UserError, ManifestError } from "./errors.js";
import { terminalColumns } from "./stdio.js";
import { createOutput, PROCESS_STREAMS, type Output, type OutputStreams } from "./cli-output.js";

// Exported for the bundle's test: how an internal error reads when it comes from dist/cli.cjs.
export { sourceMappedStack } from "./bug-report.js";

interface CommonOptions {
  manifest?: string;
  json?: boolean;
  quiet?: boolean;
}

type Options = CommonOptions & Record<string, unknown>;

export async function main(argv: string[], cwd = process.cwd(), streams: OutputStreams = PROCESS_STREAMS): Promise<number> {
  let exitCode = 0;
  const out = createOutput({ json: argv.includes("--json"), quiet: argv.includes("--quiet") || argv.includes("-q") }, streams);
  const run = (task: (options: Options) => Promise<number>) => async (options: Options) => {
    exitCode = await task(options);
  };
  const comparing = (y: Argv) =>
    y
      .option("env", { type: "string", array: true, description: "compare only these environments' files (repeatable); orphans are judged against all" })
      .option("out", { type: "string", description: "output folder (default: the manifest's output, next to it)" });
  const parser = yargs(argv)
    .scriptName("deploygen")
    .usage("$0 <command> [options]\n\nTurns deploygen.yaml into a PM2 ecosystem file, a systemd unit and deploy scripts.")
    .option("manifest", { alias: "m", type: "string", description: "manifest file (default: deploygen.yaml, deploygen.yml or deploygen.json here)" })
    .option("json", { type: "boolean", description: "machine-readable output" })
    .option("quiet", { alias: "q", type: "boolean", description: "print only errors" })
    .command(
      "generate",
      "write every generated file (all or nothing)",
      (y: Argv) =>
        y
          .option("env", { type: "string", array: true, description: "only these environments (repeatable)" })
          .option("out", { type: "string", description: "output folder (default: the manifest's output, next to it)" })
          .option("force", { type: "boolean", description: "overwrite files that deploygen did not generate" }),
      run((options) => generateCommand(options, cwd, out)),
    )
    .command(
      "check",
      "compare the files on disk with what the manifest generates; exit 1 when they differ (for CI)",
      comparing,
      run((options) => compareCommand("check", options, cwd, out)),
    )
    .command("diff", "print what generate would change, as a unified diff; writes nothing", comparing, run((options) => compareCommand("diff", options, cwd, out)))
    .command("validate", "validate the manifest only", (y: Argv) => y, run((options) => validateCommand(options, cwd, out)))
    .command("schema", "print the manifest JSON Schema", (y: Argv) => y, run(async () => {
      out.raw(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      return 0;
    }))
    .command(
      "init",
      "write a commented starter manifest (never overwrites one)",
      (y: Argv) =>
        y
          .option("preset", { type: "string", choices: PRESETS, default: DEFAULT_PRESET, description: "what the project runs" })
          .option("project", { type: "string", description: "project name (default: this folder's name)" }),
      run((options) => initCommand(options, cwd, out)),
    )
    .command(
      "import <file>",
      "turn a PM2 ecosystem file (.js, .cjs, .mjs, .json, .yaml) or a Procfile into a manifest",
      (y: Argv) =>
        y
          .positional("file", { type: "string", description: "ecosystem file or Procfile; JavaScript is run in a separate Node.js process, as PM2 would" })
          .option("out", { alias: "o", type: "string", description: "write the manifest to this file (default: print it)" })
          .option("project", { type: "string", description: "project name (default: the apps' common name prefix, else the project folder's name)" })
          .option("env", { type: "string", description: "environment name (default: from ecosystem.<env>.config.js, else production)" })
          .option("root", { type: "string", description: "project root (default: the common folder of the apps' absolute cwd, else the file's folder)" })
          .option("timeout", { type: "number", default: DEFAULT_IMPORT_TIMEOUT_SECONDS, description: "seconds a JavaScript file may take to load" })
          .option("force", { type: "boolean", description: "replace the -o file if it exists" }),
      run((options) => importCommand(options, cwd, out)),
    )
    .demandCommand(1, "name a command")
    .strict()
    .help()
    .alias("help", "h")
    .version(false)
    .wrap(Math.min(100, terminalColumns() || 100))
    .fail((message: string | undefined, error: Error | undefined) => {
      if (error) throw error;
      throw new UserError(message ?? "invalid usage", "run deploygen --help (or deploygen <command> --help)", 2);
    })
    .exitProcess(false);
  try {
    await parser.parseAsync();
    return exitCode;
  } catch (error) {
    return reportError(error, out);
  }
}

function reportError(error: unknown, out: Output): number {
  if (error instanceof ManifestError) {
    out.problems(error.problems);
    return 1;
  }
  if (error instanceof UserError) {
    out.error(error.message, error.fix);
    return error.exitCode;
  }
  out.bug(error);
  return 70;
}

async function generateCommand(options: Options, cwd: string, out: Output): Promise<number> {
  const file = findManifest(cwd, options.manifest);
  const loaded = await loadManifest(file, cwd);
  const environments = options.env as string[] | undefined;
  const plan = planGeneration(loaded, environments ? { environments } : {});
  const outputDir = options.out ? path.resolve(cwd, options.out as string) : path.resolve(path.dirname(file), plan.output);
  // Orphans are judged against every environment's files, so --env never removes another's.
  const allPaths = environments ? new Set(planGeneration(loaded).files.map((f) => f.path)) : new Set(plan.files.map((f) => f.path));
  const orphans = await findOrphans(outputDir, allPaths);
  const result = await writeOutputs(outputDir, plan.files, { force: Boolean(options.force), removeOrphans: orphans });
  out.generated(path.relative(cwd, outputDir) || ".", result);
  return 0;
}

async function compareCommand(command: "check" | "diff", options: Options, cwd: string, out: Output): Promise<number> {
  const file = findManifest(cwd, options.manifest);
  const loaded = await loadManifest(file, cwd);
  const environments = options.env as string[] | undefined;
  const comparison = await compareManifestWithDisk(loaded, {
    cwd,
    ...(environments ? { environments } : {}),
    ...(options.out ? { outputDir: path.resolve(cwd, options.out as string) } : {}),
  });
  const regenerate = [
    "deploygen generate -m",
    loaded.displayName,
    ...(environments ?? []).flatMap((name) => ["--env", name]),
    ...(options.out ? ["--out", options.out as string] : []),
  ].join(" ");
  out.compared(command, loaded.displayName, comparison, regenerate);
  return command === "check" && !comparison.upToDate ? 1 : 0;
}

async function validateCommand(options: CommonOptions, cwd: string, out: Output): Promise<number> {
  const file = findManifest(cwd, options.manifest);
  const loaded = await loadManifest(file, cwd);
  const manifest = validateManifest(loaded);
  out.validated(loaded.displayName, Object.keys(manifest.apps).length, Object.keys(manifest.environments).length);
  return 0;
}

async function initCommand(options: Options, cwd: string, out: Output): Promise<number> {
  const result = await initManifest({
    cwd,
    ...(options.manifest !== undefined ? { manifest: options.manifest } : {}),
    ...(options.preset !== undefined ? { preset: options.preset as string } : {}),
    ...(options.project !== undefined ? { project: options.project as string } : {}),
  });
  const flag = result.file === "deploygen.yaml" ? "" : ` -m ${result.file}`;
  out.initialised(result.file, result.preset, result.project, `replace the values marked "change:", then run deploygen generate${flag}`);
  return 0;
}

async function importCommand(options: Options, cwd: string, out: Output): Promise<number> {
  const target = options.out as string | undefined;
  const result = await importFile(options.file as string, {
    cwd,
    ...(target !== undefined ? { output: target } : {}),
    ...(options.project !== undefined ? { project: options.project as string } : {}),
    ...(options.env !== undefined ? { environment: options.env as string } : {}),
    ...(options.root !== undefined ? { root: options.root as string } : {}),
    timeoutSeconds: options.timeout as number,
  });
  if (target !== undefined) await writeImported(path.resolve(cwd, target), result.manifest, Boolean(options.force));
  const manifestFlag = target === undefined || target === "deploygen.yaml" ? "" : ` -m ${target}`;
  out.imported(result, target, `deploygen validate${manifestFlag} && deploygen generate${manifestFlag}`);
  return result.problems.length > 0 ? 1 : 0;
}
