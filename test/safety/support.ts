// Shared tools of the safety tests: hostile strings, a manifest generator, systemd's own parser
// as ground truth, and stub executables that record exactly what the generated scripts pass on.
import fc from "fast-check";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseManifestText } from "../../src/manifest/load.js";
import { hasNoncharacter } from "../../src/manifest/rules.js";
import { planGeneration, type GenerationPlan } from "../../src/generate.js";

export const SYSTEMD_BIN = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"].find((file) => existsSync(file)) ?? "/lib/systemd/systemd";

/** A fresh temp folder that any user can read (systemd --test runs as nobody). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

// ----- hostile strings ------------------------------------------------------------------------

/**
 * Fragments that mean something in at least one target: shell expansion and quoting, systemd
 * specifiers, escapes and quoting, JavaScript string and comment syntax, Handlebars, and unicode
 * that some tools treat as whitespace or line breaks. `canary` is a file an executed fragment creates.
 */
export function hostileFragments(canary: string): string[] {
  return [
    `$(touch ${canary})`,
    `\`touch ${canary}\``,
    `;touch ${canary};`,
    `|touch ${canary}`,
    `&& touch ${canary} #`,
    `'$(touch ${canary})'`,
    `"$(touch ${canary})"`,
    `'; touch ${canary}; '`,
    `"; touch ${canary}; "`,
    `$'\\x41'`,
    `";require('fs').writeFileSync('${canary}','');"`,
    `');require("fs").writeFileSync("${canary}","");//`,
    `\${require('fs').writeFileSync('${canary}','')}`,
    `</script>`,
    `"\nExecStartPre=/usr/bin/touch ${canary}\n`,
    "\nExecStartPre=/usr/bin/touch " + canary,
    "%f", "%%", "%n", "%i", "%h", "%", "\\x25f", "%%f",
    "$HOME", "${HOME}", "$$", "$", "$1", "$@", "${x:-y}", "$(( 1 + 1 ))",
    "{{x}}", "{{{x}}}", "{{> env-file}}", "{{#each a}}", "}}", "{{",
    "\\", "\\\\", "\\n", "\\t", "\\x41", "\\u0041", "\\0", "\\'", '\\"',
    "'", '"', "`", "#", " ", "  ", "\t", "*", "?", "[a]", "~", "!", "-", "--help", "=", ",", ";", "&", "|", "<", ">", "(", ")",
    "\n", "\r", "\r\n", "\v", "\f", "\x01", "\x1b[31m", "\x7f",
    "é", "😀", "日本", "\u00a0", "\u2028", "\u2029", "\u202e", "\ufeff", "\u0085", "İ", "ß",
  ];
}

/** Strings made of hostile fragments and arbitrary unicode (no lone surrogates: no UTF-8 file holds one). */
export function hostileString(canary: string, maxParts = 6): fc.Arbitrary<string> {
  const part = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...hostileFragments(canary)) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 4 }) },
  );
  return fc.array(part, { minLength: 1, maxLength: maxParts }).map((parts) => parts.join("").replace(/\0/g, "0"));
}

/** One path segment: no "/", no line break, not "." or "..", at most 100 UTF-8 bytes (file systems allow 255). */
export function segment(canary: string): fc.Arbitrary<string> {
  return hostileString(canary, 4)
    .map((text) => text.replace(/[/\n\r]/g, "_"))
    .map((text) => {
      let out = "";
      for (const char of text) {
        if (Buffer.byteLength(out + char) > 100) break;
        out += char;
      }
      return out;
    })
    .filter((text) => text !== "" && text !== "." && text !== "..");
}

/** A normalised project-relative path (so that the resolver keeps it byte for byte): 1-2 segments, not starting with "~". */
export function relativePathArb(canary: string, first = ""): fc.Arbitrary<string> {
  return fc
    .array(segment(canary), { minLength: 1, maxLength: 2 })
    .map((parts) => first + parts.join("/"))
    .filter((text) => !text.startsWith("~") && path.posix.normalize(text) === text);
}

// ----- manifests --------------------------------------------------------------------------------

export interface FuzzApp {
  runtime: "command" | "python" | "node";
  cwd: string;
  script: string;
  args: string[];
  port: number;
  env: Record<string, string>;
  verify: { files: string[] };
  health?: { path: string; timeoutSeconds: number };
  install: string[];
}

function withoutNoncharacters(value: string): string {
  return [...value].filter((char) => !hasNoncharacter(char)).join("");
}

