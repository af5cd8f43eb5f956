// The unit: runs as User=, sets PM2_HOME exactly as every script resolves it (one PM2 daemon for
// systemd, the scripts and a person in a shell), carries the hardening PM2 tolerates, passes
// systemd-analyze verify without a word, and stays under an exposure threshold of
// systemd-analyze security (see docs/security.md).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { GenerationPlan } from "../../src/generate.js";
import { systemdWord } from "../../src/quote.js";
import { plan as planOf, writePlan, tempDir, run, nulRecords, makeStubs, readStubLog, systemdDump, dumpEnvironment, dumpCommands, escapePath } from "./support.js";
import { parse } from "yaml";

/** Highest overall exposure accepted (systemd-analyze security, 0 = best, 10 = worst). Currently 4.3. */
export const EXPOSURE_THRESHOLD = 4.5;

const FIXTURE = parse(readFileSync(path.join(import.meta.dirname, "..", "..", "fixtures", "codeframe", "deploygen.yaml"), "utf8")) as {
  environments: Record<string, Record<string, unknown>>;
};
const work = tempDir("dg-safety-unit-");
const home = path.join(work, "home");
// The project lives in a folder with "%" in its name, and pm2Home (project-relative) has one too.
const root = path.join(work, "srv", "app-50%off");
const absolutePm2Home = path.join(work, "var", "pm2 50%");
const units = path.join(work, "units");
let generation: GenerationPlan;
let outputDir: string;
let dumps: Map<string, string>;
const instance = () => escapePath(root);
const unitFile = (env: string) => path.join(units, `codeframe-${env}@${instance()}.service`);

/** staging: pm2Home under the root; production: absolute; qa: none (PM2's ~/.pm2 of the service user). */
const manifest = {
  ...FIXTURE,
  environments: {
    staging: { ...FIXTURE.environments.staging, pm2Home: "app-50%off/.pm2" },
    production: { ...FIXTURE.environments.production, pm2Home: absolutePm2Home },
    qa: { envFile: ".env.qa", requiredEnv: [], apps: { backend: { port: 16200 }, frontend: { port: 16100 } }, systemd: { user: "codeframe", group: "www-data" } },
  },
};
const expectedPm2Home: Record<string, string | undefined> = { staging: `${root}/app-50%off/.pm2`, production: absolutePm2Home, qa: undefined };

