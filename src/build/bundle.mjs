// Builds dist/ for the command line (`npm run build` type-checks with tsc first; tsc emits nothing).
// Figures and the reasons behind each choice: docs/performance.md.
//
//   dist/cli.cjs    src/cli.ts and every dependency in one minified CommonJS file: a run reads one
//                   file instead of about 190 modules and resolves none. Names are minified too
//                   (a third less to read and deserialize); an internal error's stack is printed
//                   at src/ positions through dist/cli.cjs.map (src/bug-report.ts; positions only,
//                   without the sources' text).
//   dist/cli.cache  V8's code cache for cli.cjs, made here by running the CLI: a run then
//                   deserializes compiled code instead of parsing and compiling the bundle
//                   (Node 20 has no compile cache of its own; ES modules cannot use one at all,
//                   which is why the bundle is CommonJS).
//   dist/run.cjs    what bin/deploygen.js requires: runs cli.cjs with that cache.
//   dist/cli.js     the same exports as an ES module.
//
// - Paths: src/ modules find templates/ and schemas/ relative to their own location
//   (`new URL("../templates/", import.meta.url)`). In the bundle, each module's import.meta.url
//   is the URL tsc would have given it (dist/<same path>.js), so every such path resolves
//   exactly as it does from src/; a dependency's is its own file's (importMetaUrlPlugin).
//   Dependencies are bundled as published: their code is never edited.
// - Templates: each file under templates/ is compiled here with render.ts's own compiler and
//   options and embedded, keyed by its exact text (see src/render-precompiled.ts). At run time
//   the templates are still read from templates/, and a template whose text differs from the
//   embedded one is compiled on the spot: templates/ stays the source of truth.
// - child_process, fs/promises and tty are loaded on first use (lazyBuiltinsPlugin).
//
// Usage: node src/build/bundle.mjs [--analyze]
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync, renameSync, rmSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SRC = path.join(ROOT, "src");
const DIST = path.join(ROOT, "dist");
// Built next to dist/ (same depth, so relative paths and the source map hold), then moved in file
// by file: a CLI run or a test during a build (tests rebuild a stale dist/) never finds dist/ empty.
// The code cache is made after the move, from dist/ itself: V8 keeps the script's file name in it.
const OUT = path.join(ROOT, `.deploygen-tmp-dist-${process.pid}`);
const TEMPLATES = path.join(ROOT, "templates");
const CACHE_FIXTURE = path.join(ROOT, "fixtures", "codeframe", "deploygen.yaml");

const toPosix = (file) => file.split(path.sep).join("/");

/**
 * import.meta.url, which a bundle would otherwise lose, becomes:
 * - in src/a/b.ts: the URL of dist/a/b.js, where tsc would have put it (relative to the bundle);
 * - in a dependency's file (yargs finds its locales with it): the file's URL in the installed
 *   package, resolved at run time from dist/ as an unbundled import would resolve it.
 * Nothing else in any file changes.
 */
const importMetaUrlPlugin = {
  name: "deploygen-import-meta-url",
  setup(builder) {
    builder.onLoad({ filter: /\.(ts|js|mjs|cjs)$/ }, async (args) => {
      const inSrc = args.path.startsWith(SRC + path.sep);
      const packages = toPosix(args.path).split("/node_modules/").slice(1);
      if (!inSrc && packages.length === 0) return undefined;
      const source = await readFile(args.path, "utf8");
      if (!source.includes("import.meta.url")) return undefined;
      let url;
      if (inSrc) {
        url = `new URL(${JSON.stringify(toPosix(path.relative(SRC, args.path)).replace(/\.ts$/, ".js"))}, __deploygenBundleUrl).href`;
      } else {
        // node_modules/a/node_modules/@b/c/lib/x.js -> packages ["a", "@b/c"], file "lib/x.js"
        const last = packages.pop();
        const nameLength = last.startsWith("@") ? 2 : 1;
        const chain = [...packages.map((segment) => segment.split("/").slice(0, segment.startsWith("@") ? 2 : 1).join("/")), last.split("/").slice(0, nameLength).join("/")];
        url = `__deploygenDependencyUrl(${JSON.stringify(chain)}, ${JSON.stringify(last.split("/").slice(nameLength).join("/"))})`;
      }
      return { contents: source.replaceAll("import.meta.url", url), loader: inSrc ? "ts" : "js", resolveDir: path.dirname(args.path) };
    });
  },
};

/**
 * Defines what importMetaUrlPlugin's import.meta.url replacements call (CommonJS: __filename, __dirname and require
 * are the bundle's). A dependency's folder is found the way Node.js finds a package for an import:
 * in the node_modules folders from dist/ upwards (require.resolve would cost milliseconds more,
 * and not every package exports its package.json).
 */
