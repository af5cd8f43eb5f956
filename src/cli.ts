// Arguments, printing and exit codes. No logic: every command calls into the pipeline.
import path from "node:path";
import { findManifest, loadManifest } from "./manifest/load.js";
import { validateManifest } from "./manifest/validate.js";
import { planGeneration } from "./generate.js";
import { writeOutputs, findOrphans } from "./write.js";
import { manifestJsonSchema } from "./manifest/schema.js";
import { compareManifestWithDisk } from "./check.js";
import { initManifest } from "./init.js";
import { importFile, writeImported } from "./import/index.js";
import { UserError, ManifestError } from "./errors.js";
import { plainInvocation, yargsInvocation, type Invocation } from "./cli-args.js";
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
  const out = createOutput({ json: argv.includes("--json"), quiet: argv.includes("--quiet") || argv.includes("-q") }, streams);
  try {
    // yargs is loaded only for what the fast path declines: help, usage errors, init, import.
    const invocation = plainInvocation(argv) ?? (await yargsInvocation(argv));
    return invocation === undefined ? 0 : await runCommand(invocation, cwd, out);
  } catch (error) {
    return reportError(error, out);
  }
}

async function runCommand({ command, options }: Invocation, cwd: string, out: Output): Promise<number> {
  switch (command) {
    case "generate":
      return generateCommand(options, cwd, out);
    case "check":
    case "diff":
      return compareCommand(command, options, cwd, out);
    case "validate":
      return validateCommand(options, cwd, out);
    case "schema":
      out.raw(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      return 0;
    case "init":
      return initCommand(options, cwd, out);
    case "import":
      return importCommand(options, cwd, out);
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
