// Generated files checked by their targets' own tools: bash -n and shellcheck for scripts,
// systemd-analyze verify for units (instantiated for a real root), node + PM2's option schema
// for ecosystem files.
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, copyFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateFixtureCopy, FIXTURES, SNAPSHOT_FIXTURES } from "./helpers/generate.js";
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

for (const fixture of SNAPSHOT_FIXTURES.filter((name) => existsSync(path.join(FIXTURES, name)))) {
  describe(`fixtures/${fixture} through the targets' own tools`, async () => {
    const { root, plan, outputDir } = await generateFixtureCopy(fixture);
    const scripts = plan.files.filter((file) => file.path.endsWith(".sh")).map((file) => path.join(outputDir, file.path));
    const units = plan.files.filter((file) => file.path.startsWith("systemd/")).map((file) => path.join(outputDir, file.path));
    const ecosystems = plan.files.filter((file) => file.path.endsWith(".config.js")).map((file) => path.join(outputDir, file.path));

    it.each(scripts.map((file) => [path.basename(file), file]))("bash -n %s", (_name, file) => {
      const result = spawnSync("bash", ["-n", file], { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    });

    it("shellcheck finds nothing in any script (all severities, sourced library followed)", () => {
      const result = spawnSync("shellcheck", ["-x", "-S", "style", "-f", "gcc", ...scripts.map((file) => path.basename(file))], {
        cwd: path.join(outputDir, "scripts"),
        encoding: "utf8",
      });
      expect(result.stdout + result.stderr).toBe("");
      expect(result.status).toBe(0);
    });

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
