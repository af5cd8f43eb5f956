// Rules learned from the anchors' bugs, pinned: names PM2 cannot confuse, values that no target
// can carry refused with a message, args always an array, scripts without whitespace, env-file
// keys checked (by the generated Node helper) before any value is read, a manifest file name that
// cannot break a comment.
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { chmodSync, existsSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ManifestError, UserError } from "../../src/errors.js";
import { plan as planOf, writePlan, tempDir, run, nulRecords } from "./support.js";
import { REPO_ROOT } from "../helpers/generate.js";

const work = tempDir("dg-safety-rules-");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const base = () => ({
  version: 1,
  project: "shop",
  apps: { web: { runtime: "node", script: "server.js", port: 14000 } } as Record<string, Record<string, unknown>>,
  environments: { staging: {} } as Record<string, Record<string, unknown>>,
});

/** The problems validation reports for a manifest (as "path: message"), or [] when it is accepted. */
function problems(manifest: unknown, name?: string): string[] {
  try {
    planOf(manifest, name);
    return [];
  } catch (error) {
    if (error instanceof ManifestError) return error.problems.map((problem) => `${problem.path.join(".")}: ${problem.message}`);
    throw error;
  }
}

describe("names PM2 and systemd cannot confuse", () => {
  it.each([["1"], ["123"], ["1a"], ["-a"], ["a_b"], ["A"], ["a b"], ["a\nb"], ["a--b"], [""]])("app name %j is refused", (name) => {
    const manifest = base();
    manifest.apps = { [name]: { runtime: "node", script: "server.js" } };
    expect(problems(manifest).join("\n")).toMatch(/name/);
  });

  it.each([["stag\ning"], ["st aging"], ["Staging"], ["1"]])("environment name %j is refused", (name) => {
    const manifest = base();
    manifest.environments = { [name]: {} };
    expect(problems(manifest).join("\n")).toMatch(/name/);
  });

  it('an app named "all" still gets a PM2 name that is not "all" (PM2 reads "all" as every process)', () => {
    const manifest = base();
    manifest.apps = { all: { runtime: "node", script: "server.js" } };
    const ecosystem = planOf(manifest).project.environments[0]!.apps[0]!;
    expect(ecosystem.pm2Name).toBe("shop-staging-all");
  });

  it("environment a-b with app c and environment a with app b-c would share a PM2 name: refused", () => {
    const manifest = base();
    manifest.apps = { c: { runtime: "node", script: "c.js" }, "b-c": { runtime: "node", script: "bc.js" } };
    manifest.environments = { a: {}, "a-b": {} };
    expect(problems(manifest).join("\n")).toMatch(/would both be named shop-a-b-c/);
  });

  it("an app whose PM2 name is another environment's namespace is refused (pm2 stop NAME falls back to namespaces)", () => {
    const manifest = base();
    manifest.apps = { prod: { runtime: "node", script: "p.js" } };
    manifest.environments = { staging: {}, "staging-prod": {} };
    expect(problems(manifest).join("\n")).toMatch(/would both be named shop-staging-prod/);
  });

  it('environment "x-health" would take the unit name of x\'s health check: refused', () => {
    const manifest = base();
    manifest.environments = { x: {}, "x-health": {} };
    expect(problems(manifest).join("\n")).toMatch(/would both be named shop-x-health@/);
  });

  it("property: in every accepted manifest, PM2 names are never numeric, never all, all distinct, and never a namespace", () => {
    const word = fc.constantFrom("a", "b", "a-b", "b-a", "all", "health", "a-health", "x1");
    let accepted = 0;
    let tried = 0;
    fc.assert(
      fc.property(fc.uniqueArray(word, { minLength: 1, maxLength: 3 }), fc.uniqueArray(word, { minLength: 1, maxLength: 3 }), (apps, envs) => {
        const manifest = base();
        manifest.apps = Object.fromEntries(apps.map((name) => [name, { runtime: "command", script: "run" }]));
        manifest.environments = Object.fromEntries(envs.map((name) => [name, {}]));
        tried += 1;
        let generated;
        try {
          generated = planOf(manifest);
        } catch (error) {
          expect(error).toBeInstanceOf(ManifestError);
          return;
        }
        accepted += 1;
        const names = generated.project.environments.flatMap((env) => env.apps.map((app) => app.pm2Name));
        const namespaces = generated.project.environments.map((env) => env.namespace);
        const unitNames = generated.files.filter((file) => file.path.startsWith("systemd/")).map((file) => file.path);
        expect(new Set(names).size).toBe(names.length);
        expect(new Set(unitNames).size).toBe(unitNames.length);
        for (const name of names) {
          expect(name).not.toMatch(/^\d+$/);
          expect(name).not.toBe("all");
          expect(namespaces).not.toContain(name);
        }
      }),
      { numRuns: 300 },
    );
    expect(accepted).toBeGreaterThan(50);
    expect(tried).toBe(300);
  });
});