const BANNER = `const __deploygenBundleUrl = require("node:url").pathToFileURL(__filename).href;
function __deploygenDependencyUrl(packages, file) {
  const path = require("node:path");
  const { existsSync } = require("node:fs");
  let dir = __dirname;
  for (const name of packages) {
    for (let from = dir; ; from = path.dirname(from)) {
      const candidate = path.join(from, "node_modules", name);
      if (existsSync(path.join(candidate, "package.json"))) {
        dir = candidate;
        break;
      }
      if (path.dirname(from) === from) return __deploygenBundleUrl;
    }
  }
  return require("node:url").pathToFileURL(path.join(dir, file)).href;
}`;

/**
 * Node.js built-in modules that only some commands or paths use (child_process: `import`;
 * fs/promises, which also loads streams and readline: writes, init, import) are required on first
 * use of one of their exports, not when the bundle starts: each export becomes a getter. The list
 * of exports is taken from the Node.js that builds.
 */
const LAZY_BUILTINS = ["child_process", "fs/promises", "tty"];
const lazyBuiltinsPlugin = {
  name: "deploygen-lazy-builtins",
  setup(builder) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join("|")})$`);
    builder.onResolve({ filter }, (args) => (args.namespace === "lazy-builtin" ? { path: args.path, external: true } : { path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" }));
    builder.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, async (args) => {
      const { createRequire } = await import("node:module");
      const names = Object.keys(createRequire(import.meta.url)(`node:${args.path}`));
      const getters = names.map((name) => `  ${JSON.stringify(name)}: { enumerable: true, get: () => load()[${JSON.stringify(name)}] },`);
      return {
        loader: "js",
        contents: `let real;\nconst load = () => (real ??= require(${JSON.stringify(`node:${args.path}`)}));\nmodule.exports = Object.defineProperties({}, {\n${getters.join("\n")}\n});\n`,
      };
    });
  },
};

async function listFiles(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

/** Compiles every template with src/render.ts itself (bundled to a temporary module), so options cannot drift. */
async function precompileTemplates() {
  const tool = path.join(OUT, ".precompile.mjs");
  await build({
    entryPoints: [path.join(SRC, "render.ts")],
    outfile: tool,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  try {
    const { precompileSource } = await import(pathToFileURL(tool).href);
    const entries = [];
    for (const file of await listFiles(TEMPLATES)) {
      const source = await readFile(file, "utf8");
      entries.push(`  [${JSON.stringify(source)}, ${precompileSource(source)}],`);
    }
    return { count: entries.length, module: `export const PRECOMPILED_TEMPLATES = [\n${entries.join("\n")}\n];\n` };
  } finally {
    await rm(tool, { force: true });
  }
}

function precompiledTemplatesPlugin(precompiled) {
  return {
    name: "deploygen-precompiled-templates",
    setup(builder) {
      builder.onLoad({ filter: /[\\/]src[\\/]render-precompiled\.ts$/ }, () => ({ contents: precompiled.module, loader: "js", resolveDir: SRC }));
    },
  };
}

/** dist/run.cjs: runs cli.cjs as Node would (same wrapper, same require), with the code cache when V8 accepts it. */
function loaderSource(bundleLength, encoding) {
  return `// Generated by src/build/bundle.mjs. Runs cli.cjs with the V8 code cache made at build time.
