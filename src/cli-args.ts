// The command line's arguments: their definition (yargs: help, usage errors, every command) and a
// fast path for the plain invocations that CI and hooks run (generate, check, diff, validate,
// schema with flags spelled the usual way), parsed with node:util parseArgs from the same
// definitions. yargs is loaded only when the fast path declines: loading it lays out help text
// with string-width, whose Intl.Segmenter and Unicode property tables cost about as much as the
// rest of a `generate` (docs/performance.md). The fast path declines anything it is not sure to
// read exactly as yargs does (test/cli-args.test.ts compares the two on the same arguments).
import type { Argv, Options as YargsOption, PositionalOptions } from "yargs";
import { parseArgs } from "node:util";
import { PRESETS, DEFAULT_PRESET } from "./init.js";
import { DEFAULT_IMPORT_TIMEOUT_SECONDS } from "./import/index.js";
import { UserError } from "./errors.js";
import { terminalColumns } from "./stdio.js";

export type CommandName = "generate" | "check" | "diff" | "validate" | "schema" | "init" | "import";

/** A command and its options by their long names (yargs adds aliases and camel-case copies too). */
export interface Invocation {
  command: CommandName;
  options: Record<string, unknown>;
}

interface CommandDefinition {
  name: CommandName;
  /** yargs' command string: the name and its positionals. */
  usage: string;
  description: string;
  positionals?: Record<string, PositionalOptions>;
  options: Record<string, YargsOption>;
}

export const GLOBAL_OPTIONS: Record<string, YargsOption> = {
  manifest: { alias: "m", type: "string", description: "manifest file (default: deploygen.yaml, deploygen.yml or deploygen.json here)" },
  json: { type: "boolean", description: "machine-readable output" },
  quiet: { alias: "q", type: "boolean", description: "print only errors" },
};

const OUT_OPTION: YargsOption = { type: "string", description: "output folder (default: the manifest's output, next to it)" };
const COMPARING_OPTIONS: Record<string, YargsOption> = {
  env: { type: "string", array: true, description: "compare only these environments' files (repeatable); orphans are judged against all" },
  out: OUT_OPTION,
};

export const COMMANDS: readonly CommandDefinition[] = [
  {
    name: "generate",
    usage: "generate",
    description: "write every generated file (all or nothing)",
    options: {
      env: { type: "string", array: true, description: "only these environments (repeatable)" },
      out: OUT_OPTION,
      force: { type: "boolean", description: "overwrite files that deploygen did not generate" },
    },
  },
  {
    name: "check",
    usage: "check",
    description: "compare the files on disk with what the manifest generates; exit 1 when they differ (for CI)",
    options: COMPARING_OPTIONS,
  },
  { name: "diff", usage: "diff", description: "print what generate would change, as a unified diff; writes nothing", options: COMPARING_OPTIONS },
  { name: "validate", usage: "validate", description: "validate the manifest only", options: {} },
  { name: "schema", usage: "schema", description: "print the manifest JSON Schema", options: {} },
  {
    name: "init",
    usage: "init",
    description: "write a commented starter manifest (never overwrites one)",
    options: {
      preset: { type: "string", choices: PRESETS, default: DEFAULT_PRESET, description: "what the project runs" },
      project: { type: "string", description: "project name (default: this folder's name)" },
    },
  },
  {
    name: "import",
    usage: "import <file>",
    description: "turn a PM2 ecosystem file (.js, .cjs, .mjs, .json, .yaml) or a Procfile into a manifest",
    positionals: {
      file: { type: "string", description: "ecosystem file or Procfile; JavaScript is run in a separate Node.js process, as PM2 would" },
    },
    options: {
      out: { alias: "o", type: "string", description: "write the manifest to this file (default: print it)" },
      project: { type: "string", description: "project name (default: the apps' common name prefix, else the project folder's name)" },
      env: { type: "string", description: "environment name (default: from ecosystem.<env>.config.js, else production)" },
      root: { type: "string", description: "project root (default: the common folder of the apps' absolute cwd, else the file's folder)" },
      timeout: { type: "number", default: DEFAULT_IMPORT_TIMEOUT_SECONDS, description: "seconds a JavaScript file may take to load" },
      force: { type: "boolean", description: "replace the -o file if it exists" },
    },
  },
];

