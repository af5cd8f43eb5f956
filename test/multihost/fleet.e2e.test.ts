// Two hosts reached over real SSH, with releases, driven by the generated fleet-staging.sh: it runs
// PM2's own `pm2 deploy` (one host after another) and reads what each host serves from its
// releases. fixtures/tiny is committed to a local bare repository that each host clones.
import { spawnSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLEET_START_TIMEOUT_MS, leftovers, startFleet, whyNoFleet, type Fleet, type Host } from "./hosts.js";

import { PM2, PORT, REMOTE_PATH, checkedOut as checkedOutOn, commitTiny, git, must, pushTinyToFleet } from "./tiny-on-fleet.js";

const FLEET_SCRIPT = "deploy/scripts/fleet-staging.sh";

interface Run {
  status: number | null;
  output: string;
  ms: number;
}

interface Project {
  dir: string;
  /** deploy/scripts/fleet-staging.sh ARGS from the local clone. */
  fleet(...args: string[]): Run;
  /** Changes the served text (optionally so that the server throws at start), commits and pushes; returns the commit's first 10 characters. */
  commit(message: string, edit: { greeting: string; crashAtStart?: boolean }): string;
}

/** fixtures/tiny with releases, hosts and remote in its manifest, on the fleet. */
function deployableTiny(fleet: Fleet): Project {
  const dir = pushTinyToFleet(fleet, "    releases: { keep: 5 }\n    minFreeDiskMB: 50\n");
  return {
    dir,
    fleet(...args) {
      const started = performance.now();
      const result = spawnSync("bash", [FLEET_SCRIPT, ...args], { cwd: dir, env: { ...fleet.localEnv, PM2_BIN: PM2 }, encoding: "utf8", timeout: 300_000 });
      return { status: result.status, output: `${result.stdout}${result.stderr}`, ms: performance.now() - started };
    },
    commit(message, edit) {
      commitTiny(dir, message, edit.greeting, (source) => (edit.crashAtStart ? `throw new Error("${edit.greeting} crashes at start");\n${source}` : source));
      return must(git(dir, "rev-parse", "--short=10", "HEAD"), "git rev-parse").trim();
    },
  };
}

const stateOf = (host: Host) => host.onHost(`${REMOTE_PATH}/source/.deploygen/staging`);
/** The live release on a host, read from its `current` link. */
const liveRelease = (host: Host) => path.basename(readlinkSync(path.join(stateOf(host), "current")));
/** The commit checked out by pm2-deploy on a host. */
const checkedOut = (host: Host) => checkedOutOn(host, "--short=10");
const serving = (host: Host) => host.http(PORT, "/")?.body.trim();
/** The status line fleet-staging.sh prints for a host. */
const hostLine = (output: string, host: Host) => output.split("\n").find((line) => line.trimStart().startsWith(`${host.address} `)) ?? "";

