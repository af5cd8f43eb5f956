// The fleet files: fleet-<env>.sh and deploygen-fleet.sh exist only for environments with hosts,
// carry the hosts' data in config-<env>.sh, pass shellcheck, and refuse what they cannot do
// without touching any host. (Deploys, rollbacks and status over SSH: fleet.e2e.test.ts.)
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generateFixtureCopy, generateIn } from "../helpers/generate.js";

const HOSTS = `    releases: { keep: 5 }
    hosts: [app1.example.com, { host: app2.example.com, port: 2222 }]
    remote:
      user: deploy
      repo: git@example.com:acme/tiny.git
      path: /srv/tiny
      sshOptions: [StrictHostKeyChecking=accept-new, ConnectTimeout=7]
`;

describe("fleet files", async () => {
  const plain = await generateFixtureCopy("tiny", "deploygen-fleet-");
  const withHosts = await generateFixtureCopy("tiny", "deploygen-fleet-");
  const manifest = path.join(withHosts.root, "deploygen.yaml");
  writeFileSync(manifest, `${readFileSync(manifest, "utf8").trimEnd()}\n${HOSTS}`);
  const { plan, outputDir } = await generateIn(withHosts.root);
  const scripts = path.join(outputDir, "scripts");
  afterAll(() => {
    for (const root of [plain.root, withHosts.root]) rmSync(root, { recursive: true, force: true });
  });
  const run = (...args: string[]) => spawnSync("bash", [path.join(scripts, "fleet-staging.sh"), ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

  it("are generated only for an environment with hosts", () => {
    const paths = (files: { path: string }[]) => files.map((file) => file.path).filter((file) => file.includes("fleet"));
    expect(paths(plain.plan.files)).toEqual([]);
    expect(paths(plan.files)).toEqual(["scripts/deploygen-fleet.sh", "scripts/fleet-staging.sh"]);
    expect(readFileSync(path.join(plain.outputDir, "scripts", "config-staging.sh"), "utf8")).not.toContain("DG_FLEET");
  });

  it("config-<env>.sh holds the hosts, ports, user, path, ref and ssh options pm2 deploy uses", () => {
    const config = readFileSync(path.join(scripts, "config-staging.sh"), "utf8");
    expect(config).toContain("DG_FLEET_HOSTS=('app1.example.com' 'app2.example.com') DG_FLEET_USER='deploy' DG_FLEET_PATH='/srv/tiny'");
    expect(config).toContain("DG_FLEET_REF='origin/main' DG_FLEET_SCRIPTS='deploy/scripts' DG_FLEET_SSH=(-o 'StrictHostKeyChecking=accept-new' -o 'ConnectTimeout=7')");
    expect(config).toContain("declare -A DG_FLEET_PORT=(['app2.example.com']=2222)");
  });

  it("shellcheck finds nothing in the fleet script, its library and the config that sources it", () => {
    const result = spawnSync("shellcheck", ["-x", "-S", "style", "-f", "gcc", "fleet-staging.sh", "deploygen-fleet.sh"], { cwd: scripts, encoding: "utf8", timeout: 240_000 });
    expect(result.error).toBeUndefined();
    // The library is checked by target-tools.test.ts; only findings in the fleet files count here.
    expect(result.stdout.split("\n").filter((line) => /^(fleet-staging|deploygen-fleet|config-staging)\.sh:/.test(line))).toEqual([]);
  }, 240_000);

  it("--help lists the commands; an unknown command is refused with the fix", () => {
    const help = run("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: fleet-staging\.sh deploy \| setup \| rollback \[COMMIT\] \| status\n/);
    const unknown = run("revert", "1");
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toBe("error: unknown command revert: say what to do: deploy, setup, rollback [COMMIT] or status\nfix: run fleet-staging.sh --help\n");
  });
});