export interface FuzzManifest {
  version: 1;
  project: string;
  output: string;
  apps: Record<string, FuzzApp>;
  environments: Record<
    string,
    { envFile: string; exampleFile?: string; requiredEnv: string[]; env: Record<string, string>; pm2Home?: string; systemd?: { user: string } }
  >;
}

/**
 * A manifest whose every free-text field holds hostile strings. `id` makes every project name
 * (and so every unit name) unique, so that many manifests can share one systemd run.
 */
export function manifestArb(canary: string, id: () => number, absolutePm2HomeBase: string): fc.Arbitrary<FuzzManifest> {
  const text = hostileString(canary);
  const noWhitespace = hostileString(canary, 4).map((value) => value.replace(/[\s\0]/g, "_").replace(/\//g, "_"));
  const app = fc.record({
    runtime: fc.constantFrom("command" as const, "python" as const, "node" as const),
    cwd: fc.oneof({ weight: 1, arbitrary: fc.constant(".") }, { weight: 4, arbitrary: relativePathArb(canary, "c") }),
    script: noWhitespace.map((value) => `s${value}`),
    args: fc.array(text, { minLength: 0, maxLength: 8 }),
    env: fc.dictionary(fc.constantFrom("A", "B_1", "LONG_NAME", "x", "_y", "z9", "Q_Q", "lower"), text, { maxKeys: 6 }),
    verifyFiles: fc.array(relativePathArb(canary, "v"), { minLength: 0, maxLength: 2 }),
    healthPath: fc.option(noWhitespace.map((value) => `/${value}`), { nil: undefined }),
  });
  return fc
    .record({
      apps: fc.uniqueArray(fc.tuple(fc.constantFrom("web", "api", "worker-1", "a"), app), { minLength: 1, maxLength: 4, selector: ([name]) => name }),
      // Noncharacters are refused in output and pm2Home by validation (systemd cannot load them).
      output: relativePathArb(canary, "o").map(withoutNoncharacters),
      envFile: relativePathArb(canary, "e"),
      exampleFile: fc.option(relativePathArb(canary, "x"), { nil: undefined }),
      pm2Home: fc.oneof(
        fc.constant(undefined),
        relativePathArb(canary, "h").map(withoutNoncharacters),
        segment(canary).map((value) => `${absolutePm2HomeBase}/${withoutNoncharacters(value)}`),
      ),
      env: fc.dictionary(fc.constantFrom("APP_MODE", "Z", "ENV_TEXT", "W1"), text, { maxKeys: 4 }),
      envName: fc.constantFrom("staging", "production", "qa-1"),
    })
    .map((drawn) => {
      const n = id();
      const project = `p${n.toString(36).replace(/[0-9]/g, (digit) => "abcdefghij"[Number(digit)]!)}`;
      const apps: Record<string, FuzzApp> = {};
      drawn.apps.forEach(([name, value], index) => {
        apps[name] = {
          runtime: value.runtime,
          cwd: value.cwd,
          script: value.script,
          args: value.args,
          port: 20000 + ((n * 7 + index) % 40000),
          env: value.env,
          verify: { files: value.verifyFiles },
          ...(value.healthPath !== undefined ? { health: { path: value.healthPath, timeoutSeconds: 5 } } : {}),
          // A command (code, by design) that records the folder it runs in, byte for byte.
          install: [`printf '%s\\0' "$PWD" >>"$DGT_CWD_LOG"`],
        };
      });
      return {
        version: 1 as const,
        project,
        output: drawn.output,
        apps,
        environments: {
          [drawn.envName]: {
            envFile: drawn.envFile,
            ...(drawn.exampleFile !== undefined && drawn.exampleFile !== drawn.envFile ? { exampleFile: drawn.exampleFile } : {}),
            requiredEnv: ["SECRET_KEY"],
            env: drawn.env,
            ...(drawn.pm2Home !== undefined ? { pm2Home: drawn.pm2Home } : {}),
          },
        },
      };
    });
}

/** Runs the real pipeline (validate, resolve, render) on a manifest given as data, as a JSON file. */
export function plan(manifest: unknown, name = "deploygen.json"): GenerationPlan {
  return planGeneration(parseManifestText(JSON.stringify(manifest, null, 2), name, name));
}

/** Writes a plan's files under root/output with their modes (no atomic writer: it is tested on its own). */
export function writePlan(root: string, generation: GenerationPlan): string {
  const outputDir = path.join(root, generation.output);
  for (const file of generation.files) {
    const target = path.join(outputDir, file.path);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.content, { mode: file.mode });
    chmodSync(target, file.mode);
  }
  return outputDir;
}

// ----- processes --------------------------------------------------------------------------------

export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): SpawnSyncReturns<Buffer> {
  return spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, input: options.input, maxBuffer: 256 * 1024 * 1024 });
}

