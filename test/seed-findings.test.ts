// One test per finding of ../shared/seed/staging-deployment-review.md: each asserts, on generated
// output and where it matters by running the generated scripts (against a real PM2 with its own
// PM2_HOME), that the finding cannot happen. The scripts are a fixed library (deploygen-lib.sh,
// dg_* functions), the data of each environment (config-<env>.sh) and one short script per command.
import { describe, expect, it } from "vitest";
import { readFile, writeFile, rename } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { planFixture, generateFixtureCopy, generateIn, FIXTURES } from "./helpers/generate.js";
import { run, usePm2Home, startForeignServer, pm2Env, cleanEnv, pm2List, PM2_BIN } from "./e2e/harness.js";
import { tinyProject } from "./helpers/tiny-project.js";
import { parseManifestText } from "../src/manifest/load.js";
import { validateManifest } from "../src/manifest/validate.js";
import { ManifestError } from "../src/errors.js";

const require = createRequire(import.meta.url);

/** Code lines only: comments may name what the code never does. */
const codeLines = (content: string) =>
  content
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n");

/** The body of a bash function `name() { ... }` (up to its closing brace in column 0). */
function functionBody(script: string, name: string): string {
  const start = script.indexOf(`\n${name}() {\n`);
  if (start < 0) throw new Error(`no function ${name}`);
  return script.slice(start + 1, script.indexOf("\n}\n", start) + 3);
}