/** The long names of a command's options and the global ones: what an Invocation carries. */
export function optionNames(command: CommandName): string[] {
  const definition = COMMANDS.find((candidate) => candidate.name === command);
  return [...Object.keys(GLOBAL_OPTIONS), ...Object.keys(definition?.positionals ?? {}), ...Object.keys(definition?.options ?? {})];
}

type ParseArgsOptions = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/**
 * parseArgs' options for a command, or undefined when one of its options is more than a plain
 * string or boolean flag (a default, choices, a number, a positional): yargs parses that command.
 */
function plainOptions(definition: CommandDefinition): ParseArgsOptions | undefined {
  if (definition.positionals !== undefined) return undefined;
  const options: ParseArgsOptions = {};
  for (const [name, option] of Object.entries({ ...GLOBAL_OPTIONS, ...definition.options })) {
    const { alias, type, array, description, ...rest } = option;
    if (Object.keys(rest).length > 0 || (type !== "string" && type !== "boolean") || (array === true && type !== "string") || description === undefined) return undefined;
    if (alias !== undefined && (typeof alias !== "string" || alias.length !== 1)) return undefined;
    options[name] = { type, ...(alias !== undefined ? { short: alias } : {}), ...(array === true ? { multiple: true } : {}) };
  }
  return options;
}

/**
 * The invocation when argv is a plain one (the command first, then known flags, each at most once
 * unless repeatable, values not starting with "-", nothing else); undefined otherwise, and for
 * --help, --version, unknown flags and every usage error, which yargs then reports.
 */
export function plainInvocation(argv: readonly string[]): Invocation | undefined {
  const definition = COMMANDS.find((candidate) => candidate.name === argv[0]);
  const options = definition && plainOptions(definition);
  if (definition === undefined || options === undefined) return undefined;
  const parsed = parseStrictly(argv.slice(1), options);
  if (parsed === undefined) return undefined;
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== "option") return undefined;
    if (seen.has(token.name) && options[token.name]?.multiple !== true) return undefined;
    seen.add(token.name);
    // yargs reads "--json=false" and "--force=0" as false; parseArgs refuses a value for a boolean
    // (caught above). A string value that looks like a flag is one yargs might take as a flag.
    if (token.value !== undefined && token.value.startsWith("-")) return undefined;
    // yargs reads "-mfile" as the flags -m -f -i -l -e.
    if (token.inlineValue === true && !token.rawName.startsWith("--")) return undefined;
  }
  return { command: definition.name, options: { ...parsed.values } };
}

function parseStrictly(args: string[], options: ParseArgsOptions) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
  } catch {
    return undefined;
  }
}

/** Copies, so that yargs cannot change the definitions the fast path reads. */
const copyOptions = (options: Record<string, YargsOption>) => Object.fromEntries(Object.entries(options).map(([name, option]) => [name, { ...option }]));

/**
 * Parses argv with yargs: prints help (undefined is returned then), throws a UserError (exit 2)
 * for a usage error, else returns the invocation. Loads yargs.
 */
export async function yargsInvocation(argv: readonly string[]): Promise<Invocation | undefined> {
  const { default: yargs } = await import("yargs");
  let invocation: Invocation | undefined;
  let parser = yargs([...argv])
    .scriptName("deploygen")
    .usage("$0 <command> [options]\n\nTurns deploygen.yaml into a PM2 ecosystem file, a systemd unit and deploy scripts.")
    .options(copyOptions(GLOBAL_OPTIONS));
  for (const definition of COMMANDS) {
    const builder = (y: Argv) => {
      let built = y;
      for (const [name, positional] of Object.entries(definition.positionals ?? {})) built = built.positional(name, { ...positional });
      return built.options(copyOptions(definition.options));
    };
    const names = optionNames(definition.name);
    parser = parser.command(definition.usage, definition.description, builder, (parsed: Record<string, unknown>) => {
      const options: Record<string, unknown> = {};
      for (const name of names) if (parsed[name] !== undefined) options[name] = parsed[name];
      invocation = { command: definition.name, options };
    });
  }
  await parser
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
    .exitProcess(false)
    .parseAsync();
  return invocation;
}
