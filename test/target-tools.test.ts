// Generated files checked by their targets' own tools: bash -n and shellcheck for scripts,
// node --check for the helper, systemd-analyze verify for units (instantiated for a real root),
// node + PM2's option schema for ecosystem files.
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, copyFile, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateFixtureCopy, generateIn, FIXTURES, SNAPSHOT_FIXTURES } from "./helpers/generate.js";
import { validatePm2Apps } from "./pm2/validate-apps.js";

const require = createRequire(import.meta.url);

/** Copies template units into a folder as instances for `root`, as install-systemd does. */
export async function instantiateUnits(unitFiles: string[], root: string): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), "deploygen-units-"));
  const instance = execFileSync("systemd-escape", ["--path", "--", root], { encoding: "utf8" }).trim();
  const instances: string[] = [];
  for (const file of unitFiles) {
    const target = path.join(dir, path.basename(file).replace("@.", `@${instance}.`));
    await copyFile(file, target);
    instances.push(target);
  }
  return instances;
}

/** shellcheck at every severity, in the scripts folder (where the `source=` directives point). */
function shellcheck(cwd: string, files: string[], follow: boolean) {
  return spawnSync("shellcheck", [...(follow ? ["-x"] : []), "-S", "style", "-f", "gcc", ...files], { cwd, encoding: "utf8" });
}

// shellcheck -x reads the whole library again for every file that sources it (about 2 s of CPU
// each), and the library is the same file in every project: it is checked once; each config-E.sh
// with the library followed; the command scripts (one template, 8 lines) of one environment with
// config and library followed, and every other one on its own.
const SHELLCHECK_TIMEOUT = 240_000;
const fixtures = SNAPSHOT_FIXTURES.filter((name) => existsSync(path.join(FIXTURES, name)));

/**
 * fixtures/codeframe with what no snapshot fixture has: releases with shared folders (so a
 * rollback script), build outputs, an alert webhook, an app whose name has a "-" (its commands
 * become dg_install_worker_1...), and an environment name with a "-".
 */
async function codeframeWithReleases() {
  const { root } = await generateFixtureCopy("codeframe");
  const manifest = path.join(root, "deploygen.yaml");
  const text = (await readFile(manifest, "utf8"))
    .replace(
      "    systemd: { user: codeframe }\n  production:",
      "    systemd: { user: codeframe }\n    releases: { keep: 3, shared: [uploads, \"data 'x' $HOME\"] }\n    alerts: { webhookEnv: ALERT_URL }\n    minFreeDiskMB: 10\n" +
        "  qa-1:\n    envFile: .env.qa\n    releases: { keep: 2 }\n  production:",
    )
    .replace("environments:", "  worker-1:\n    runtime: command\n    script: bin/worker\n    install: [\"echo 'installing' && true\"]\n    build: [make -j2]\n    buildOutputs: [dist, \"out dir\"]\n    verify: { files: [dist/worker], commands: [test -x bin/worker] }\nenvironments:");
  if (!text.includes("  qa-1:\n") || !text.includes("  worker-1:\n")) throw new Error("fixtures/codeframe/deploygen.yaml changed: update codeframeWithReleases");
  await writeFile(manifest, text);
  return { root, ...(await generateIn(root)) };
}

const SUBJECTS: [string, () => ReturnType<typeof generateFixtureCopy>][] = [
  ...fixtures.map((fixture): [string, () => ReturnType<typeof generateFixtureCopy>] => [`fixtures/${fixture}`, () => generateFixtureCopy(fixture)]),
  ["fixtures/codeframe with releases, shared folders, build outputs and alerts", codeframeWithReleases],
];

