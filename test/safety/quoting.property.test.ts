// The quoting helpers, each checked against its target's own parser: bash reads back what
// shellQuote wrote, systemd (its PID 1 binary in test mode) what systemdQuote/systemdWord/
// systemdEnvAssignment wrote, node what jsString/jsValue wrote. Byte for byte, thousands of
// hostile strings, batched so that one process reads hundreds of values.
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { shellQuote, systemdQuote, systemdWord, systemdEnvAssignment, escapeSystemdSpecifiers, jsString, jsValue } from "../../src/quote.js";
import { hasNoncharacter } from "../../src/manifest/rules.js";
import { hostileString, relativePathArb, plan as planOf, writePlan, tempDir, run, nulRecords, systemdDump, dumpEnvironment, dumpCommands, escapePath } from "./support.js";
import { ManifestError } from "../../src/errors.js";

const work = tempDir("dg-safety-quote-");
const canary = path.join(work, "canary");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const BATCH = 250;
const tally = { shell: 0, systemdEnv: 0, systemdExec: 0, js: 0, configPaths: 0 };
afterAll(() => console.log(`[safety] quoting round-trips: ${JSON.stringify(tally)} strings`));

/** Hostile strings without NUL (no target carries one); newlines included. */
const value = hostileString(canary, 8);
const batch = fc.array(value, { minLength: BATCH, maxLength: BATCH });

describe("shellQuote", () => {
  it("round-trips every string through bash in four contexts, and nothing in it runs", async () => {
    await fc.assert(
      fc.property(batch, (values) => {
        const lines = ["set -euo pipefail", 'ROOT=/r'];
        for (const v of values) {
          const q = shellQuote(v);
          lines.push(`printf '%s\\0' ${q}`); // a word
          lines.push(`x=${q}; printf '%s\\0' "$x"`); // an assignment
          lines.push(`arr=(${q} ${q}); printf '%s\\0' "\${arr[1]}"`); // an array element
          lines.push(`printf '%s\\0' "$ROOT"/${q}`); // glued to a quoted expansion, as the scripts do
        }
        const script = path.join(work, "shell.sh");
        writeFileSync(script, `${lines.join("\n")}\n`);
        expect(run("bash", ["-n", script]).status).toBe(0);
        const result = run("bash", [script], { cwd: work });
        expect(result.stderr.toString()).toBe("");
        const expected = values.flatMap((v) => [v, v, v, `/r/${v}`]);
        expect(nulRecords(result.stdout)).toEqual(expected);
        expect(existsSync(canary)).toBe(false);
        tally.shell += values.length;
      }),
      { numRuns: 12 },
    );
  });

  it("refuses a NUL byte (no shell word holds one)", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
  });

  it("writes single quotes, with ' $ ` and backslash outside them (shellcheck-clean whatever the data)", () => {
    expect(shellQuote("it's $(x)")).toBe(`'it'\\''s '\\$'(x)'`);
    expect(shellQuote("`id`")).toBe("\\`'id'\\`");
    expect(shellQuote("'")).toBe("\\'");
    expect(shellQuote("''")).toBe("\\'\\'");
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("a\\")).toBe("'a'\\\\");
    expect(shellQuote("C:\\dir\\'x")).toBe("'C:'\\\\'dir'\\\\\\''x'");
    expect(shellQuote("")).toBe("''");
  });
});