/** Async spawn (for running several scripts in parallel): stdout and stderr as buffers. */
export function runAsync(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ status: number | null; stdout: Buffer; stderr: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
}

/** NUL-terminated records to strings. */
export function nulRecords(data: Buffer | string): string[] {
  const text = typeof data === "string" ? data : data.toString("utf8");
  const parts = text.split("\0");
  parts.pop();
  return parts;
}

// ----- stub executables -------------------------------------------------------------------------

/**
 * pm2, curl and systemctl stand-ins that append their argv (and PM2_HOME) to $DGT_LOG as
 * NUL-terminated records: tool, PM2_HOME, argument count, arguments. pm2 jlist prints $DGT_JLIST;
 * curl succeeds; systemctl fails (no systemd) except for --root=DIR, which runs the real one.
 */
export function makeStubs(dir: string): { bin: string; pm2: string } {
  const bin = path.join(dir, "stub-bin");
  mkdirSync(bin, { recursive: true });
  const record = `printf '%s\\0' "$(basename -- "$0")" "\${PM2_HOME-<unset>}" "$#" "$@" >>"$DGT_LOG"`;
  const realSystemctl = ["/usr/bin/systemctl", "/bin/systemctl"].find((file) => existsSync(file)) ?? "systemctl";
  const stubs: Record<string, string> = {
    pm2: `#!/bin/bash\n${record}\nif [[ \${1-} == jlist ]]; then cat -- "$DGT_JLIST"; fi\nexit 0\n`,
    curl: `#!/bin/bash\n${record}\nexit 0\n`,
    systemctl: `#!/bin/bash\n${record}\nif [[ \${1-} == --root=* ]]; then exec ${realSystemctl} "$@"; fi\nexit 1\n`,
  };
  for (const [name, body] of Object.entries(stubs)) {
    writeFileSync(path.join(bin, name), body, { mode: 0o755 });
  }
  return { bin, pm2: path.join(bin, "pm2") };
}

export interface StubCall {
  tool: string;
  pm2Home: string;
  args: string[];
}

export function readStubLog(file: string): StubCall[] {
  if (!existsSync(file)) return [];
  const records = nulRecords(readFileSync(file));
  const calls: StubCall[] = [];
  for (let index = 0; index < records.length; ) {
    const tool = records[index++]!;
    const pm2Home = records[index++]!;
    const count = Number(records[index++]);
    calls.push({ tool, pm2Home, args: records.slice(index, index + count) });
    index += count;
  }
  return calls;
}

// ----- systemd as the ground truth -------------------------------------------------------------

/**
 * Loads units with systemd's own parser: `systemd --test --system` (PID 1's binary in test mode,
 * which refuses to run as root, so it runs as nobody) loads the given unit and everything it pulls
 * in from SYSTEMD_UNIT_PATH, and dumps every setting as parsed: Environment= values after
 * unquoting, unescaping and specifier expansion, and each Exec*= command line. Returns the dump
 * of each unit in `dir`, by unit name.
 */
export function systemdDump(dir: string, defaultUnit: string): Map<string, string> {
  const asNobody = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEMD_BIN] : [SYSTEMD_BIN];
  const result = spawnSync(asNobody[0]!, [...asNobody.slice(1), "--test", "--system", "--no-pager", `--unit=${defaultUnit}`], {
    env: { PATH: process.env.PATH, SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: "warning", HOME: "/" },
    maxBuffer: 512 * 1024 * 1024,
  });
  const text = result.stdout.toString("utf8");
  if (!text.includes("-> By units:")) throw new Error(`systemd --test failed (status ${result.status}): ${result.stderr.toString("utf8").slice(0, 2000)}`);
  const dumps = new Map<string, string>();
  const header = /^\t-> Unit (.+):$/gm;
  const starts: { name: string; index: number; end: number }[] = [];
  for (let match = header.exec(text); match; match = header.exec(text)) starts.push({ name: match[1]!, index: match.index, end: match.index + match[0].length });
  const jobs = text.indexOf("\n-> By jobs:");
  starts.forEach((start, i) => {
    const stop = i + 1 < starts.length ? starts[i + 1]!.index : jobs >= 0 ? jobs : text.length;
    if (existsSync(path.join(dir, start.name))) dumps.set(start.name, text.slice(start.end, stop));
  });
  return dumps;
}