for (const [subject, generate] of SUBJECTS) {
  describe(`${subject} through the targets' own tools`, async () => {
    const { root, plan, outputDir } = await generate();
    const scriptsDir = path.join(outputDir, "scripts");
    const scripts = plan.files.filter((file) => file.path.endsWith(".sh")).map((file) => path.join(outputDir, file.path));
    const configs = scripts.map((file) => path.basename(file)).filter((name) => /^config-.+\.sh$/.test(name));
    const commands = scripts.map((file) => path.basename(file)).filter((name) => !configs.includes(name) && name !== "deploygen-lib.sh");
    const units = plan.files.filter((file) => file.path.startsWith("systemd/")).map((file) => path.join(outputDir, file.path));
    const ecosystems = plan.files.filter((file) => file.path.endsWith(".config.js")).map((file) => path.join(outputDir, file.path));

    it("generates the library, the helper, and per environment a config and its command scripts", () => {
      expect(scripts.map((file) => path.basename(file))).toContain("deploygen-lib.sh");
      expect(plan.files.map((file) => file.path)).toContain("scripts/deploygen-helper.cjs");
      expect(configs.length).toBeGreaterThan(0);
      for (const config of configs) {
        const env = config.slice("config-".length, -".sh".length);
        for (const command of ["deploy", "start", "stop", "health-check", "install-systemd"]) expect(commands).toContain(`${command}-${env}.sh`);
        const data = plan.files.find((file) => file.path === `scripts/${config}`)!.content;
        expect(commands.includes(`rollback-${env}.sh`), `rollback-${env}.sh`).toBe(/ DG_RELEASES_KEEP=[1-9]/.test(data));
      }
    });

    it.each(scripts.map((file) => [path.basename(file), file]))("bash -n %s", (_name, file) => {
      const result = spawnSync("bash", ["-n", file], { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    });

    it("node --check accepts deploygen-helper.cjs", () => {
      const result = spawnSync(process.execPath, ["--check", path.join(scriptsDir, "deploygen-helper.cjs")], { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    });

    if (subject === SUBJECTS[0]![0]) {
      it("shellcheck finds nothing in deploygen-lib.sh (all severities)", () => {
        const result = shellcheck(scriptsDir, ["deploygen-lib.sh"], true);
        expect(result.stdout + result.stderr).toBe("");
        expect(result.status).toBe(0);
      }, SHELLCHECK_TIMEOUT);

      it("shellcheck -x finds nothing in the command scripts of one environment, config and library followed (all severities)", () => {
        const env = configs[0]!.slice("config-".length);
        const result = shellcheck(scriptsDir, commands.filter((name) => name.endsWith(`-${env}`)), true);
        expect(result.stdout + result.stderr).toBe("");
        expect(result.status).toBe(0);
      }, SHELLCHECK_TIMEOUT);
    }

    it("shellcheck finds nothing in any config-E.sh, with the library it sources followed (all severities)", () => {
      const result = shellcheck(scriptsDir, configs, true);
      expect(result.stdout + result.stderr).toBe("");
      expect(result.status).toBe(0);
    }, SHELLCHECK_TIMEOUT);

    it("shellcheck finds nothing in any command script but the note that it does not follow its config-E.sh (checked above)", () => {
      const result = shellcheck(scriptsDir, commands, false);
      expect(result.stderr).toBe("");
      const findings = result.stdout.split("\n").filter(Boolean);
      expect(findings).toHaveLength(commands.length);
      for (const command of commands) {
        const config = configs.filter((name) => command.endsWith(`-${name.slice("config-".length)}`)).sort((a, b) => b.length - a.length)[0];
        expect(config, command).toBeDefined();
        const notes = findings.filter((line) => line.startsWith(`${command}:`)).map((line) => line.replace(/^([^:]+):\d+:\d+:/, "$1:LINE:COLUMN:"));
        expect(notes, command).toEqual([`${command}:LINE:COLUMN: note: Not following: ./${config} was not specified as input (see shellcheck -x). [SC1091]`]);
      }
    }, SHELLCHECK_TIMEOUT);

    it("systemd-analyze verify accepts every unit, instantiated for the project root, without a warning", async () => {
      const instances = await instantiateUnits(units, root);
      const result = spawnSync("systemd-analyze", ["verify", "--man=no", "--recursive-errors=yes", ...instances], { encoding: "utf8" });
      expect(result.stderr + result.stdout).toBe("");
      expect(result.status).toBe(0);
    });

    it.each(ecosystems.map((file) => [path.basename(file), file]))("%s loads in node and its apps satisfy PM2's option schema", (_name, file) => {
      const config = require(file) as { apps: Record<string, unknown>[] };
      expect(config.apps.length).toBeGreaterThan(0);
      const result = validatePm2Apps(config.apps);
      expect(result).toEqual({ ok: true });
      for (const app of config.apps) {
        expect(Array.isArray(app.args)).toBe(true);
        expect(String(app.script)).not.toMatch(/\s/);
        expect(String(app.cwd).startsWith(root)).toBe(true);
      }
    });
  });
}
