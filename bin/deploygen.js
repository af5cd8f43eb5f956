#!/usr/bin/env node
// CommonJS (see bin/package.json): Node starts it without its ES module loader.
"use strict";
const { main } = require("../dist/run.cjs");

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
