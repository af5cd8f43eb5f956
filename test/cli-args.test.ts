// The fast path (node:util parseArgs) must read every invocation it takes exactly as yargs does,
// and leave everything else to yargs.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { COMMANDS, plainInvocation, yargsInvocation } from "../src/cli-args.js";

const taken: string[][] = [
  ["generate"],
  ["generate", "-m", "deploygen.yaml"],
  ["generate", "--manifest", "dir/deploygen.yml"],
  ["generate", "--manifest=deploygen.json"],
  ["generate", "-qm", "deploygen.yaml"],
  ["generate", "--env", "staging", "--env", "production"],
  ["generate", "--env=staging"],
  ["generate", "--env", "a,b"],
  ["generate", "--out", "deploy-out", "--force", "--quiet"],
  ["generate", "--out="],
  ["generate", "--out", ""],
  ["generate", "--json", "-q"],
  ["generate", "--out", "with space", "-m", "ünïcode.yaml"],
  ["check"],
  ["check", "--json", "--env", "staging", "--out", "x"],
  ["diff", "-m", "m.yaml", "--env", "qa"],
  ["validate", "-m", "m.yaml", "--json"],
  ["schema"],
  ["schema", "-q"],
];

const declined: string[][] = [
  [],
  ["--help"],
  ["-h"],
  ["generate", "--help"],
  ["generate", "-h"],
  ["--version"],
  ["generate", "--version"],
  ["-m", "x.yaml", "generate"],
  ["generate", "extra"],
  ["generate", "--"],
  ["generate", "--bogus"],
  ["generate", "--no-force"],
  ["generate", "--force=false"],
  ["generate", "--json", "false"],
  ["generate", "-m", "a.yaml", "-m", "b.yaml"],
  ["generate", "--force", "--force"],
  ["generate", "--env", "staging", "production"],
  ["generate", "-m", "-x"],
  ["generate", "-mdeploygen.yaml"],
  ["generate", "--out=-x"],
  ["generate", "-m"],
  ["check", "--force"],
  ["validate", "--env", "staging"],
  ["init"],
  ["init", "--preset", "node"],
  ["import", "ecosystem.config.js"],
  ["nonsense"],
  ["Generate"],
];

describe("the command line's fast path", () => {
  it.each(taken.map((argv) => [argv.join(" "), argv]))("reads %s as yargs does", async (_name, argv) => {
    const fast = plainInvocation(argv);
    expect(fast).toBeDefined();
    expect(fast).toEqual(await yargsInvocation(argv));
  });

  it.each(declined.map((argv) => [argv.join(" ") || "(no arguments)", argv]))("leaves %s to yargs", (_name, argv) => {
    expect(plainInvocation(argv)).toBeUndefined();
  });

  it("reads any invocation it takes as yargs does (generated argument lists)", async () => {
    const word = fc.constantFrom("-m", "--manifest", "m.yaml", "--env", "--env=qa", "staging", "a,b", "--out", "--out=", "o", "--force", "--json", "-q", "--quiet", "-qm", "-mx", "--", "-", "--no-json", "true", "");
    const argv = fc.tuple(fc.constantFrom("generate", "check", "diff", "validate", "schema"), fc.array(word, { maxLength: 6 })).map(([command, rest]) => [command, ...rest]);
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(argv, async (args) => {
        const fast = plainInvocation(args);
        if (fast === undefined) return;
        compared += 1;
        expect(fast).toEqual(await yargsInvocation(args));
      }),
      { numRuns: 400 },
    );
    expect(compared).toBeGreaterThan(20);
  });

  it("takes the commands whose options are plain flags, and no other", () => {
    const fastCommands = COMMANDS.filter((definition) => plainInvocation([definition.name]) !== undefined).map((definition) => definition.name);
    expect(fastCommands).toEqual(["generate", "check", "diff", "validate", "schema"]);
  });
});