describe("values no target can carry are refused with a message", () => {
  const cases: [string, (manifest: ReturnType<typeof base>) => void, RegExp][] = [
    ["a NUL in an env value", (m) => (m.apps.web!.env = { A: "x\0y" }), /NUL/],
    ["a NUL in an argument", (m) => (m.apps.web!.args = ["x\0y"]), /NUL/],
    ["a newline in cwd", (m) => (m.apps.web!.cwd = "a\nb"), /line break/],
    ["a newline in a verify file", (m) => (m.apps.web!.verify = { files: ["a\rb"] }), /line break/],
    ["a newline in envFile", (m) => (m.environments.staging!.envFile = ".env\nx"), /line break/],
    ["a newline in pm2Home", (m) => (m.environments.staging!.pm2Home = ".pm2\nx"), /line break/],
    ["a space in a health path", (m) => (m.apps.web!.health = { path: "/a b" }), /no spaces/],
    ["whitespace in script (PM2 would run it through a shell)", (m) => (m.apps.web!.script = "server.js --port 1"), /without spaces/],
    ["a tab in script", (m) => (m.apps.web!.script = "server\t.js"), /without spaces/],
    ["a no-break space in script", (m) => (m.apps.web!.script = "server\u00a0.js"), /without spaces/],
    ["args as a string instead of a list", (m) => (m.apps.web!.args = "--port 1" as unknown as string[]), /expected a list/],
    ["a __proto__ env key (zod and JavaScript drop it silently)", (m) => (m.apps.web!.env = JSON.parse('{"__proto__": "x"}')), /__proto__/],
    ["a __proto__ key anywhere", (m) => (m.environments = JSON.parse('{"staging": {}, "__proto__": {}}')), /__proto__/],
    ["__proto__ in requiredEnv", (m) => Object.assign(m.environments.staging!, { envFile: ".env", requiredEnv: ["__proto__"] }), /__proto__/],
    ["a lone surrogate (no UTF-8 file holds it)", (m) => (m.apps.web!.args = ["a\ud800b"]), /surrogate/],
    ["a Unicode noncharacter in output (systemd refuses the line)", (m) => Object.assign(m, { output: "deploy\uffff" }), /noncharacter/],
    ["a Unicode noncharacter in pm2Home", (m) => (m.environments.staging!.pm2Home = "pm2\u{10fffe}"), /noncharacter/],
    ['a service user ending in "$"', (m) => (m.environments.staging!.systemd = { user: "svc$" }), /ends in "\$"/],
    ["a service user longer than 31 characters", (m) => (m.environments.staging!.systemd = { user: "a".repeat(32) }), /31 characters/],
    ["a project name (the default user) longer than 31 characters", (m) => Object.assign(m, { project: `p${"x".repeat(31)}` }), /defaults to the project name/],
    ["the nobody user", (m) => (m.environments.staging!.systemd = { user: "nobody" }), /not safe/],
    ["a newline in a user name", (m) => (m.environments.staging!.systemd = { user: "svc\nExecStart=/bin/sh" }), /user name/],
  ];
  it.each(cases)("%s", (_what, change, message) => {
    const manifest = base();
    change(manifest);
    expect(problems(manifest).join("\n")).toMatch(message);
  });

  it("a Unicode noncharacter where no unit sees it (an argument, an env value) is accepted", () => {
    const manifest = base();
    manifest.apps.web!.args = ["\uffff"];
    manifest.apps.web!.env = { A: "\ufdd0" };
    expect(problems(manifest)).toEqual([]);
  });
});

describe("the manifest file name lands in a comment of every file", () => {
  it("a line break or U+2028 in it (which would end the comment) is refused", () => {
    for (const name of ["deploy\ngen.json", "deploy\u2028gen.json", "deploy\rgen.json"]) expect(() => planOf(base(), name)).toThrow(UserError);
  });

  it("a name with spaces or quotes is quoted in the regenerate command", () => {
    const generated = planOf(base(), "my deploy's.json");
    const script = generated.files.find((file) => file.path.endsWith(".sh"))!.content;
    expect(script).toContain(` Regenerate: npx deploygen generate -m 'my deploy'\\''s.json'`);
  });
});

describe("PM2 args", () => {
  it("are always an array in the ecosystem file, empty included", () => {
    const manifest = base();
    manifest.apps.worker = { runtime: "command", script: "bin/worker" };
    manifest.apps.web!.args = ["--port", "{port}"];
    const root = path.join(work, "args");
    const outputDir = writePlan(root, planOf(manifest));
    const result = run("node", ["-e", `process.stdout.write(JSON.stringify(require(${JSON.stringify(path.join(outputDir, "ecosystem.staging.config.js"))}).apps.map((a) => a.args)))`]);
    expect(JSON.parse(result.stdout.toString())).toEqual([["--port", "14000"], []]);
  });
});