describe("systemd quoting, against systemd's own parser (systemd --test)", () => {
  // Ground truth: PID 1's binary in test mode loads the units from SYSTEMD_UNIT_PATH and dumps
  // every setting as it parsed it (after unquoting, C unescaping and specifier expansion).
  // The unit is an instance of a template named after a hostile root, so "%f" expands to it.
  const root = `/srv/dg root 50%off $(x) "q" 'a' \\b é\tend`;

  it("Environment= assignments and Exec*= words carry every string exactly; %f still expands", () => {
    const dir = tempDir("dg-safety-units-");
    const units: { name: string; env: Map<string, string>; args: string[] }[] = [];
    // Unicode noncharacters are left out: systemd refuses any unit line holding one (see below),
    // so validation refuses them in the fields that reach a unit.
    const samples = fc.sample(fc.array(value.filter((v) => !hasNoncharacter(v)), { minLength: BATCH, maxLength: BATCH }), { numRuns: 8 });
    samples.forEach((values, unitIndex) => {
      const template = `dgq${unitIndex}@.service`;
      const name = template.replace("@.", `@${escapePath(root)}.`);
      const env = new Map<string, string>();
      const lines = ["[Unit]", "Description=quoting round-trip", "[Service]", "Type=oneshot", "User=nobody"];
      values.forEach((v, index) => {
        const key = `V${String(index).padStart(4, "0")}`;
        // Half plain values, half under the root as the units write PM2_HOME=%f/<path>.
        const prefix = index % 2 === 0 ? "" : "%f/";
        env.set(key, (prefix ? `${root}/` : "") + v);
        lines.push(`Environment=${systemdEnvAssignment(key, prefix, v)}`);
      });
      lines.push(`Environment=${systemdQuote("ZZ_END=%i")}`);
      lines.push(`ExecStart=:/bin/true ${values.map((v, index) => (index % 2 === 0 ? systemdWord("", v) : systemdWord("%f/", v))).join(" ")}`);
      writeFileSync(path.join(dir, name), `${lines.join("\n")}\n`);
      units.push({ name, env, args: values.map((v, index) => (index % 2 === 0 ? v : `${root}/${v}`)) });
    });
    const loader = "dgq-all.target";
    writeFileSync(path.join(dir, loader), `[Unit]\n${units.map((unit) => `Wants=${unit.name}`).join("\n")}\n`);
    const verify = run("systemd-analyze", ["verify", "--man=no", "--recursive-errors=no", ...units.map((unit) => path.join(dir, unit.name))]);
    // "User=nobody is not safe" is the only thing systemd has to say about these units.
    expect(verify.stderr.toString().split("\n").filter((line) => line && !line.includes("Special user nobody"))).toEqual([]);
    const dumps = systemdDump(dir, loader);
    for (const unit of units) {
      const dump = dumps.get(unit.name);
      expect(dump, unit.name).toBeDefined();
      const env = dumpEnvironment(dump!, [...unit.env.keys(), "ZZ_END"]);
      for (const [key, expected] of unit.env) expect(env.get(key), key).toBe(expected);
      // A literal "%i" in systemdQuote'd data stays literal.
      expect(env.get("ZZ_END")).toBe("%i");
      const exec = dumpCommands(dump!).get("ExecStart");
      expect(exec).toHaveLength(1);
      expect(exec![0]).toEqual(["/bin/true", ...unit.args]);
      tally.systemdEnv += unit.env.size;
      tally.systemdExec += unit.args.length;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("pins the rules: % doubles, quotes and backslashes escape, control characters become C escapes", () => {
    expect(systemdQuote("/opt/app-50%off")).toBe('"/opt/app-50%%off"');
    expect(escapeSystemdSpecifiers("/opt/app-50%off")).toBe("/opt/app-50%%off");
    expect(systemdQuote('a"b\\c\nd\te\x01')).toBe('"a\\"b\\\\c\\nd\\te\\x01"');
    expect(systemdWord("%f/", "app-50%off")).toBe('"%f/app-50%%off"');
    expect(systemdEnvAssignment("PM2_HOME", "%f/", ".pm2 50%")).toBe('"PM2_HOME=%f/.pm2 50%%"');
    expect(() => systemdWord("$HOME", "x")).toThrow(/specifiers/);
    expect(() => systemdEnvAssignment("A B", "", "x")).toThrow(/not an environment variable name/);
    expect(() => systemdQuote("a\0b")).toThrow(/NUL/);
  });

  it("systemd refuses a unit line with a Unicode noncharacter, quoted or not (why validation refuses them in output and pm2Home)", () => {
    const dir = tempDir("dg-safety-nonchar-");
    writeFileSync(path.join(dir, "dgnc.service"), `[Service]\nType=oneshot\nExecStart=:/bin/true ${systemdWord("", "a\uffffb")}\n`);
    const verify = run("systemd-analyze", ["verify", "--man=no", path.join(dir, "dgnc.service")]);
    expect(verify.stderr.toString()).toMatch(/not UTF-8 clean/);
    expect(hasNoncharacter("a\uffffb") && hasNoncharacter("\u{10FFFE}") && hasNoncharacter("\ufdd0")).toBe(true);
    expect(hasNoncharacter("é😀\u{F0000}\ufffd")).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it("an unquoted WorkingDirectory= path keeps its % (systemd sees /opt/app-50%off, not /opt/app-50<specifier>ff)", () => {
    const dir = tempDir("dg-safety-wd-");
    writeFileSync(
      path.join(dir, "dgwd.service"),
      `[Service]\nType=oneshot\nUser=nobody\nWorkingDirectory=${escapeSystemdSpecifiers("/opt/app-50%off")}\nExecStart=/bin/true\n`,
    );
    const dump = systemdDump(dir, "dgwd.service").get("dgwd.service")!;
    expect(dump).toMatch(/^\t\tWorkingDirectory: \/opt\/app-50%off$/m);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("jsString and jsValue, read back by node", () => {
  it("round-trip every string (U+2028/9 included) as literals and object values", async () => {
    await fc.assert(
      fc.property(batch, fc.array(fc.tuple(value, value), { minLength: 20, maxLength: 20 }), (values, pairs) => {
        const object = Object.fromEntries(pairs.filter(([key]) => key !== "__proto__"));
        const file = path.join(work, "values.cjs");
        writeFileSync(file, `// ${"comment"}\nmodule.exports = { list: [\n${values.map((v) => jsString(v)).join(",\n")}\n], object: ${jsValue(object)} };\n`);
        const result = run("node", ["-e", `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)})))`]);
        expect(result.stderr.toString()).toBe("");
        const read = JSON.parse(result.stdout.toString("utf8")) as { list: string[]; object: Record<string, string> };
        expect(read.list).toEqual(values);
        expect(read.object).toEqual(object);
        expect(existsSync(canary)).toBe(false);
        tally.js += values.length + Object.keys(object).length * 2;
      }),
      { numRuns: 8 },
    );
  });

  it("a __proto__ key would vanish from an object literal, which is why validation refuses it", () => {
    const file = path.join(work, "proto.cjs");
    writeFileSync(file, `module.exports = ${jsValue(JSON.parse('{"__proto__": "x", "B": "2"}'))};\n`);
    const result = run("node", ["-e", `process.stdout.write(JSON.stringify(Object.keys(require(${JSON.stringify(file)}))))`]);
    expect(JSON.parse(result.stdout.toString())).toEqual(["B"]);
  });
});

describe("config-<env>.sh, the data the library runs on, read back by bash", () => {
  // The paths the release and build logic use (shared folders, build outputs and inputs, verify
  // files, the env file, the app's folder) are written as shell words, lists of them one per line;
  // sourcing the config (and with it the library) must give them back exactly and run nothing.
  const READ_BACK = [
    'source "$1"',
    "out() { printf '%s\\0' \"$@\"; }",
    "lines() { local p; while IFS= read -r p; do out \"$p\"; done < <(dg_paths \"$1\"); out --; }",
    'out "$DG_ENV_FILE" "${DG_SHARED[@]}" --',
    'out "${DG_EXCLUDE[@]}" --',
    'for app in "${DG_APPS[@]}"; do out "${DG_CWD[$app]}"; lines "${DG_OUTPUTS_OF[$app.build]-}"; lines "${DG_BUILD_INPUTS[$app]-}"; lines "${DG_VERIFY_FILES[$app]-}"; done',
  ].join("\n");

  it("shared folders, build outputs and inputs, verify files, the env file and the app folder arrive byte for byte", () => {
    let accepted = 0;
    const paths = (prefix: string, max: number) => fc.uniqueArray(relativePathArb(canary, prefix), { minLength: 1, maxLength: max });
    fc.assert(
      fc.property(fc.record({ shared: paths("s", 3), outputs: paths("b", 3), inputs: paths("i", 2), verify: paths("v", 2), envFile: relativePathArb(canary, "e"), cwd: relativePathArb(canary, "c") }), (drawn) => {
        const manifest = {
          version: 1,
          project: "shop",
          apps: { web: { runtime: "command", cwd: drawn.cwd, script: "run", build: ["true"], buildOutputs: drawn.outputs, buildInputs: drawn.inputs, verify: { files: drawn.verify } } },
          environments: { staging: { envFile: drawn.envFile, releases: { keep: 3, shared: drawn.shared } } },
        };
        let generation;
        try {
          generation = planOf(manifest);
        } catch (error) {
          if (error instanceof ManifestError) return;
          throw error;
        }
        accepted += 1;
        const root = path.join(work, `config-${accepted}`);
        const scripts = path.join(writePlan(root, generation), "scripts");
        const result = run("bash", ["-c", READ_BACK, "-", path.join(scripts, "config-staging.sh")], { cwd: work });
        expect(result.stderr.toString()).toBe("");
        const records = nulRecords(result.stdout);
        const untilMark = () => records.splice(0, records.indexOf("--") + 1).slice(0, -1);
        expect(untilMark()).toEqual([drawn.envFile, ...drawn.shared]);
        const excluded = untilMark();
        for (const file of [drawn.envFile, "logs", ...drawn.shared, ...drawn.outputs.map((output) => path.posix.join(drawn.cwd, output))]) expect(excluded).toContain(file);
        expect(records.shift()).toBe(drawn.cwd);
        expect(untilMark()).toEqual(drawn.outputs);
        expect(untilMark()).toEqual(drawn.inputs);
        expect(untilMark()).toEqual(drawn.verify);
        expect(records).toEqual([]);
        expect(existsSync(canary)).toBe(false);
        tally.configPaths += 2 + drawn.shared.length + drawn.outputs.length + drawn.inputs.length + drawn.verify.length;
      }),
      { numRuns: 25 },
    );
    expect(accepted).toBeGreaterThan(12);
  });
});