/**
 * Environment values from a unit's dump. The dump prints "\t\tEnvironment: NAME=VALUE" with VALUE
 * raw (a newline in it is printed as is), so each value runs up to the next "\n\t\t" line that
 * starts a known setting; the caller names the variables in order.
 */
export function dumpEnvironment(dump: string, names: string[]): Map<string, string> {
  const values = new Map<string, string>();
  const marker = (name: string) => `\t\tEnvironment: ${name}=`;
  const all = [...dump.matchAll(/^\t\tEnvironment: ([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((match) => ({ name: match[1]!, index: match.index }));
  for (const name of names) {
    const at = dump.indexOf(marker(name));
    if (at < 0) continue;
    const start = at + marker(name).length;
    const next = all.find((entry) => entry.index > at);
    // After the last Environment= line comes the next setting of the dump (a "\n\t\tName: " line).
    const end = next ? next.index - 1 : dump.slice(start).search(/\n\t\t[A-Z][A-Za-z]+: /) + start;
    values.set(name, dump.slice(start, end));
  }
  return values;
}

/** The Exec*= command lines of a unit's dump, each as argv (systemd quotes them like a shell would). */
export function dumpCommands(dump: string): Map<string, string[][]> {
  const commands = new Map<string, string[][]>();
  const block = /^\t\t-> (Exec[A-Za-z]+):\n((?:\t\t\t[^\n]*\n)+)/gm;
  for (let match = block.exec(dump); match; match = block.exec(dump)) {
    const lines = match[2]!.split("\n").filter((line) => line.startsWith("\t\t\tCommand Line: "));
    commands.set(match[1]!, lines.map((line) => parseSystemdCommandLine(line.slice("\t\t\tCommand Line: ".length))));
  }
  return commands;
}

/**
 * Reads a command line as systemd prints it (quote_command_line: a word with special characters is
 * put in double quotes with \\ \" \$ \` and C escapes such as \t, \n and octal \ooo for other
 * bytes). Works on bytes so that octal escapes of UTF-8 sequences decode correctly.
 */
export function parseSystemdCommandLine(line: string): string[] {
  const bytes = Buffer.from(line, "utf8");
  const words: string[] = [];
  let index = 0;
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, '"': 34, "'": 39, $: 36, "`": 96, " ": 32 };
  while (index < bytes.length) {
    while (bytes[index] === 0x20) index++;
    if (index >= bytes.length) break;
    const out: number[] = [];
    let quoted = false;
    while (index < bytes.length && (quoted || bytes[index] !== 0x20)) {
      const byte = bytes[index]!;
      if (byte === 0x22) {
        quoted = !quoted;
        index++;
      } else if (byte === 0x5c) {
        const next = String.fromCharCode(bytes[index + 1]!);
        if (/[0-7]/.test(next)) {
          out.push(parseInt(bytes.subarray(index + 1, index + 4).toString("latin1"), 8));
          index += 4;
        } else if (next === "x") {
          out.push(parseInt(bytes.subarray(index + 2, index + 4).toString("latin1"), 16));
          index += 4;
        } else if (next in simple) {
          out.push(simple[next]!);
          index += 2;
        } else throw new Error(`unknown escape \\${next} in ${line}`);
      } else {
        out.push(byte);
        index++;
      }
    }
    words.push(Buffer.from(out).toString("utf8"));
  }
  return words;
}

/** systemd-escape --path, for naming an instance after a root. */
export function escapePath(root: string): string {
  const result = run("systemd-escape", ["--path", "--", root]);
  if (result.status !== 0) throw new Error(result.stderr.toString());
  return result.stdout.toString("utf8").replace(/\n$/, "");
}

/** A target that Wants= every given unit, so that one systemd --test run loads them all. */
export function writeLoaderTarget(dir: string, units: string[], name = "dg-safety-all.target"): string {
  const lines = ["[Unit]", "Description=loads every unit under test", ...units.map((unit) => `Wants=${unit}`)];
  writeFileSync(path.join(dir, name), `${lines.join("\n")}\n`);
  return name;
}