describe("the env file: each key is checked against ^[A-Za-z_][A-Za-z0-9_]*$ before any value is read", () => {
  // The generated scripts read env files through the generated deploygen-helper.cjs (util.parseEnv
  // after its own refusals): deploy's pre-flight runs `env-check`, the alerts `env-values`.
  // minFreeDiskMB is more than any disk here, so a deploy whose env file passes stops at the very
  // next check, before anything is installed or started.
  const root = path.join(work, "envfile");
  const canary = path.join(work, "canary");
  const envFile = path.join(root, ".env.staging");
  const outputDir = (() => {
    const manifest = base();
    manifest.environments.staging = { envFile: ".env.staging", requiredEnv: ["GOOD"], minFreeDiskMB: 1048576 };
    return writePlan(root, planOf(manifest));
  })();
  const pm2Home = path.join(work, "pm2-home");
  const env = { PATH: `${path.join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH}`, HOME: work, NO_COLOR: "1", PM2_HOME: pm2Home };
  const deploy = () => run("bash", [path.join(outputDir, "scripts", "deploy-staging.sh")], { cwd: work, env });
  const envValues = () => run("node", [path.join(outputDir, "scripts", "deploygen-helper.cjs"), "env-values", envFile], { cwd: work, env });

  it.each([
    ["A-B=1"],
    ["1A=1"],
    ["A.B=1"],
    ["ÄB=1"],
    ["A B=1"],
    [`$(touch ${canary})=1`],
    [`\`touch ${canary}\`=1`],
    ["PATH[0]=x"],
    ["a[$(touch " + canary + ")]=1"],
  ])("refuses %j at its line, reads no value (not even the good keys before it), runs nothing", (line) => {
    writeFileSync(envFile, `GOOD=1\n${line}\nLATER=2\n`, { mode: 0o600 });
    const values = envValues();
    expect(values.status).toBe(1);
    expect(values.stdout.toString()).toBe("");
    expect(values.stderr.toString()).toMatch(new RegExp(`^error\t${envFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: invalid key `));
    const result = deploy();
    expect(result.status).toBe(1);
    expect(result.stderr.toString()).toContain(`error: ${envFile}:2: invalid key ${JSON.stringify(line.slice(0, line.lastIndexOf("=")))}: a shell or PM2 cannot carry it\n`);
    expect(result.stderr.toString()).toMatch(/\nfix: a key is ASCII letters, digits and _/);
    expect(result.stdout.toString()).not.toContain("sets every required key");
    expect(existsSync(path.join(pm2Home, "pm2.pid"))).toBe(false);
    expect(existsSync(canary)).toBe(false);
  });

  it("the pre-flight check warns when the env file is readable by group or others, not when it is 0600", () => {
    writeFileSync(envFile, "GOOD=value\n");
    const check = (mode: number) => {
      chmodSync(envFile, mode);
      return deploy();
    };
    const open = check(0o644);
    expect(open.stderr.toString()).toContain(`warning: ${envFile} is readable by group or others (mode 0644)\nfix: chmod 600 ${envFile}\n`);
    expect(open.stdout.toString()).toContain("ok env file .env.staging sets every required key");
    const closed = check(0o600);
    expect(closed.stdout.toString()).toContain("ok env file .env.staging sets every required key");
    expect(closed.stderr.toString()).not.toContain("warning");
    // Both stop at the next check (free disk), before anything is installed or started.
    for (const result of [open, closed]) {
      expect(result.status).toBe(1);
      expect(result.stderr.toString()).toMatch(/error: only \d+ MB free on the disk of .* \(at least 1048576 MB needed\)/);
    }
  });

  it("names every required key that is unset or empty, each with its fix, before stopping", () => {
    const other = path.join(work, "two-keys");
    const manifest = base();
    manifest.environments.staging = { envFile: ".env.staging", requiredEnv: ["A_KEY", "B_KEY", "C_KEY"], minFreeDiskMB: 1048576 };
    const scripts = path.join(writePlan(other, planOf(manifest)), "scripts");
    writeFileSync(path.join(other, ".env.staging"), "A_KEY=\nC_KEY=set\n", { mode: 0o600 });
    const result = run("bash", [path.join(scripts, "deploy-staging.sh")], { cwd: work, env });
    expect(result.status).toBe(1);
    const file = path.join(other, ".env.staging");
    expect(result.stderr.toString()).toBe(
      `error: ${file}: A_KEY is empty\nfix: set A_KEY=<the real value> in ${file}\nerror: ${file}: B_KEY is not set\nfix: set B_KEY=<the real value> in ${file}\n`,
    );
  });

  it("accepts good keys and keeps hostile values as data", () => {
    writeFileSync(envFile, `GOOD=1\n_A1='$(touch ${canary})'\nexport B=\`touch ${canary}\`\nc="x\\ny"\n`, { mode: 0o600 });
    const values = envValues();
    expect(values.stderr.toString()).toBe("");
    // Backticks quote like single quotes (as in dotenv): the value is the text between them.
    expect(nulRecords(values.stdout).sort()).toEqual([`B=touch ${canary}`, "GOOD=1", `_A1=$(touch ${canary})`, "c=x\ny"]);
    const result = deploy();
    expect(result.stdout.toString()).toContain("ok env file .env.staging sets every required key");
    expect(existsSync(canary)).toBe(false);
  });
});
