// Seed findings checked by real deploys of the tiny project under a PM2 daemon of their own
// (the findings' checks on generated text are in seed-findings.test.ts).
import { describe, expect, it } from "vitest";
import { readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { generateIn } from "./helpers/generate.js";
import { tinyProject } from "./helpers/tiny-project.js";
import { run, usePm2Home, killPm2, pm2List } from "./e2e/harness.js";

describe("seed finding 8: the logs folder exists before PM2 starts", () => {
  it("a real deploy on a fresh tree creates logs/ and the app writes there", async () => {
    const project = await tinyProject();
    const pm2 = await usePm2Home();
    expect(existsSync(path.join(project.root, "logs"))).toBe(false);
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(path.join(project.root, "logs", "tiny-staging-web.out.log"))).toBe(true);
    const processes = await pm2List(pm2.env);
    expect(processes.map((process) => [process.name, process.namespace, process.status])).toEqual([["tiny-staging-web", "tiny-staging", "online"]]);
  });
});

describe("seed finding 9: env file values reach the apps without PM2's env_file or sourcing", () => {
  it("a running app sees the env file's keys (a real deploy)", async () => {
    const project = await tinyProject({ envFile: "TINY_API_KEY=from-env-file\nEXTRA_SETTING=1\n" });
    const pm2 = await usePm2Home();
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
    expect(result.code, result.stderr).toBe(0);
    const response = await fetch(`http://127.0.0.1:${project.port}/env`);
    const body = (await response.json()) as { names: string[]; tinyEnv: string };
    expect(body.names).toEqual(expect.arrayContaining(["TINY_API_KEY", "EXTRA_SETTING", "PORT", "HOST", "TINY_ENV"]));
    expect(body.tinyEnv).toBe("staging");
  });
});

describe("seed finding 12: readiness is polled, never slept", () => {
  it("deploy waits for a slow-starting app until it answers, and fails after the timeout when it never does", async () => {
    const project = await tinyProject();
    const pm2 = await usePm2Home();
    const slow = await run("bash", [project.script("deploy-staging.sh")], { env: { ...pm2.env, READY_DELAY_MS: "1500" } });
    expect(slow.code, slow.stderr).toBe(0);
    // The app answers 1.5 s after it starts; the deploy kept probing until it did. How long it sleeps
    // between probes is pinned on the script text (seed-findings.test.ts), how soon it returns is
    // measured by `npm run bench -- --deploy`.
    expect(slow.stdout).toMatch(/ok tiny-staging-web answers http:\/\/127\.0\.0\.1:\d+\/health/);
    await killPm2(pm2.home);
    const manifest = path.join(project.root, "deploygen.yaml");
    await writeFile(manifest, (await readFile(manifest, "utf8")).replace("timeoutSeconds: 20", "timeoutSeconds: 2"));
    await generateIn(project.root);
    const never = await run("bash", [project.script("start-staging.sh")], { env: { ...pm2.env, READY_DELAY_MS: "60000" } });
    expect(never.code).toBe(1);
    expect(never.stderr).toContain("did not answer");
    expect(never.stderr).toContain("within 2s");
  });
});