/** NUL-terminated KEY=VALUE records of `deploy-<env>.sh --print-values`, as [key, value] pairs. */
async function printValues(script: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<[string, string][]> {
  const result = await run("bash", [script, "--print-values"], { cwd: "/", env });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return result.stdout
    .split("\0")
    .slice(0, -1)
    .map((record) => [record.slice(0, record.indexOf("=")), record.slice(record.indexOf("=") + 1)]);
}

const fileOf = async (fixture: string, suffix: string) => {
  const plan = await planFixture(fixture);
  const file = plan.files.find((candidate) => candidate.path.endsWith(suffix));
  if (!file) throw new Error(`${fixture} generates no ${suffix}`);
  return file.content;
};

function rejects(yaml: string): string {
  try {
    validateManifest(parseManifestText(yaml, "deploygen.yaml"));
  } catch (error) {
    if (error instanceof ManifestError) return error.message;
    throw error;
  }
  throw new Error("manifest was accepted");
}

const CODEFRAME_YAML = readFileSync(path.join(FIXTURES, "codeframe", "deploygen.yaml"), "utf8");

describe("seed finding 1: service names match everywhere", () => {
  it("PM2 apps are P-E-app in namespace P-E, and scripts and unit use exactly those names", async () => {
    const { outputDir } = await generateFixtureCopy("codeframe");
    const config = require(path.join(outputDir, "ecosystem.staging.config.js")) as { apps: { name: string; namespace: string }[] };
    expect(config.apps.map((app) => [app.name, app.namespace])).toEqual([
      ["codeframe-staging-backend", "codeframe-staging"],
      ["codeframe-staging-frontend", "codeframe-staging"],
    ]);
    // The scripts' names are data in config-staging.sh, resolved once; bash reads them back exactly.
    const data = await readFile(path.join(outputDir, "scripts/config-staging.sh"), "utf8");
    const namesInData = [...data.matchAll(/'(codeframe-staging-[a-z-]+)'/g)].map((match) => match[1]);
    expect(new Set(namesInData)).toEqual(new Set(["codeframe-staging-backend", "codeframe-staging-frontend"]));
    expect(data).toContain("DG_NAMESPACE='codeframe-staging'");
    const values = await printValues(path.join(outputDir, "scripts/deploy-staging.sh"));
    expect(values.filter(([key]) => key === "namespace" || key === "app")).toEqual([
      ["namespace", "codeframe-staging"],
      ["app", "codeframe-staging-backend"],
      ["app", "codeframe-staging-frontend"],
    ]);
    // The library holds no project's name: it addresses PM2 only through that data.
    const library = await readFile(path.join(outputDir, "scripts/deploygen-lib.sh"), "utf8");
    expect(codeLines(library)).not.toContain("codeframe");
    expect(existsSync(path.join(outputDir, "systemd/codeframe-staging@.service"))).toBe(true);
  });
});

describe("seed finding 2: dependencies are installed on every deploy", () => {
  it("the manifest's install, build and verify commands are functions of config-E.sh, run in each app's folder", async () => {
    const data = await fileOf("codeframe", "scripts/config-staging.sh");
    expect(data).toContain("DG_CWD[backend]='.'");
    expect(data).toContain("DG_CWD[frontend]='web-ui'");
    expect(functionBody(data, "dg_install_backend")).toBe("dg_install_backend() {\n  uv sync --frozen\n}\n");
    expect(functionBody(data, "dg_install_frontend")).toBe("dg_install_frontend() {\n  npm ci\n}\n");
    expect(functionBody(data, "dg_build_frontend")).toBe("dg_build_frontend() {\n  npm run build\n}\n");
    expect(functionBody(data, "dg_verify_backend")).toBe("dg_verify_backend() {\n  .venv/bin/python -c 'import codeframe'\n}\n");
    // dg_deploy: install, then build, then verify for every app, and only then start or reload.
    const deploy = functionBody(await fileOf("codeframe", "scripts/deploygen-lib.sh"), "dg_deploy");
    const order = ['dg_step install "$app"', 'dg_step build "$app"', 'dg_verify "$app"', "dg_apply "].map((step) => deploy.indexOf(step));
    expect(order.every((index) => index > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it("a real deploy installs, builds and verifies in the app's folder before PM2 starts it, and the app answers", async () => {
    const project = await tinyProject();
    const pm2 = await usePm2Home();
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env, timeoutMs: 120_000 });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const steps = ["==> Install", "install web (in app)", "==> Build", "build web (in app)", "==> Verify", "verify web", "==> Start or reload namespace tiny-staging", "tiny-staging-web answers"];
    const at = steps.map((step) => result.stdout.indexOf(step));
    expect(at.every((index) => index >= 0), result.stdout).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    // The build ran in app/ (cp src/server.js dist/server.js) and its record is kept for the next deploy.
    expect(existsSync(path.join(project.root, "app", "dist", "server.js"))).toBe(true);
    expect(existsSync(path.join(project.root, ".deploygen", "staging", "steps", "web.build"))).toBe(true);
    const health = await fetch(`http://127.0.0.1:${project.port}/health`);
    expect(health.status).toBe(200);
  }, 180_000);
});

describe("seed finding 3: no hard-coded absolute paths", () => {
  it("generating from two different folders gives byte-identical files with no machine path", async () => {
    const first = await generateFixtureCopy("codeframe", "dg-one-");
    const second = await generateFixtureCopy("codeframe", "dg-two-other-");
    for (const file of first.plan.files) {
      const a = await readFile(path.join(first.outputDir, file.path));
      const b = await readFile(path.join(second.outputDir, file.path));
      expect(a.equals(b), file.path).toBe(true);
      expect(a.toString(), file.path).not.toContain(first.root);
      expect(a.toString(), file.path).not.toContain(second.root);
      // The fixed library names system paths (/etc/systemd/system, /tmp for PrivateTmp); no other
      // file names any absolute path of a machine.
      if (file.path !== "scripts/deploygen-lib.sh") expect(a.toString(), file.path).not.toMatch(/\/(home|root|tmp|work|Users|srv|opt)\//);
    }
  });

  it("the scripts find the root from their own location, from any working directory, and CODEFRAME_ROOT overrides it", async () => {
    const { root, outputDir } = await generateFixtureCopy("codeframe");
    const script = path.join(outputDir, "scripts/deploy-staging.sh");
    const rootOf = (values: [string, string][]) => values.find(([key]) => key === "root")?.[1];
    expect(rootOf(await printValues(script))).toBe(root);
    const moved = `${root}-moved`;
    await rename(root, moved);
    expect(rootOf(await printValues(path.join(moved, "deploy/scripts/deploy-staging.sh")))).toBe(moved);
    const values = await printValues(path.join(moved, "deploy/scripts/deploy-staging.sh"), cleanEnv({ CODEFRAME_ROOT: "/srv/codeframe" }));
    expect(rootOf(values)).toBe("/srv/codeframe");
    expect(values.find(([key]) => key === "cwd")?.[1]).toBe("/srv/codeframe/.");
  });

  it("the ecosystem file follows the folder it is loaded from, and CODEFRAME_ROOT overrides it", async () => {
    const { root, outputDir } = await generateFixtureCopy("codeframe");
    const file = path.join(outputDir, "ecosystem.staging.config.js");
    const load = (env: Record<string, string> = {}) =>
      run(process.execPath, ["-e", `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).apps.map(a => a.cwd)))`], { cwd: "/", env: cleanEnv(env) });
    expect(JSON.parse((await load()).stdout)).toEqual([root, path.join(root, "web-ui")]);
    expect(JSON.parse((await load({ CODEFRAME_ROOT: "/srv/codeframe" })).stdout)).toEqual(["/srv/codeframe", "/srv/codeframe/web-ui"]);
  });
});

describe("the ecosystem file in an ES-module project", () => {
  it("loads in node even where the project's package.json says type: module", async () => {
    const { root, outputDir } = await generateFixtureCopy("codeframe");
    await writeFile(path.join(root, "package.json"), '{ "type": "module" }\n');
    const file = path.join(outputDir, "ecosystem.staging.config.js");
    const result = await run(process.execPath, ["-e", `process.stdout.write(String(require(${JSON.stringify(file)}).apps.length))`], { cwd: root, env: cleanEnv() });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("2");
  });
});

describe("seed finding 4: the environment is validated before anything starts", () => {
  it("a missing env file stops the deploy with the fix, before PM2 is touched", async () => {
    const project = await tinyProject({ envFile: null });
    const pm2 = await usePm2Home();
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
    expect(result.code).toBe(1);
    // The env file is read by the Node helper (util.parseEnv), whose diagnostics the script prints.
    expect(result.stderr).toContain(`error: ${project.root}/.env.staging is missing\n`);
    expect(result.stderr).toContain(`fix: create it from its example (cp ${project.root}/.env.staging.example ${project.root}/.env.staging), set its values, then chmod 600 ${project.root}/.env.staging\n`);
    expect(result.stdout).not.toContain("==> Install");
    expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
  });

  it("an empty required key, or one still equal to the example's value, is refused", async () => {
    for (const [content, expected] of [
      ["TINY_API_KEY=\n", "TINY_API_KEY is empty"],
      ["OTHER=1\n", "TINY_API_KEY is not set"],
      ["TINY_API_KEY=replace-me\n", "TINY_API_KEY still has the example's placeholder value from "],
    ] as const) {
      const project = await tinyProject({ envFile: content });
      const pm2 = await usePm2Home();
      const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`error: ${project.root}/.env.staging: ${expected}`);
      expect(result.stderr).toContain(`fix: set TINY_API_KEY=<the real value> in ${project.root}/.env.staging\n`);
      expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
    }
  });

  it("a port held by a foreign process is named, with the fix", async () => {
    const project = await tinyProject();
    const foreign = await startForeignServer(project.port);
    try {
      const pm2 = await usePm2Home();
      const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`error: port ${project.port} (for web) is already in use by PID ${foreign.pid} (`);
      expect(result.stderr).toContain("fix: stop that process, or give web another port in the manifest and regenerate");
      expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
    } finally {
      await foreign.stop();
    }
  });
});

describe("seed finding 5: Next.js never runs its dev server outside development", () => {
  it("a nextjs app runs next start with host and port", async () => {
    const { outputDir } = await generateFixtureCopy("codeframe");
    const config = require(path.join(outputDir, "ecosystem.staging.config.js")) as { apps: { name: string; script: string; args: string[] }[] };
    const frontend = config.apps.find((app) => app.name.endsWith("-frontend"));
    expect(frontend?.script).toBe("node_modules/.bin/next");
    expect(frontend?.args).toEqual(["start", "-H", "127.0.0.1", "-p", "14100"]);
  });

  it("next dev in a staging environment is rejected with a pointer to the line", () => {
    const yaml = CODEFRAME_YAML.replace("runtime: nextjs ", "runtime: node   ").replace("cwd: web-ui ", "cwd: web-ui\n    script: node_modules/.bin/next\n    args: [dev, -p, \"{port}\"]\n    #");
    const message = rejects(yaml);
    expect(message).toMatch(/deploygen\.yaml:\d+:\d+: apps\.frontend\.args: app frontend runs next dev in environment (production|staging)/);
    expect(message).toContain("Fix: use runtime: nextjs");
  });
});

describe("seed finding 6: NODE_ENV is standard", () => {
  it("a nextjs app gets NODE_ENV=production and the deployment name goes in a project variable", async () => {
    const { outputDir } = await generateFixtureCopy("codeframe");
    const config = require(path.join(outputDir, "ecosystem.staging.config.js")) as { apps: { env: Record<string, string> }[] };
    expect(config.apps[1]?.env.NODE_ENV).toBe("production");
    expect(config.apps[1]?.env.CODEFRAME_ENV).toBe("staging");
  });

  it("NODE_ENV: staging is rejected, suggesting CODEFRAME_ENV", () => {
    const message = rejects(CODEFRAME_YAML.replace("env: { CODEFRAME_ENV: staging }", "env: { NODE_ENV: staging }"));
    expect(message).toMatch(/deploygen\.yaml:\d+:\d+: environments\.staging\.env\.NODE_ENV: /);
    expect(message).toContain("CODEFRAME_ENV");
  });
});

describe("seed finding 7: build artifacts are verified before anything restarts", () => {
  it("a missing artifact fails the deploy before PM2 is started", async () => {
    const project = await tinyProject();
    const manifest = path.join(project.root, "deploygen.yaml");
    await writeFile(manifest, (await readFile(manifest, "utf8")).replace('"cp src/server.js dist/server.js"', '"true"'));
    await generateIn(project.root);
    const pm2 = await usePm2Home();
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("web: app/dist/server.js is missing after install and build; nothing was restarted");
    expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
  });

  it("nextjs apps verify .next/BUILD_ID; verify commands run in the app's folder, and a failing one stops the deploy before PM2", async () => {
    const data = await fileOf("codeframe", "scripts/config-staging.sh");
    expect(data).toContain("DG_VERIFY_FILES[frontend]='.next/BUILD_ID'");
    expect(data).toContain("dg_verify_backend() {\n  .venv/bin/python -c 'import codeframe'\n}");
    const project = await tinyProject();
    const manifest = path.join(project.root, "deploygen.yaml");
    const verified = path.join(project.root, "verify-ran-in");
    await writeFile(manifest, (await readFile(manifest, "utf8")).replace('"node --check dist/server.js"', `"node --check dist/server.js", "pwd > ${verified}", "false"`));
    await generateIn(project.root);
    const pm2 = await usePm2Home();
    const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
    expect(result.code).toBe(1);
    expect(await readFile(verified, "utf8")).toBe(`${path.join(project.root, "app")}\n`);
    expect(result.stderr).toContain("error: verify web failed (exit 1); nothing was restarted: the running version keeps serving\n");
    expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
  });
});

describe("seed finding 8: the logs folder exists before PM2 starts", () => {
  it("deploy and start create it before starting; the ecosystem writes logs under <root>/logs", async () => {
    const library = await fileOf("codeframe", "scripts/deploygen-lib.sh");
    expect(functionBody(library, "dg_setup")).toContain("DG_LOGS=$ROOT/logs");
    // Every start or reload goes through dg_apply, which makes the folder first.
    const apply = functionBody(library, "dg_apply");
    expect(apply.indexOf('mkdir -p -- "$DG_LOGS"')).toBeGreaterThan(0);
    expect(apply.indexOf('mkdir -p -- "$DG_LOGS"')).toBeLessThan(apply.indexOf("startOrReload"));
    for (const command of ["dg_deploy", "dg_start"]) expect(functionBody(library, command)).toContain('dg_apply "$(dg_ecosystem)"');
    expect(codeLines(library).match(/\bdg_pm2 startOrReload\b/g)).toHaveLength(1);
    const { root, outputDir } = await generateFixtureCopy("codeframe");
    const config = require(path.join(outputDir, "ecosystem.production.config.js")) as { apps: { out_file: string; error_file: string }[] };
    for (const app of config.apps) {
      expect(path.dirname(app.out_file)).toBe(path.join(root, "logs"));
      expect(path.dirname(app.error_file)).toBe(path.join(root, "logs"));
    }
  });
});

describe("seed finding 9: env file values reach the apps without PM2's env_file or sourcing", () => {
  it("the ecosystem reads the env file itself with Node built-ins, from any folder, with or without the file", async () => {
    const { root, outputDir } = await generateFixtureCopy("codeframe");
    const file = path.join(outputDir, "ecosystem.staging.config.js");
    const source = await readFile(file, "utf8");
    expect(source).not.toMatch(/require\((?!'node:)/);
    expect(source).not.toMatch(/\benv_file\s*:/);
    const read = async () =>
      JSON.parse((await run(process.execPath, ["-e", `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).apps[0].env))`], { cwd: "/", env: cleanEnv() })).stdout) as Record<string, string>;
    expect((await read()).ANTHROPIC_API_KEY).toBeUndefined();
    await writeFile(path.join(root, ".env.staging"), 'export ANTHROPIC_API_KEY="sk-ant #1"\nOTHER=a=b\n');
    const env = await read();
    expect(env.ANTHROPIC_API_KEY).toBe("sk-ant #1");
    expect(env.OTHER).toBe("a=b");
    expect(env.CODEFRAME_ENV).toBe("staging");
    expect(env.PORT).toBe("14200");
  });

  it("no generated script sources or evaluates an env file: the Node helper reads it with util.parseEnv", async () => {
    const plan = await planFixture("codeframe");
    const scripts = plan.files.filter((candidate) => candidate.path.endsWith(".sh"));
    expect(scripts.length).toBeGreaterThan(10);
    for (const file of scripts) {
      // What the scripts source: the library, and an environment's config (data generated by deploygen).
      for (const [, sourced] of codeLines(file.content).matchAll(/^\s*(?:source|\.)\s+(.*)$/gm)) expect(sourced, file.path).toMatch(/deploygen-lib\.sh"$|deploygen-fleet\.sh"$|'config-[a-z0-9-]+\.sh'$/);
      expect(codeLines(file.content), file.path).not.toMatch(/\beval\b|set -a/);
    }
    const helper = plan.files.find((candidate) => candidate.path === "scripts/deploygen-helper.cjs")!.content;
    expect(helper).toContain("const { parseEnv } = require('node:util');");
    // It runs no shell and evaluates nothing: one function runs programs (`pm2 jlist`, `git ls-files`) without a shell.
    expect(helper).not.toMatch(/\bexec(Sync)?\(|\bspawn(Sync)?\(|shell:\s*true|\beval\(|new Function/);
    expect([...helper.matchAll(/execFileSync\(/g)]).toHaveLength(1);
  });
});

describe("seed finding 10: the systemd unit type fits PM2", () => {
  it("Type=oneshot with RemainAfterExit=yes, calling the generated scripts", async () => {
    const unit = await fileOf("codeframe", "systemd/codeframe-staging@.service");
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^RemainAfterExit=yes$/m);
    expect(unit).not.toMatch(/Type=forking/);
    expect(unit).toMatch(/^ExecStart=:?\/bin\/bash "%f\/deploy\/scripts\/start-staging\.sh" --direct$/m);
    expect(unit).toMatch(/^ExecStop=:?\/bin\/bash "%f\/deploy\/scripts\/stop-staging\.sh" --direct$/m);
    expect(unit).toMatch(/^User=codeframe$/m);
  });
});

describe("seed finding 11: graceful shutdown", () => {
  it("apps have kill_timeout and listen_timeout; the unit waits longer than all grace periods", async () => {
    const { outputDir } = await generateFixtureCopy("codeframe");
    const config = require(path.join(outputDir, "ecosystem.staging.config.js")) as { apps: { kill_timeout: number; listen_timeout: number }[] };
    for (const app of config.apps) {
      expect(app.kill_timeout).toBe(10_000);
      expect(app.listen_timeout).toBe(60_000);
    }
    const unit = await readFile(path.join(outputDir, "systemd/codeframe-staging@.service"), "utf8");
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThan(20);
    expect(Number(/^TimeoutStartSec=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThan(120);
  });

  it("stop touches only this namespace and never `pm2 ... all`", async () => {
    const plan = await planFixture("codeframe");
    for (const file of plan.files.filter((candidate) => candidate.path.endsWith(".sh"))) expect(codeLines(file.content), file.path).not.toMatch(/pm2[^\n]*\ball\b/);
    expect(await fileOf("codeframe", "scripts/stop-staging.sh")).toMatch(/\ndg_stop "\$@"\n$/);
    // dg_stop stops, one by one, the processes of this namespace that are not stopped yet.
    const library = await fileOf("codeframe", "scripts/deploygen-lib.sh");
    const stop = functionBody(library, "dg_stop");
    expect(stop).toContain('dg_pm2 stop "$name"');
    expect(stop).toContain(`done < <(dg_processes_of ns "$DG_NAMESPACE" | awk -F '\\t' '$3 != "stopped" { print $1 }' | sort -u)`);
    expect(library.split("\n").find((line) => line.startsWith("dg_processes_of() {"))).toContain('($2 == ns || ns == "")');
  });

  it("a real stop leaves another namespace's app of the same PM2 daemon running", async () => {
    const project = await tinyProject();
    const pm2 = await usePm2Home();
    const deployed = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env, timeoutMs: 120_000 });
    expect(deployed.code, deployed.stderr).toBe(0);
    const other = path.join(project.root, "other.js");
    await writeFile(other, "setInterval(() => {}, 1000);\n");
    const started = await run(PM2_BIN, ["start", other, "--name", "other-app", "--namespace", "other"], { env: pm2.env });
    expect(started.code, started.stderr).toBe(0);
    const stopped = await run("bash", [project.script("stop-staging.sh")], { env: pm2.env, timeoutMs: 60_000 });
    expect(stopped.stderr, stopped.stdout).toBe("");
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain("ok stopped tiny-staging-web");
    const status = Object.fromEntries((await pm2List(pm2.env)).map((processInfo) => [processInfo.name, processInfo.status]));
    expect(status).toEqual({ "tiny-staging-web": "stopped", "other-app": "online" });
  }, 180_000);
});

describe("seed finding 12: readiness is polled, never slept", () => {
  it("no script sleeps a second or more, or an amount it computes; waiting is a poll loop with a deadline", async () => {
    const plan = await planFixture("codeframe");
    let sleeps = 0;
    for (const file of plan.files.filter((candidate) => candidate.path.endsWith(".sh"))) {
      // Every sleep is a literal fraction of a second: a poll interval, never a guess at readiness.
      for (const [, seconds] of codeLines(file.content).matchAll(/\bsleep\s+([^\s;)]+)/g)) {
        expect(seconds, file.path).toMatch(/^0?\.\d+$/);
        sleeps += 1;
      }
    }
    expect(sleeps).toBeGreaterThan(0);
    // dg_watch polls every 0.25 s: each app's health URL, until the app's own health timeout.
    const watch = functionBody(plan.files.find((file) => file.path === "scripts/deploygen-lib.sh")!.content, "dg_watch");
    expect(watch).toMatch(/dg_probe "\$\{DG_HEALTH_URL\[\$app\]\}"[\s\S]*elapsed >= \$\{DG_HEALTH_TIMEOUT\[\$app\]\} \* 1000[\s\S]*sleep 0\.25/);
  });
});

describe("seed finding 13 (the colour typo): colour codes are right, and off without a terminal or with NO_COLOR", () => {
  it("the library's codes are well-formed ANSI sequences", async () => {
    const library = await fileOf("codeframe", "scripts/deploygen-lib.sh");
    const codes = [...library.matchAll(/\$'\\033\[([^']*)'/g)].map((match) => match[1]);
    expect(codes.length).toBeGreaterThanOrEqual(6);
    for (const code of codes) expect(code).toMatch(/^(0;3[0-7]|1|0)m$/);
  });

  it("a script prints escapes on a terminal, and none when piped or with NO_COLOR", async () => {
    const project = await tinyProject({ envFile: null });
    const env = pm2Env("/nonexistent-pm2-home");
    const piped = await run("bash", [project.script("deploy-staging.sh")], { env });
    expect(piped.stdout + piped.stderr).not.toContain("\u001b[");
    const tty = await run("script", ["-qec", `bash ${project.script("deploy-staging.sh")}`, "/dev/null"], { env: { ...env, NO_COLOR: undefined, TERM: "xterm" } as NodeJS.ProcessEnv });
    expect(tty.stdout).toContain("\u001b[0;31merror:");
    const noColor = await run("script", ["-qec", `bash ${project.script("deploy-staging.sh")}`, "/dev/null"], { env: { ...env, NO_COLOR: "1", TERM: "xterm" } });
    expect(noColor.stdout).not.toContain("\u001b[");
  });
});
