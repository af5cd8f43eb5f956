// One test per finding of ../shared/seed/staging-deployment-review.md: each asserts, on generated
// output (and where it matters by running it), that the finding cannot happen. The checks that
// need a real deploy under PM2 are in seed-findings.e2e.test.ts.
import { describe, expect, it } from "vitest";
import { readFile, writeFile, rm } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { planFixture, generateFixtureCopy, generateIn, FIXTURES } from "./helpers/generate.js";
import { run, usePm2Home, startForeignServer, pm2Env, cleanEnv } from "./e2e/harness.js";
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
    const deploy = await readFile(path.join(outputDir, "scripts/deploy-staging.sh"), "utf8");
    const namesInScript = [...deploy.matchAll(/'(codeframe-staging-[a-z-]+)'/g)].map((match) => match[1]);
    expect(new Set(namesInScript)).toEqual(new Set(["codeframe-staging-backend", "codeframe-staging-frontend"]));
    expect(deploy).toContain("NAMESPACE='codeframe-staging'");
    expect(existsSync(path.join(outputDir, "systemd/codeframe-staging@.service"))).toBe(true);
  });
});

describe("seed finding 2: dependencies are installed on every deploy", () => {
  it("deploy runs each app's install commands, then build, then verify, before starting anything", async () => {
    const deploy = await fileOf("codeframe", "scripts/deploy-staging.sh");
    const main = deploy.slice(deploy.indexOf("main() {"));
    const order = ["install_backend", "install_frontend", "build_frontend", "verify_backend", "startOrReload"].map((step) => main.indexOf(step));
    expect(order.every((index) => index > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(deploy).toMatch(/install_backend\(\) \{\n {2}cd -- "\$ROOT"\/'\.'\n {2}uv sync --frozen\n\}/);
    expect(deploy).toMatch(/install_frontend\(\) \{\n {2}cd -- "\$ROOT"\/'web-ui'\n {2}npm ci\n\}/);
  });
});

describe("seed finding 3: no hard-coded absolute paths", () => {
  it("generating from two different folders gives byte-identical files with no machine path", async () => {
    const first = await generateFixtureCopy("codeframe", "dg-one-");
    const second = await generateFixtureCopy("codeframe", "dg-two-other-");
    for (const file of first.plan.files) {
      const a = await readFile(path.join(first.outputDir, file.path));
      const b = await readFile(path.join(second.outputDir, file.path));
      expect(a.equals(b), file.path).toBe(true);
      expect(a.toString()).not.toMatch(/\/(home|root|tmp|work|Users)\//);
    }
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
    expect(result.stderr).toContain(".env.staging is missing");
    expect(result.stderr).toMatch(/fix: create it from the example: cp .*\.env\.staging\.example/);
    expect(existsSync(path.join(pm2.home, "pm2.pid"))).toBe(false);
  });

  it("an empty required key, or one still equal to the example's value, is refused", async () => {
    for (const [content, expected] of [
      ["TINY_API_KEY=\n", "required key(s) not set in"],
      ["TINY_API_KEY=replace-me\n", "still have the example's placeholder value: TINY_API_KEY"],
    ] as const) {
      const project = await tinyProject({ envFile: content });
      const pm2 = await usePm2Home();
      const result = await run("bash", [project.script("deploy-staging.sh")], { env: pm2.env });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(expected);
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
      expect(result.stderr).toContain(`port ${project.port} (for tiny-staging-web) is already in use by PID ${foreign.pid}`);
      expect(result.stderr).toContain("fix: stop that process, or give tiny-staging-web another port");
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

  it("nextjs apps verify .next/BUILD_ID; verify commands run in the app's folder", async () => {
    const deploy = await fileOf("codeframe", "scripts/deploy-staging.sh");
    expect(deploy).toContain(`[[ -e "$ROOT"/'web-ui/.next/BUILD_ID' ]]`);
    expect(deploy).toContain("verify_backend() {\n  cd -- \"$ROOT\"/'.'\n  .venv/bin/python -c 'import codeframe'\n}");
  });
});

describe("seed finding 8: the logs folder exists before PM2 starts", () => {
  it("deploy and start create it before starting; the ecosystem writes logs under <root>/logs", async () => {
    for (const script of ["scripts/deploy-staging.sh", "scripts/start-staging.sh"]) {
      const content = await fileOf("codeframe", script);
      const main = content.slice(content.indexOf("main() {"));
      expect(main.indexOf('mkdir -p -- "$ROOT/logs"')).toBeGreaterThan(0);
      expect(main.indexOf('mkdir -p -- "$ROOT/logs"')).toBeLessThan(main.indexOf("startOrReload"));
    }
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

  it("no generated script sources or evaluates an env file", async () => {
    const plan = await planFixture("codeframe");
    for (const file of plan.files.filter((candidate) => candidate.path.endsWith(".sh"))) {
      expect(codeLines(file.content), file.path).not.toMatch(/^\s*(source|\.)\s+[^\n]*env/m);
      expect(codeLines(file.content), file.path).not.toMatch(/\beval\b|set -a/);
    }
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
    const stop = await fileOf("codeframe", "scripts/stop-staging.sh");
    expect(stop).toContain('dg_pm2 stop "$name"');
    expect(stop).toContain('$2 == ns && $3 != "stopped"');
  });
});

describe("seed finding 12: readiness is polled, never slept", () => {
  it("no script sleeps a second or more, or an amount it computes; waiting is a poll loop with a deadline", async () => {
    const plan = await planFixture("codeframe");
    for (const file of plan.files.filter((candidate) => candidate.path.endsWith(".sh"))) {
      // Every sleep is a literal fraction of a second: a poll interval, never a guess at readiness.
      for (const [, seconds] of codeLines(file.content).matchAll(/\bsleep\s+(\S+)/g)) expect(seconds, file.path).toMatch(/^0?\.\d+$/);
    }
    const library = plan.files.find((file) => file.path === "scripts/deploygen-lib.sh")?.content ?? "";
    expect(library).toMatch(/until dg_probe "\$url"; do[\s\S]*SECONDS >= deadline[\s\S]*sleep 0\.25/);
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
