// Hostile manifests through the whole pipeline, checked by running what it generates: every free-text
// field (cwd, script, args, env values, verify files, health path, envFile, exampleFile, pm2Home,
// output) holds quotes, $(...), backticks, backslashes, %, specifiers, {{, newlines where allowed and
// arbitrary unicode, and the project sits in a folder with a hostile name. For each manifest:
//   - every script passes bash -n;
//   - deploy --print-values gives back every value byte for byte;
//   - deploy, start, stop, health-check and install-systemd really run (pm2, curl and systemctl are
//     stubs that record their argv and PM2_HOME): names, paths, URLs and PM2_HOME arrive exactly;
//   - node requires each ecosystem file and finds every value exactly;
//   - systemd-analyze verify says nothing about any unit, and systemd's own parser (systemd --test)
//     sees the root, PM2_HOME and the script paths exactly, and no command but the generated ones;
//   - a canary file that any executed fragment would create never appears.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { parseEnv } from "node:util";
import path from "node:path";
import {
  manifestArb,
  plan as planOf,
  writePlan,
  tempDir,
  run,
  runAsync,
  nulRecords,
  makeStubs,
  readStubLog,
  systemdDump,
  dumpEnvironment,
  dumpCommands,
  escapePath,
  type FuzzManifest,
  type StubCall,
} from "./support.js";
import type { GenerationPlan } from "../../src/generate.js";

const RUNS = 36;
/** How many manifests are checked at the same time (RUNS is a multiple of it). */
const CONCURRENT = 3;
const work = tempDir("dg-safety-fuzz-");
const canary = path.join(work, "canary");
const home = path.join(work, "home");
const absolutePm2 = path.join(work, "abs pm2 $(touch x) %f");
const unitsDir = path.join(work, "units");
let stubs: { bin: string; pm2: string };

/** Hostile folder names for the project root (no newline: install-systemd refuses one, by design). */
// A folder name holds no "/": these would create $HOME.c (rootCanary) if ever run.
const rootCanary = `${home}.c`;
const ROOT_NAMES = [
  `r $(touch $HOME.c) 'q' "d"`,
  "r `touch $HOME.c` \\b 50%off %f",
  "r é😀\t$HOME ${x} {{y}}",
  "r ;|&<>*?[a]~!#",
  "r -- --help =,",
];

/** Env file values: hostile for a shell, written in single quotes so that every dotenv-style parser agrees. */
const FILE_VALUES: Record<string, string> = {
  SECRET_KEY: "real-secret-value",
  INJECT_1: `$(touch ${canary})`,
  INJECT_2: `\`touch ${canary}\``,
  QUOTES: 'a"b',
  HASH: "x # not a comment",
  SPEC: "%f %% {{x}} \\n",
};
const ENV_FILE_TEXT = `${Object.entries(FILE_VALUES)
  .map(([key, value]) => `${key}='${value}'`)
  .join("\n")}\n`;

interface Checked {
  manifest: FuzzManifest;
  generation: GenerationPlan;
  root: string;
  outputDir: string;
}
/** What checkManifest has checked so far, in order. */
const checkedSoFar: Checked[] = [];
const tally = { manifests: 0, strings: 0, scriptRuns: 0, valuesReadBack: 0 };

beforeAll(() => {
  mkdirSync(home, { recursive: true });
  mkdirSync(absolutePm2, { recursive: true });
  mkdirSync(unitsDir, { recursive: true });
  stubs = makeStubs(work);
});
afterAll(() => {
  console.log(
    `[safety] manifest fuzz: ${tally.manifests} manifests, ${tally.strings} hostile strings, ${tally.scriptRuns} script runs, ${tally.valuesReadBack} values read back byte for byte`,
  );
  rmSync(work, { recursive: true, force: true });
});