beforeAll(() => {
  mkdirSync(root, { recursive: true });
  mkdirSync(home);
  mkdirSync(units);
  generation = planOf(manifest);
  outputDir = writePlan(root, generation);
  for (const file of generation.files.filter((f) => f.path.startsWith("systemd/")))
    copyFileSync(path.join(outputDir, file.path), path.join(units, path.basename(file.path).replace("@.", `@${instance()}.`)));
  writeFileSync(path.join(units, "dg-all.target"), `[Unit]\n${["staging", "production", "qa"].map((env) => `Wants=codeframe-${env}@${instance()}.service`).join("\n")}\n`);
  dumps = systemdDump(units, "dg-all.target");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const unitText = (env: string) => generation.files.find((file) => file.path === `systemd/codeframe-${env}@.service`)!.content;

describe("PM2_HOME is the same in the unit and in every script", () => {
  it("% in a project-relative pm2Home is doubled in the unit, and systemd reads it back as written", () => {
    expect(unitText("staging")).toContain('Environment="PM2_HOME=%f/app-50%%off/.pm2"');
    expect(unitText("production")).toContain(`Environment="PM2_HOME=${absolutePm2Home.replace(/%/g, "%%")}"`);
    // qa sets no PM2_HOME (comments may still name the variable).
    expect(unitText("qa").split("\n").filter((line) => !line.startsWith("#") && line.includes("PM2_HOME"))).toEqual([]);
  });

  it.each(["staging", "production", "qa"])("%s: systemd, deploy (with and without the unit's environment), start, stop and health-check agree", (env) => {
    const dump = dumps.get(path.basename(unitFile(env)))!;
    const unitEnv = dumpEnvironment(dump, ["CODEFRAME_ROOT", "PM2_HOME", "NO_COLOR"]);
    expect(unitEnv.get("CODEFRAME_ROOT")).toBe(root);
    expect(unitEnv.get("PM2_HOME")).toBe(expectedPm2Home[env]);
    // qa sets none: under systemd, PM2 and the scripts use ~/.pm2 of User= (HOME is set by systemd).
    const pm2Home = expectedPm2Home[env] ?? `${home}/.pm2`;

    const script = (name: string) => path.join(outputDir, "scripts", `${name}-${env}.sh`);
    const base = { PATH: process.env.PATH, HOME: home, NO_COLOR: "1" };
    const printed = (extra: NodeJS.ProcessEnv) => {
      const result = run("bash", [script("deploy"), "--print-values"], { env: { ...base, ...extra }, cwd: work });
      expect(result.stderr.toString()).toBe("");
      return nulRecords(result.stdout).find((record) => record.startsWith("pm2_home="));
    };
    // A person in a shell (nothing set), and systemd running the unit (its Environment= values).
    expect(printed({})).toBe(`pm2_home=${pm2Home}`);
    expect(printed(Object.fromEntries(unitEnv))).toBe(`pm2_home=${pm2Home}`);

    // start, stop and health-check call pm2 with that PM2_HOME (stub pm2 records it).
    const stubs = makeStubs(path.join(work, `stubs-${env}`));
    mkdirSync(pm2Home, { recursive: true });
    writeFileSync(path.join(pm2Home, "pm2.pid"), String(process.pid));
    const jlist = path.join(work, `jlist-${env}.json`);
    // PM2 runs both apps from this checkout (pm_cwd): start's pre-flight takes them for its own.
    const cwdOf: Record<string, string> = { backend: root, frontend: path.join(root, "web-ui") };
    writeFileSync(
      jlist,
      JSON.stringify(["backend", "frontend"].map((app) => ({ name: `codeframe-${env}-${app}`, pid: 1, pm2_env: { namespace: `codeframe-${env}`, status: "online", pm_cwd: cwdOf[app] } }))),
    );
    mkdirSync(path.join(root, "web-ui"), { recursive: true });
    writeFileSync(path.join(root, `.env.${env}`), "ANTHROPIC_API_KEY=real\n", { mode: 0o600 });
    for (const name of ["start", "stop", "health-check"]) {
      const log = path.join(work, `${name}-${env}.log`);
      const result = run("bash", [script(name)], { env: { ...base, PATH: `${stubs.bin}:${process.env.PATH}`, PM2_BIN: stubs.pm2, DGT_LOG: log, DGT_JLIST: jlist }, cwd: work });
      expect(result.status, `${name}: ${result.stderr.toString()}`).toBe(0);
      // Every stub (pm2, curl) sees the exported PM2_HOME.
      const homes = readStubLog(log).map((call) => call.pm2Home);
      expect(homes.length, name).toBeGreaterThan(0);
      expect(new Set(homes), name).toEqual(new Set([pm2Home]));
    }
    // One resolution for every script of the environment: each sources config-<env>.sh, whose
    // data (the manifest's pm2Home) dg_setup of the library turns into PM2_HOME.
    const commands = readdirSync(path.join(outputDir, "scripts")).filter((file) => file.endsWith(`-${env}.sh`) && !file.startsWith("config-"));
    expect(commands.length).toBeGreaterThanOrEqual(5);
    for (const file of commands) expect(readFileSync(path.join(outputDir, "scripts", file), "utf8"), file).toContain(`/'config-${env}.sh'\n`);
    const data = readFileSync(path.join(outputDir, "scripts", `config-${env}.sh`), "utf8");
    const kind = { staging: "DG_PM2_HOME_KIND='project' DG_PM2_HOME='app-50%off/.pm2'", production: `DG_PM2_HOME_KIND='absolute' DG_PM2_HOME='${absolutePm2Home}'`, qa: "DG_PM2_HOME_KIND='default' DG_PM2_HOME=''" }[env];
    expect(data).toContain(kind);
    expect(data.match(/PM2_HOME/g)).toHaveLength(2);
  });
});

describe("the unit's settings, as systemd parses them", () => {
  it.each(["staging", "production", "qa"])("%s: User=, Type=oneshot, RemainAfterExit, hardening, and only the generated commands", (env) => {
    const dump = dumps.get(path.basename(unitFile(env)))!;
    expect(dump).toMatch(/^\t\tUser: codeframe$/m);
    expect(dump).toMatch(/^\t\tType: oneshot$/m);
    expect(dump).toMatch(/^\t\tRemainAfterExit: yes$/m);
    expect(dump).toMatch(/^\t\tPrivateTmp: yes$/m);
    expect(dump).toMatch(/^\t\tProtectSystem: (full|strict)$/m);
    expect(dump).toMatch(/^\t\tMemoryDenyWriteExecute: no$/m);
    expect(dump).toContain(`\n\t\tWorkingDirectory: ${root}\n`);
    if (env === "qa") expect(dump).toMatch(/^\t\tGroup: www-data$/m);
    const scripts = `${root}/deploy/scripts`;
    expect(Object.fromEntries(dumpCommands(dump))).toEqual({
      ExecStart: [["/bin/bash", `${scripts}/start-${env}.sh`, "--direct"]],
      ExecReload: [["/bin/bash", `${scripts}/start-${env}.sh`, "--direct"]],
      ExecStop: [["/bin/bash", `${scripts}/stop-${env}.sh`, "--direct"]],
    });
  });

  it("NoNewPrivileges, AF_UNIX and MemoryDenyWriteExecute as systemd-analyze security reads them", () => {
    const result = run("systemd-analyze", ["security", "--offline=yes", "--json=short", "--no-pager", unitFile("staging")]);
    const checks = new Map((JSON.parse(result.stdout.toString()) as { json_field: string; set: boolean }[]).map((check) => [check.json_field, check.set]));
    expect(checks.get("NoNewPrivileges")).toBe(true);
    expect(checks.get("PrivateTmp")).toBe(true);
    expect(checks.get("UserOrDynamicUser")).toBe(true);
    // "set" means the family is restricted: AF_UNIX must stay allowed (PM2's RPC sockets), and
    // MemoryDenyWriteExecute must stay off (V8's JIT writes code).
    expect(checks.get("RestrictAddressFamilies_AF_UNIX")).toBe(false);
    expect(checks.get("MemoryDenyWriteExecute")).toBe(false);
  });

  it("the unit text: directives present, MemoryDenyWriteExecute absent, AF_UNIX kept, WorkingDirectory unquoted, Environment= quoted, Exec*= only script paths", () => {
    for (const env of ["staging", "production", "qa"]) {
      const text = unitText(env);
      const directives = text.split("\n").filter((line) => /^[A-Z][A-Za-z]*=/.test(line));
      for (const line of ["NoNewPrivileges=yes", "PrivateTmp=yes", "User=codeframe", "Type=oneshot", "RemainAfterExit=yes", "WorkingDirectory=%f", "CapabilityBoundingSet="]) expect(directives).toContain(line);
      expect(directives.some((line) => /^ProtectSystem=(full|strict)$/.test(line))).toBe(true);
      expect(directives.some((line) => line.startsWith("MemoryDenyWriteExecute"))).toBe(false);
      const families = directives.filter((line) => line.startsWith("RestrictAddressFamilies="));
      for (const line of families) expect(line.split(/[=\s]/)).toContain("AF_UNIX");
      for (const line of directives.filter((l) => l.startsWith("Environment="))) expect(line).toMatch(/^Environment=(NO_COLOR=1|"(?:[^"\\]|\\.)*")$/);
      const exec = directives.filter((line) => /^Exec[A-Za-z]*=/.test(line));
      expect(exec).toEqual([
        `ExecStart=:/bin/bash ${systemdWord("%f/", `deploy/scripts/start-${env}.sh`)} --direct`,
        `ExecReload=:/bin/bash ${systemdWord("%f/", `deploy/scripts/start-${env}.sh`)} --direct`,
        `ExecStop=:/bin/bash ${systemdWord("%f/", `deploy/scripts/stop-${env}.sh`)} --direct`,
      ]);
    }
  });

  it("a root service user keeps its capabilities (the bounding set is only emptied for an unprivileged user)", () => {
    const rooted = planOf({ ...manifest, environments: { staging: { ...manifest.environments.staging, systemd: { user: "root" } } } });
    const text = rooted.files.find((file) => file.path === "systemd/codeframe-staging@.service")!.content;
    expect(text).toContain("User=root");
    expect(text).not.toContain("CapabilityBoundingSet=");
  });
});

describe("systemd-analyze", () => {
  it("verify --recursive-errors=yes --man=no prints nothing at all for every unit, timer and health service", () => {
    const files = readdirSync(units).filter((file) => /\.(service|timer)$/.test(file)).map((file) => path.join(units, file));
    expect(files.length).toBe(9);
    const result = run("systemd-analyze", ["verify", "--recursive-errors=yes", "--man=no", ...files]);
    expect(result.stdout.toString() + result.stderr.toString()).toBe("");
    expect(result.status).toBe(0);
  });

  it(`security --offline=yes: overall exposure at most ${EXPOSURE_THRESHOLD}`, () => {
    const result = run("systemd-analyze", ["security", "--offline=yes", "--no-pager", `--threshold=${Math.round(EXPOSURE_THRESHOLD * 10)}`, unitFile("staging")]);
    const text = result.stdout.toString();
    const score = Number(/Overall exposure level for .*: (\d+\.\d+) /.exec(text)?.[1]);
    console.log(`[safety] systemd-analyze security --offline=yes: overall exposure ${score} (threshold ${EXPOSURE_THRESHOLD}): ${/Overall exposure level for .*: (.*)$/m.exec(text)?.[1]}`);
    expect(score).toBeLessThanOrEqual(EXPOSURE_THRESHOLD);
    expect(result.status).toBe(0);
  });
});