// V8 ignores a cache from another Node.js version or other V8 flags, and this file ignores one
// made for another cli.cjs, so a mismatch costs time, never correctness.
"use strict";
const { readFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const path = require("node:path");
const vm = require("node:vm");

const bundle = path.join(__dirname, "cli.cjs");
const source = readFileSync(bundle, "${encoding}");
let cachedData;
if (source.length === ${bundleLength}) {
  try {
    cachedData = readFileSync(path.join(__dirname, "cli.cache"));
  } catch {}
}
const script = new vm.Script(\`(function (exports, require, module, __filename, __dirname) {\${source}\\n})\`, {
  filename: bundle,
  cachedData,
  importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
const loaded = { exports: {} };
script.runInThisContext().call(loaded.exports, loaded.exports, createRequire(bundle), loaded, bundle, __dirname);

module.exports = {
  ...loaded.exports,
  /** For the build and the benchmark: whether V8 used the code cache. */
  codeCacheUsed: cachedData !== undefined && !script.cachedDataRejected,
  /** For the build: the code cache of everything compiled so far in this process. */
  createCodeCache: () => script.createCachedData(),
};
`;
}

/** dist/cli.js: the same exports for ES modules (bin/deploygen.js is CommonJS: it skips Node's ES module loader). */
function esmFacadeSource(exportNames) {
  return `// Generated by src/build/bundle.mjs.
import { createRequire } from "node:module";

const cli = createRequire(import.meta.url)("./run.cjs");
${exportNames.map((name) => `export const ${name} = cli.${name};`).join("\n")}
`;
}

/** The names src/cli.ts exports (the loader re-exports them). */
async function entryExports() {
  const probe = await build({ entryPoints: [path.join(SRC, "cli.ts")], bundle: false, write: false, format: "esm", outdir: DIST, metafile: true, logLevel: "warning" });
  return Object.values(probe.metafile.outputs).flatMap((output) => output.exports ?? []);
}

/**
 * Runs the freshly built CLI in a child process (generate, check, validate, schema), then saves
 * V8's code cache of everything that was compiled. Same node binary, no extra flags. These commands
 * never load yargs (src/cli-args.ts), so its code is not in the cache: V8 deserializes the whole
 * cache on every run, and help and usage errors, which do load yargs, are rare.
 */
async function makeCodeCache() {
  if (!existsSync(CACHE_FIXTURE)) {
    console.warn(`bundle: ${path.relative(ROOT, CACHE_FIXTURE)} is missing: no code cache (the CLI works, it only starts slower)`);
    return false;
  }
  const work = await mkdtemp(path.join(tmpdir(), "deploygen-build-"));
  try {
    await copyFile(CACHE_FIXTURE, path.join(work, "deploygen.yaml"));
    const script = `
      const { writeFileSync } = require("node:fs");
      const cli = require(${JSON.stringify(path.join(DIST, "run.cjs"))});
      const runs = [["generate", "-m", "deploygen.yaml"], ["generate", "-m", "deploygen.yaml"], ["check", "-m", "deploygen.yaml"], ["validate", "-m", "deploygen.yaml"], ["schema"]];
      (async () => {
        for (const argv of runs) await cli.main(argv, process.cwd());
        writeFileSync(${JSON.stringify(path.join(OUT, "cli.cache"))}, cli.createCodeCache());
      })();
    `;
    const result = spawnSync(process.execPath, ["-e", script], { cwd: work, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
    if (result.status !== 0) throw new Error(`making the code cache failed:\n${result.stderr}`);
    return true;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Moves the new build into dist/, each file by one rename, after removing the old code cache
 * (a cache must never meet another cli.cjs of the same length), and removes files of an earlier build.
 */
async function publish() {
  await mkdir(DIST, { recursive: true });
  await rm(path.join(DIST, "cli.cache"), { force: true });
  const built = await readdir(OUT);
  for (const name of built) renameSync(path.join(OUT, name), path.join(DIST, name));
  for (const name of await readdir(DIST)) if (!built.includes(name)) await rm(path.join(DIST, name), { recursive: true, force: true });
}

const analyze = process.argv.includes("--analyze");
const started = performance.now();
await rm(OUT, { recursive: true, force: true });
await mkdir(OUT, { recursive: true });
process.on("exit", () => rmSync(OUT, { recursive: true, force: true }));
const precompiled = await precompileTemplates();
const result = await build({
  entryPoints: [path.join(SRC, "cli.ts")],
  outfile: path.join(OUT, "cli.cjs"),
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  mainFields: ["module", "main"],
  banner: { js: BANNER },
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: true,
  charset: "ascii",
  legalComments: "none",
  sourcemap: "linked",
  // Positions only: a bug report needs src/ file, line and column, which the repository has the text of.
  sourcesContent: false,
  metafile: true,
  logLevel: "warning",
  plugins: [importMetaUrlPlugin, lazyBuiltinsPlugin, precompiledTemplatesPlugin(precompiled)],
});
const bundleText = await readFile(path.join(OUT, "cli.cjs"), "utf8");
const exportNames = await entryExports();
// esbuild escapes every non-ASCII character (charset: "ascii"), so the bundle can be read as latin1,
// which V8 turns into a string without decoding UTF-8.
const encoding = /^[\x00-\x7f]*$/.test(bundleText) ? "latin1" : "utf8";
await writeFile(path.join(OUT, "run.cjs"), loaderSource(bundleText.length, encoding));
await writeFile(path.join(OUT, "cli.js"), esmFacadeSource(exportNames));
await publish();
let cacheSize = 0;
if (await makeCodeCache()) {
  cacheSize = (await stat(path.join(OUT, "cli.cache"))).size;
  renameSync(path.join(OUT, "cli.cache"), path.join(DIST, "cli.cache"));
}
console.log(
  `dist: cli.cjs ${(bundleText.length / 1024).toFixed(0)} KiB (${precompiled.count} templates precompiled), cli.cache ${(cacheSize / 1024).toFixed(0)} KiB, ${Math.round(performance.now() - started)} ms`,
);
if (analyze) {
  const { analyzeMetafile } = await import("esbuild");
  console.log(await analyzeMetafile(result.metafile, { verbose: false }));
}