/** Every free-text string of a manifest (for the tally). */
function stringsOf(manifest: FuzzManifest): number {
  const env = Object.values(manifest.environments)[0]!;
  let count = 3 + (env.exampleFile ? 1 : 0) + (env.pm2Home ? 1 : 0) + Object.keys(env.env).length;
  for (const app of Object.values(manifest.apps)) count += 2 + app.args.length + Object.keys(app.env).length + app.verify.files.length + (app.health ? 1 : 0);
  return count;
}

function expectedPm2Home(root: string, pm2Home: string | undefined): string {
  if (pm2Home === undefined) return `${home}/.pm2`;
  return pm2Home.startsWith("/") ? pm2Home : `${root}/${pm2Home}`;
}

/** What deploy --print-values must print, in order, from the manifest as written. */
function expectedValues(manifest: FuzzManifest, root: string): string[] {
  const [envName, env] = Object.entries(manifest.environments)[0]!;
  const out: string[] = [
    `root=${root}`,
    `pm2_home=${expectedPm2Home(root, env.pm2Home)}`,
    `ecosystem=${root}/${manifest.output}/ecosystem.${envName}.config.js`,
    `namespace=${manifest.project}-${envName}`,
    `env_file=${root}/${env.envFile}`,
    ...(env.exampleFile ? [`example_file=${root}/${env.exampleFile}`] : []),
    ...env.requiredEnv.map((key) => `required_env=${key}`),
  ];
  for (const [name, app] of Object.entries(manifest.apps).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const pm2Name = `${manifest.project}-${envName}-${name}`;
    out.push(`app=${pm2Name}`, `cwd=${root}/${app.cwd}`, `port=${app.port}`);
    for (const file of app.verify.files) out.push(`verify_file=${root}/${app.cwd}/${file}`);
    if (app.health) out.push(`health=http://127.0.0.1:${app.port}${app.health.path} (timeout ${app.health.timeoutSeconds}s)`);
    out.push(`error_log=${root}/logs/${pm2Name}.err.log`);
  }
  return out;
}

/** Lays out what the scripts expect on the host: env files, verify files, app folders, a "running" PM2. */
function prepareHost(manifest: FuzzManifest, root: string): { env: NodeJS.ProcessEnv; logs: Record<string, string> } {
  const [envName, env] = Object.entries(manifest.environments)[0]!;
  const write = (relative: string, text: string) => {
    const file = path.join(root, relative);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text, { mode: 0o600 });
  };
  write(env.envFile, ENV_FILE_TEXT);
  if (env.exampleFile) write(env.exampleFile, "SECRET_KEY=change-me\n");
  for (const app of Object.values(manifest.apps)) {
    mkdirSync(path.join(root, app.cwd), { recursive: true });
    for (const file of app.verify.files) write(path.join(app.cwd, file), "");
  }
  const pm2Home = expectedPm2Home(root, env.pm2Home);
  mkdirSync(pm2Home, { recursive: true });
  // A live PID: the scripts take PM2 for running and list its apps through (stub) pm2 jlist, as
  // running from this checkout (pm_cwd under the root: not another checkout's to take over). Each
  // app's PM2 pid file names a live process, as PM2 writes them, so an app without a health URL
  // counts as up once it has stayed alive (the crash-loop watch reads these files).
  writeFileSync(path.join(pm2Home, "pm2.pid"), String(process.pid));
  mkdirSync(path.join(pm2Home, "pids"), { recursive: true });
  const jlist = path.join(root, "jlist.json");
  writeFileSync(
    jlist,
    JSON.stringify(
      Object.entries(manifest.apps).map(([name, app]) => {
        const pm2Name = `${manifest.project}-${envName}-${name}`;
        writeFileSync(path.join(pm2Home, "pids", `${pm2Name}-0.pid`), String(process.pid));
        return { name: pm2Name, pid: 1, pm2_env: { namespace: `${manifest.project}-${envName}`, status: "online", exec_mode: "fork_mode", pm_cwd: path.join(root, app.cwd) } };
      }),
    ),
  );
  const logs = Object.fromEntries(["deploy", "start", "stop", "health", "install", "cwd"].map((name) => [name, path.join(root, `${name}.log`)]));
  const childEnv: NodeJS.ProcessEnv = {
    PATH: `${stubs.bin}:${process.env.PATH}`,
    HOME: home,
    NO_COLOR: "1",
    PM2_BIN: stubs.pm2,
    DGT_JLIST: jlist,
    DGT_CWD_LOG: logs.cwd,
  };
  return { env: childEnv, logs };
}

