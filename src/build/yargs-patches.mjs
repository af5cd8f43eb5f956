// Build-time edits to yargs in the bundle, each of which removes start-up work that deploygen's
// command line never uses. The unbundled yargs (tests under vitest, `tsc`) is unchanged, and the
// help and error texts are the same either way (test/cli-help.test.ts runs both).
//
// Each edit must match exactly once, or the build stops: a yargs update that moves the code gets
// a clear failure here instead of a bundle that silently differs.

export const YARGS_PATCHES = [
  {
    file: "yargs/lib/platform-shims/esm.mjs",
    why: "node:assert (and, through it, Node's stream modules) is loaded only if yargs asserts, never at start",
    from: "import { notStrictEqual, strictEqual } from 'assert'\n",
    to: "",
  },
  {
    file: "yargs/lib/platform-shims/esm.mjs",
    why: "(the same edit: yargs asserts on every run, so the checks are made here with Object.is, as node:assert's are, which is loaded only to throw its error)",
    from: "  assert: {\n    notStrictEqual,\n    strictEqual\n  },",
    to:
      "  assert: {\n" +
      '    notStrictEqual: (actual, expected, message) => { if (Object.is(actual, expected)) require("node:assert").notStrictEqual(actual, expected, message) },\n' +
      '    strictEqual: (actual, expected, message) => { if (!Object.is(actual, expected)) require("node:assert").strictEqual(actual, expected, message) }\n' +
      "  },",
  },
  {
    file: "yargs/lib/platform-shims/esm.mjs",
    why: "process.stdout is built (a stream, or a socket for a pipe) only when help is laid out, not when yargs loads",
    from: "    stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null\n",
    to: "    get stdColumns() {\n      return typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null\n    }\n",
  },
  {
    file: "yargs/build/lib/command.js",
    why:
      "yargs lays out a command's whole help before running it, to show it if the command later fails with a usage error; " +
      "deploygen's fail handler never prints help (it names the fix instead), so the layout was thrown away on every run",
    from: "            if (!isDefaultCommand) {\n                yargs.getInternalMethods().getUsageInstance().cacheHelpMessage();\n            }\n",
    to: "",
  },
  {
    file: "yargs/build/lib/yargs-factory.js",
    why:
      "yargs' default --version option guesses the version by finding and parsing the nearest package.json on every run; " +
      "deploygen's command line turns that option off (.version(false)), so the search was thrown away",
    from: "        yargs.help();\n        yargs.version();\n        return yargs;\n",
    to: "        yargs.help();\n        return yargs;\n",
  },
];

/** Applies the patches for one file (path inside node_modules, with forward slashes) to its source. */
export function patchYargsSource(file, source) {
  let patched = source;
  for (const patch of YARGS_PATCHES.filter((candidate) => file.endsWith(`node_modules/${candidate.file}`))) {
    const count = patched.split(patch.from).length - 1;
    if (count !== 1) throw new Error(`bundle: ${patch.file} no longer contains the code a build-time patch replaces (found ${count} times): ${patch.why}. Update src/build/yargs-patches.mjs for this yargs version.`);
    patched = patched.replace(patch.from, () => patch.to);
  }
  return patched;
}

/** Files that have patches. */
export const PATCHED_FILES = [...new Set(YARGS_PATCHES.map((patch) => patch.file))];
