// Arguments, printing and exit codes. No logic: every command calls into the pipeline.
import yargs, { type Argv } from "yargs";
import path from "node:path";
import { findManifest, loadManifest } from "./manifest/load.js";
import { validateManifest } from "./manifest/validate.js";
import { planGeneration } from "./generate.js";
import { writeOutputs, findOrphans } from "./write.js";
import { manifestJsonSchema } from "./manifest/schema.js";
import { UserError, ManifestError } from "./errors.js";
import { createOutput, type Output } from "./cli-output.js";

interface CommonOptions {
  manifest?: string;
  json?: boolean;
  quiet?: boolean;
}

export async function main(argv: string[], cwd = process.cwd()): Promise<number> {
  let exitCode = 0;
  const out = createOutput({ json: argv.includes("--json"), quiet: argv.includes("--quiet") || argv.includes("-q") });
  const run = (task: (options: CommonOptions & Record<string, unknown>) => Promise<number>) => async (options: CommonOptions & Record<string, unknown>) => {
    exitCode = await task(options);
  };
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
    .command("validate", "validate the manifest only", (y: Argv) => y, run((options) => validateCommand(options, cwd, out)))
    .command("schema", "print the manifest JSON Schema", (y: Argv) => y, run(async () => {
      out.raw(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      return 0;
    }))
    .demandCommand(1, "name a command (deploygen --help lists them)")
    .strict()
    .help()
    .alias("help", "h")
    .version(false)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message: string | undefined, error: Error | undefined) => {
      if (error) throw error;
      throw new UserError(message ?? "invalid usage", "run deploygen --help", 2);
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

async function generateCommand(options: CommonOptions & Record<string, unknown>, cwd: string, out: Output): Promise<number> {
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

async function validateCommand(options: CommonOptions, cwd: string, out: Output): Promise<number> {
  const file = findManifest(cwd, options.manifest);
  const loaded = await loadManifest(file, cwd);
  const manifest = validateManifest(loaded);
  out.validated(loaded.displayName, Object.keys(manifest.apps).length, Object.keys(manifest.environments).length);
  return 0;
}