const skip = whyNoFleet();
describe.skipIf(skip !== null)("fleet-staging.sh on two hosts with releases: deploy, self-rollback, fleet rollback, status", () => {
  let fleet: Fleet;
  let project: Project;
  const commits: Record<string, string> = {};
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 2 });
    project = deployableTiny(fleet);
    commits.v1 = must(git(project.dir, "rev-parse", "--short=10", "HEAD"), "rev-parse").trim();
  }, FLEET_START_TIMEOUT_MS);

  afterAll(async () => {
    await fleet?.teardown();
    console.log(`fleet timings (ms): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([key, ms]) => [key, Math.round(ms)])))}`);
  });

  it("setup, then a first deploy: both hosts healthy on a release of the same commit", () => {
    const setup = project.fleet("setup");
    expect(setup.status, setup.output).toBe(0);
    const deploy = project.fleet("deploy");
    expect(deploy.status, deploy.output).toBe(0);
    timings["first deploy, 2 hosts"] = deploy.ms;
    expect(deploy.output).toContain(`every host serves commit ${commits.v1} and is healthy`);
    for (const host of fleet.hosts) {
      expect(liveRelease(host), host.name).toMatch(new RegExp(`-${commits.v1}$`));
      expect(hostLine(deploy.output, host)).toContain(`release ${liveRelease(host)} (commit ${commits.v1}); tiny-staging-web online, healthy`);
      expect(host.http(PORT, "/health")?.status, host.name).toBe(200);
      expect(serving(host), host.name).toBe("tiny");
    }
  }, 300_000);

  it("deploys a second commit to both hosts (timed: where a two-host deploy spends its time)", () => {
    commits.v2 = project.commit("tiny v2", { greeting: "tiny v2" });
    const deploy = project.fleet("deploy");
    expect(deploy.status, deploy.output).toBe(0);
    expect(deploy.output).toContain(`every host serves commit ${commits.v2} and is healthy`);
    for (const host of fleet.hosts) {
      expect(liveRelease(host), host.name).toMatch(new RegExp(`-${commits.v2}$`));
      expect(serving(host), host.name).toBe("tiny v2");
    }
    timings["second deploy, 2 hosts (fleet-staging.sh deploy)"] = deploy.ms;
    // The deploy script's own time on each host ("Deployed tiny (staging) release ... in 1.9s").
    [...deploy.output.matchAll(/Deployed tiny \(staging\) release \S+ in ([\d.]+)s/g)].forEach((match, index) => {
      timings[`deploy script on host ${index + 1}`] = Number(match[1]) * 1000;
    });
    timings["pm2 deploy of 2 hosts (inside it)"] = 1000 * Number(/pm2 deploy ran for ([\d.]+)s/.exec(deploy.output)?.[1]);
    timings["reading both hosts' status once (parallel SSH; done before and after)"] = 1000 * Number(/read in ([\d.]+)s/.exec(deploy.output)?.[1]);
    const status = project.fleet("status");
    expect(status.status, status.output).toBe(0);
    timings["fleet-staging.sh status, 2 hosts"] = status.ms;
    const started = performance.now();
    expect(fleet.hosts[0]!.ssh("true").status).toBe(0);
    timings["one SSH round trip"] = performance.now() - started;
  }, 300_000);

  it("a commit that crashes at start: host 1 rolls itself back, the run stops before host 2, both keep serving the second commit", () => {
    const [first, second] = fleet.hosts as [Host, Host];
    commits.v3 = project.commit("tiny v3 (throws at start)", { greeting: "tiny v3", crashAtStart: true });
    const deploy = project.fleet("deploy");
    expect(deploy.status).not.toBe(0);
    expect(deploy.output).toMatch(/error: release \S+ was rolled back \(tiny-staging-web (crashes at start|is not running)/);
    expect(deploy.output).toContain(`the run stopped at ${first.address}`);
    expect(deploy.output).toContain(`every answering host still serves commit ${commits.v2}`);
    expect(hostLine(deploy.output, first)).toContain(`(commit ${commits.v2}), not ${commits.v3} [checkout at ${commits.v3}: pm2 deploy fetched it, it is not live]`);
    expect(hostLine(deploy.output, second)).toContain(`(commit ${commits.v2}), not ${commits.v3}; tiny-staging-web online, healthy`);
    // pm2-deploy has moved host 1's checkout (and its .deploys) to v3; host 2 was not reached.
    expect(checkedOut(first)).toBe(commits.v3);
    expect(checkedOut(second)).toBe(commits.v2);
    for (const host of fleet.hosts) {
      expect(liveRelease(host), host.name).toMatch(new RegExp(`-${commits.v2}$`));
      expect(serving(host), host.name).toBe("tiny v2");
    }
  }, 300_000);

  it("status reports the live release of each host, not pm2-deploy's checkout", () => {
    const [first, second] = fleet.hosts as [Host, Host];
    const status = project.fleet("status");
    expect(status.status, status.output).toBe(0);
    expect(status.output).toMatch(/Hosts of tiny-staging, in deploy order \(what runs: each host's live release; read in [\d.]+s\)/);
    expect(hostLine(status.output, first)).toBe(
      `    ${first.address} release ${liveRelease(first)} (commit ${commits.v2}) [checkout at ${commits.v3}: pm2 deploy fetched it, it is not live]; tiny-staging-web online, healthy`,
    );
    expect(hostLine(status.output, second)).toBe(`    ${second.address} release ${liveRelease(second)} (commit ${commits.v2}); tiny-staging-web online, healthy`);
    expect(status.output).toContain(`every host serves commit ${commits.v2} and is healthy`);
    for (const host of fleet.hosts) expect(serving(host), host.name).toBe("tiny v2");
  }, 120_000);

  it("rollback without a commit puts both hosts on the commit before the newest one they all have: the first", () => {
    const rollback = project.fleet("rollback");
    expect(rollback.status, rollback.output).toBe(0);
    timings["fleet rollback, 2 hosts"] = rollback.ms;
    expect(rollback.output).toContain(`Rolling every host of tiny-staging back to commit ${commits.v1}`);
    expect(rollback.output).toContain(`every host serves commit ${commits.v1} and is healthy`);
    for (const host of fleet.hosts) {
      expect(liveRelease(host), host.name).toMatch(new RegExp(`-${commits.v1}$`));
      expect(serving(host), host.name).toBe("tiny");
    }
  }, 300_000);

  it("rollback to a named commit (abbreviated) puts both hosts on their own release of it", () => {
    const rollback = project.fleet("rollback", commits.v2!.slice(0, 7));
    expect(rollback.status, rollback.output).toBe(0);
    expect(rollback.output).toContain(`every host serves commit ${commits.v2} and is healthy`);
    const releases = fleet.hosts.map(liveRelease);
    for (const [index, host] of fleet.hosts.entries()) {
      expect(releases[index], host.name).toMatch(new RegExp(`-${commits.v2}$`));
      expect(serving(host), host.name).toBe("tiny v2");
    }
    // A commit that only host 1 ever had a (failed) release of is refused before anything changes.
    const refused = project.fleet("rollback", commits.v3!);
    expect(refused.status).toBe(1);
    expect(refused.output).toContain(`error: not every host has a good release of ${commits.v3}: nothing was rolled back`);
    expect(fleet.hosts.map(liveRelease)).toEqual(releases);
  }, 300_000);

  it("one host unreachable: deploy and rollback refuse naming it, and nothing changes on the other", () => {
    const [first, second] = fleet.hosts as [Host, Host];
    fleet.stopSshd(second);
    const before = { checkout: checkedOut(first), live: liveRelease(first) };
    project.commit("tiny v4", { greeting: "tiny v4" });
    const deploy = project.fleet("deploy");
    expect(deploy.status).toBe(1);
    expect(hostLine(deploy.output, second)).toMatch(new RegExp(`^    ${second.address.replace(/\./g, "\\.")} unreachable: .*(Connection refused|timed out)`));
    expect(deploy.output).toContain("error: not every host answers: nothing was deployed");
    expect(checkedOut(first)).toBe(before.checkout);
    expect(liveRelease(first)).toBe(before.live);
    expect(serving(first)).toBe("tiny v2");
    const rollback = project.fleet("rollback", commits.v1!);
    expect(rollback.status).toBe(1);
    expect(rollback.output).toContain("error: not every host answers: nothing was rolled back");
    expect(liveRelease(first)).toBe(before.live);
    expect(serving(first)).toBe("tiny v2");
    const status = project.fleet("status");
    expect(status.status).toBe(1);
    expect(hostLine(status.output, first)).toContain(`(commit ${commits.v2})`);
    expect(hostLine(status.output, second)).toContain("unreachable");
  }, 300_000);

  it("tears down without leaving a namespace, process (the fleet script's own PM2 daemon included), key or file behind", async () => {
    const { id } = fleet;
    await fleet.teardown();
    expect(leftovers(id)).toEqual([]);
  }, 60_000);
});
