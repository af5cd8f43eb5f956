// Two hosts reached over real SSH, deployed with PM2's own `pm2 deploy` and the deploy section that
// deploygen generates: fixtures/tiny committed to a local bare repository, cloned by each host.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLEET_START_TIMEOUT_MS, leftovers, startFleet, whyNoFleet, type Fleet, type Host } from "./hosts.js";

import { PM2, PORT, REMOTE_PATH, checkedOut as checkedOutOn, commitTiny, git, must, pushTinyToFleet } from "./tiny-on-fleet.js";

interface Project {
  dir: string;
  /** `pm2 deploy deploy/ecosystem.staging.config.js staging ARGS` from the local clone; with how long it took. */
  pm2Deploy(...args: string[]): { status: number | null; output: string; ms: number };
  /** Change the served text (and optionally break the build), commit and push; returns the commit. */
  commit(message: string, edit: { greeting?: string; breakBuild?: boolean }): string;
}

/** fixtures/tiny with hosts and remote in its manifest, on the fleet. */
function deployableTiny(fleet: Fleet): Project {
  const dir = pushTinyToFleet(fleet, "");
  return {
    dir,
    pm2Deploy(...args) {
      const started = performance.now();
      const result = spawnSync(PM2, ["deploy", "deploy/ecosystem.staging.config.js", "staging", ...args], { cwd: dir, env: fleet.localEnv, encoding: "utf8", timeout: 240_000 });
      return { status: result.status, output: `${result.stdout}${result.stderr}`, ms: performance.now() - started };
    },
    commit(message, edit) {
      commitTiny(dir, message, edit.greeting ?? "tiny", (source) => (edit.breakBuild ? `${source}\nthis is not javascript(\n` : source));
      return must(git(dir, "rev-parse", "HEAD"), "git rev-parse").trim();
    },
  };
}

/** The commit checked out on a host (read from this machine). */
const checkedOut = (host: Host) => checkedOutOn(host);
const serving = (host: Host) => host.http(PORT, "/")?.body.trim();

const skip = whyNoFleet();
describe.skipIf(skip !== null)("pm2 deploy to two hosts over SSH with the generated deploy section", () => {
  let fleet: Fleet;
  let project: Project;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const started = performance.now();
    fleet = await startFleet({ hosts: 2 });
    timings["start two hosts"] = performance.now() - started;
    project = deployableTiny(fleet);
  }, FLEET_START_TIMEOUT_MS);

  afterAll(async () => {
    await fleet?.teardown();
    console.log(`multi-host timings (ms): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([key, ms]) => [key, Math.round(ms)])))}`);
  });

  it("setup then update brings both hosts up, healthy, on the same commit", () => {
    const setup = project.pm2Deploy("setup");
    expect(setup.status, setup.output).toBe(0);
    // (pm2-deploy echoes each hook's text; the message itself would be a line of its own)
    expect(setup.output).not.toMatch(/^deploygen: no env file/m);
    timings["setup, 2 hosts"] = setup.ms;
    const update = project.pm2Deploy();
    expect(update.status, update.output).toBe(0);
    timings["first update, 2 hosts"] = update.ms;
    const head = must(git(project.dir, "rev-parse", "HEAD"), "rev-parse").trim();
    for (const host of fleet.hosts) {
      expect(checkedOut(host), host.name).toBe(head);
      expect(host.http(PORT, "/health")?.status, host.name).toBe(200);
      expect(serving(host), host.name).toBe("tiny");
    }
  }, 240_000);

  it("deploys a second commit to both hosts", () => {
    const v2 = project.commit("tiny v2", { greeting: "tiny v2" });
    const update = project.pm2Deploy();
    expect(update.status, update.output).toBe(0);
    timings["second update, 2 hosts"] = update.ms;
    for (const host of fleet.hosts) {
      expect(checkedOut(host), host.name).toBe(v2);
      expect(serving(host), host.name).toBe("tiny v2");
    }
  }, 240_000);

  it("stops at the first host whose deploy fails: it keeps serving the running version, the next host is untouched", () => {
    const [first, second] = fleet.hosts as [Host, Host];
    const before = checkedOut(second);
    const broken = project.commit("tiny v3 (build fails)", { greeting: "tiny v3", breakBuild: true });
    const update = project.pm2Deploy();
    expect(update.status).not.toBe(0);
    expect(update.output).toContain("post-deploy hook failed");
    expect(update.output).not.toContain(`on host ${second.address}`);
    // pm2-deploy has already reset the first host's checkout; its deploy script refused the build.
    expect(checkedOut(first)).toBe(broken);
    expect(serving(first)).toBe("tiny v2");
    expect(checkedOut(second)).toBe(before);
    expect(serving(second)).toBe("tiny v2");
  }, 240_000);

  it("stops with ssh's message when a host is unreachable, and changes nothing on the others", () => {
    const [first, second] = fleet.hosts as [Host, Host];
    fleet.stopSshd(first);
    const before = checkedOut(second);
    project.commit("tiny v4", { greeting: "tiny v4" });
    const update = project.pm2Deploy();
    expect(update.status).not.toBe(0);
    expect(update.output).toMatch(/Connection refused|Connection timed out/);
    expect(update.output).toContain(first.address);
    expect(checkedOut(second)).toBe(before);
    expect(serving(second)).toBe("tiny v2");
  }, 240_000);

  it("tears down without leaving a namespace, bridge, veth, process, mount, user, key or file behind", async () => {
    const { id } = fleet;
    expect(leftovers(id).length).toBeGreaterThan(0);
    await fleet.teardown();
    expect(leftovers(id)).toEqual([]);
  }, 60_000);
});
