#!/usr/bin/env node
// CommonJS (see bin/package.json): Node starts it without its ES module loader.
"use strict";
const { existsSync } = require("node:fs");
const path = require("node:path");

const loader = path.join(__dirname, "..", "dist", "run.cjs");
// A published package ships dist/ (built when it is packed). A checkout has none until its first
// run, which builds it here from the sources (`npm ci` installs the bundler): no install script.
if (!existsSync(loader)) buildFromSources();

const { main } = require(loader);
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

function buildFromSources() {
  const bundler = path.join(__dirname, "..", "src", "build", "bundle.mjs");
  if (!existsSync(bundler)) {
    process.stderr.write(`error: ${loader} is missing\nfix: reinstall deploygen (its package ships dist/)\n`);
    process.exit(70);
  }
  process.stderr.write("deploygen: first run in this checkout: building dist/ (npm run build does the same)\n");
  // The bundler's summary goes to stderr too: stdout belongs to the command.
  const build = require("node:child_process").spawnSync(process.execPath, [bundler], { stdio: ["ignore", 2, 2] });
  if (build.status !== 0) {
    process.stderr.write("error: building dist/ failed\nfix: run npm ci in the checkout, then npm run build\n");
    process.exit(70);
  }
}