async function checkManifest(manifest: FuzzManifest, index: number): Promise<void> {
  const generation = planOf(manifest);
  const [envName, env] = Object.entries(manifest.environments)[0]!;
  const root = path.join(work, `p${index}`, ROOT_NAMES[index % ROOT_NAMES.length]!);
  mkdirSync(root, { recursive: true });
  const outputDir = writePlan(root, generation);
  const scriptsDir = path.join(outputDir, "scripts");
  const script = (name: string) => path.join(scriptsDir, `${name}-${envName}.sh`);

  // bash -n on every generated script (the Node helper beside them runs below, from this folder).
  const scripts = readdirSync(scriptsDir).filter((file) => file.endsWith(".sh")).map((file) => path.join(scriptsDir, file));
  expect(scripts.length).toBeGreaterThanOrEqual(7);
  const syntax = run("bash", ["-c", 'for f; do bash -n -- "$f" || exit 1; done', "-", ...scripts]);
  expect(syntax.stderr.toString(), "bash -n").toBe("");
  expect(syntax.status).toBe(0);

  const { env: childEnv, logs } = prepareHost(manifest, root);
  const withLog = (log: string) => ({ ...childEnv, DGT_LOG: log });

  // Values read back by bash: deploy --print-values (NUL-terminated KEY=VALUE records).
  const values = await runAsync("bash", [script("deploy"), "--print-values"], { cwd: work, env: childEnv });
  expect(values.stderr.toString()).toBe("");
  const expected = expectedValues(manifest, root);
  expect(nulRecords(values.stdout)).toEqual(expected);
  tally.valuesReadBack += expected.length;

  // Really run the scripts with recording stubs. deploy, start and stop take the environment's
  // lock (a health check skips its run while another holds it), so they run one after another;
  // install-systemd takes no lock and runs beside them.
  const installRoot = path.join(root, "..", "sysroot");
  const installing = runAsync("bash", [script("install-systemd"), "--root-dir", installRoot], { cwd: work, env: withLog(logs.install!) });
  const deploy = await runAsync("bash", [script("deploy")], { cwd: work, env: withLog(logs.deploy!) });
  const health = await runAsync("bash", [script("health-check")], { cwd: work, env: withLog(logs.health!) });
  const start = await runAsync("bash", [script("start")], { cwd: work, env: withLog(logs.start!) });
  const stop = await runAsync("bash", [script("stop")], { cwd: work, env: withLog(logs.stop!) });
  const install = await installing;
  tally.scriptRuns += 6;
  for (const [name, result] of Object.entries({ deploy, start, stop, health }))
    expect(result.status, `${name}: ${result.stderr.toString()}${result.stdout.toString()}`).toBe(0);
  // logrotate's double-quoted paths cannot carry " \ * ? [ or CR: install-systemd refuses such a
  // root before it installs anything (the other scripts run from it).
  const logrotateUnsafe = /["\\*?[\r]/.test(root);
  expect(install.status, `install-systemd: ${install.stderr.toString()}${install.stdout.toString()}`).toBe(logrotateUnsafe ? 1 : 0);
  if (logrotateUnsafe) expect(install.stderr.toString()).toContain("contains a character logrotate's paths cannot carry");

  const pm2Home = expectedPm2Home(root, env.pm2Home);
  const appNames = Object.keys(manifest.apps).sort();
  const pm2Names = appNames.map((name) => `${manifest.project}-${envName}-${name}`);
  const ecosystem = `${root}/${manifest.output}/ecosystem.${envName}.config.js`;
  const urls = appNames.flatMap((name) => {
    const app = manifest.apps[name]!;
    return app.health ? [`http://127.0.0.1:${app.port}${app.health.path}`] : [];
  });

  // The watch probes each app once it answers, in whatever order PM2 lets them come up.
  const byUrl = (calls: StubCall[]) => calls.filter((call) => call.tool === "curl").map((call) => call.args.at(-1)!).sort();
  for (const [log, result] of [[logs.deploy!, deploy], [logs.start!, start]] as const) {
    const calls = readStubLog(log);
    const pm2Calls = calls.filter((call) => call.tool === "pm2");
    expect(pm2Calls.length).toBeGreaterThan(0);
    for (const call of pm2Calls) expect(call.pm2Home).toBe(pm2Home);
    expect(pm2Calls.find((call) => call.args[0] === "startOrReload")?.args).toEqual(["startOrReload", ecosystem, "--update-env"]);
    expect(byUrl(calls), result.stdout.toString()).toEqual([...urls].sort());
  }
  const stopCalls = readStubLog(logs.stop!).filter((call) => call.tool === "pm2" && call.args[0] === "stop");
  expect(stopCalls.map((call) => call.args[1]), `stop: ${stop.stdout.toString()}${stop.stderr.toString()}`).toEqual(pm2Names);
  for (const call of stopCalls) expect(call.pm2Home).toBe(pm2Home);
  const healthCalls = readStubLog(logs.health!);
  expect(healthCalls.filter((call) => call.tool === "curl").map((call) => call.args.at(-1)), `health-check: ${health.stdout.toString()}`).toEqual(urls);
  for (const call of healthCalls.filter((c) => c.tool === "pm2")) expect(call.pm2Home).toBe(pm2Home);
  // The install commands ran in each app's folder, byte for byte (deploy ran them once each).
  expect(nulRecords(readFileSync(logs.cwd!))).toEqual(appNames.map((name) => path.join(root, manifest.apps[name]!.cwd)));
  // install-systemd enabled the instance named after this root.
  const wants = path.join(installRoot, "etc/systemd/system/multi-user.target.wants", `${manifest.project}-${envName}@${escapePath(root)}.service`);
  if (!logrotateUnsafe) expect(lstatSync(wants).isSymbolicLink(), wants).toBe(true);
  else expect(existsSync(wants), wants).toBe(false);
  expect(existsSync(canary) || existsSync(rootCanary), "an injected command ran").toBe(false);

  // Instantiate the units for the batch checks with systemd.
  const instance = escapePath(root);
  for (const file of generation.files.filter((f) => f.path.startsWith("systemd/")))
    copyFileSync(path.join(outputDir, file.path), path.join(unitsDir, path.basename(file.path).replace("@.", `@${instance}.`)));
  checkedSoFar.push({ manifest, generation, root, outputDir });
  tally.manifests += 1;
  tally.strings += stringsOf(manifest);
}

/**
 * The RUNS hostile manifests, generated and checked (checkManifest) once per file by whichever test
 * asks first, so that every test also runs alone (-t) or in any order.
 */
let corpus: Promise<Checked[]> | undefined;
function checkedCorpus(): Promise<Checked[]> {
  corpus ??= (async () => {
    let counter = 0;
    let index = 0;
    // Checked CONCURRENT at a time (each in its own root, ports and logs): the scripts spend
    // most of a run starting Node (the helper) and polling, not computing.
    await fc.assert(
      fc.asyncProperty(fc.array(manifestArb(canary, () => counter++, absolutePm2), { minLength: CONCURRENT, maxLength: CONCURRENT }), async (manifests) => {
        await Promise.all(manifests.map((manifest) => checkManifest(manifest, index++)));
      }),
      { numRuns: RUNS / CONCURRENT, endOnFailure: true },
    );
    return checkedSoFar;
  })();
  return corpus;
}
// Each manifest's deploy, health-check, start and stop run one after another (they share the
// environment's lock) and start the Node helper about 20 times: the corpus costs about 4 minutes
// of CPU (measured on a two-core machine at load 12: 10 minutes). The margin is for such a machine.
const CORPUS_TIMEOUT = 900_000;

describe("hostile manifests through generate and the generated files", () => {
  it(`${RUNS} manifests: bash -n, values read back byte for byte by bash, every script run, no command executed`, async () => {
    expect(await checkedCorpus()).toHaveLength(RUNS);
  }, CORPUS_TIMEOUT);

  it("shellcheck -S style finds nothing in the scripts generated from the most hostile manifest (its config with the library followed)", async () => {
    const checked = await checkedCorpus();
    const worst = [...checked].sort((a, b) => stringsOf(b.manifest) - stringsOf(a.manifest))[0]!;
    const scriptsDir = path.join(worst.outputDir, "scripts");
    // The hostile values are in config-<env>.sh: checked with the library it sources followed. The
    // command scripts hold only the environment's name and call the library: checked on their own
    // (shellcheck -x would read the whole library again for each); the library itself is the same
    // file in every project (test/target-tools.test.ts checks it).
    const scripts = readdirSync(scriptsDir).filter((file) => file.endsWith(".sh") && file !== "deploygen-lib.sh");
    const configs = scripts.filter((file) => file.startsWith("config-"));
    expect(configs).toHaveLength(1);
    const data = run("shellcheck", ["-x", "-S", "style", ...configs], { cwd: scriptsDir });
    expect(data.stdout.toString() + data.stderr.toString()).toBe("");
    expect(data.status).toBe(0);
    const commands = scripts.filter((file) => !configs.includes(file));
    expect(commands.length).toBeGreaterThanOrEqual(5);
    const result = run("shellcheck", ["-S", "style", "-f", "gcc", ...commands], { cwd: scriptsDir });
    expect(result.stderr.toString()).toBe("");
    const notes = result.stdout.toString().split("\n").filter(Boolean).map((line) => line.replace(/^([^:]+):\d+:\d+:/, "$1:"));
    expect(notes.sort()).toEqual(commands.map((file) => `${file}: note: Not following: ./${configs[0]} was not specified as input (see shellcheck -x). [SC1091]`).sort());
  }, CORPUS_TIMEOUT);

  it("node reads every value of every ecosystem file byte for byte", async () => {
    const checked = await checkedCorpus();
    expect(checked.length).toBe(RUNS);
    const files = checked.map((entry) => {
      const [envName] = Object.keys(entry.manifest.environments);
      return path.join(entry.outputDir, `ecosystem.${envName}.config.js`);
    });
    const result = run("node", ["-e", "process.stdout.write(JSON.stringify(process.argv.slice(1).map((file) => require(file))))", ...files], { cwd: work });
    expect(result.stderr.toString()).toBe("");
    const loaded = JSON.parse(result.stdout.toString("utf8")) as { apps: Record<string, unknown>[] }[];
    const fileEnv = parseEnv(ENV_FILE_TEXT);
    expect(fileEnv).toEqual(FILE_VALUES);
    checked.forEach((entry, i) => {
      const [envName, env] = Object.entries(entry.manifest.environments)[0]!;
      const names = Object.keys(entry.manifest.apps).sort();
      expect(loaded[i]!.apps.map((app) => app.name)).toEqual(names.map((name) => `${entry.manifest.project}-${envName}-${name}`));
      names.forEach((name, j) => {
        const app = entry.manifest.apps[name]!;
        const read = loaded[i]!.apps[j]!;
        expect(read.namespace).toBe(`${entry.manifest.project}-${envName}`);
        expect(read.script).toBe(app.script);
        expect(read.script).not.toMatch(/\s/);
        expect(Array.isArray(read.args)).toBe(true);
        expect(read.args).toEqual(app.args.map((arg) => arg.split("{port}").join(String(app.port))));
        expect(read.cwd).toBe(path.join(entry.root, app.cwd));
        const expectedEnv: Record<string, string> = { ...env.env, ...app.env, ...FILE_VALUES, HOST: "127.0.0.1", PORT: String(app.port) };
        // DEPLOYGEN_ENV_KEYS (when the template adds it): the names of the other variables.
        const { DEPLOYGEN_ENV_KEYS: keys, ...readEnv } = read.env as Record<string, string>;
        expect(readEnv).toEqual(expectedEnv);
        if (keys !== undefined) expect(keys).toBe(Object.keys(expectedEnv).sort().join(","));
        tally.valuesReadBack += 3 + app.args.length + Object.keys(read.env as object).length;
      });
    });
    expect(existsSync(canary), "an injected command ran").toBe(false);
  }, CORPUS_TIMEOUT);

  it("systemd-analyze verify says nothing, and systemd's parser sees the root, PM2_HOME and script paths exactly", async () => {
    const checked = await checkedCorpus();
    const units = readdirSync(unitsDir).map((file) => path.join(unitsDir, file));
    const verify = run("systemd-analyze", ["verify", "--recursive-errors=yes", "--man=no", ...units]);
    expect(verify.stderr.toString() + verify.stdout.toString()).toBe("");
    expect(verify.status).toBe(0);

    const mains = checked.map((entry) => {
      const [envName] = Object.keys(entry.manifest.environments);
      const instance = escapePath(entry.root);
      return { entry, envName: envName!, main: `${entry.manifest.project}-${envName}@${instance}.service`, health: `${entry.manifest.project}-${envName}-health@${instance}.service` };
    });
    writeFileSync(path.join(unitsDir, "dg-all.target"), `[Unit]\n${mains.flatMap((m) => [`Wants=${m.main}`, `Wants=${m.health}`]).join("\n")}\n`);
    const dumps = systemdDump(unitsDir, "dg-all.target");
    for (const { entry, envName, main, health } of mains) {
      const env = Object.values(entry.manifest.environments)[0]!;
      const rootVar = `${entry.manifest.project.toUpperCase().replace(/-/g, "_")}_ROOT`;
      const scripts = `${entry.root}/${entry.manifest.output}/scripts`;
      for (const [unit, commands] of [
        [main, { ExecStart: [[`/bin/bash`, `${scripts}/start-${envName}.sh`, "--direct"]], ExecReload: [[`/bin/bash`, `${scripts}/start-${envName}.sh`, "--direct"]], ExecStop: [[`/bin/bash`, `${scripts}/stop-${envName}.sh`, "--direct"]] }],
        [health, { ExecStart: [[`/bin/bash`, `${scripts}/health-check-${envName}.sh`, "--direct"]] }],
      ] as const) {
        const dump = dumps.get(unit);
        expect(dump, unit).toBeDefined();
        const seen = dumpEnvironment(dump!, [rootVar, "PM2_HOME", "NO_COLOR"]);
        expect(seen.get(rootVar)).toBe(entry.root);
        expect(seen.get("PM2_HOME")).toBe(env.pm2Home === undefined ? undefined : expectedPm2Home(entry.root, env.pm2Home));
        expect(seen.get("NO_COLOR")).toBe("1");
        expect(dump).toContain(`\n\t\tWorkingDirectory: ${entry.root}\n`);
        // Only the generated commands: nothing injected into (or next to) an Exec*= line.
        expect(Object.fromEntries(dumpCommands(dump!))).toEqual(commands);
        tally.valuesReadBack += 2 + Object.keys(commands).length;
      }
    }
    expect(existsSync(canary), "an injected command ran").toBe(false);
  }, CORPUS_TIMEOUT);
});
