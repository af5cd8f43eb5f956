// deploygen import: existing PM2 ecosystem files and Procfiles become manifests that validate and
// generate, every defect fixed on the way named in the output; JavaScript runs in a child process.
import { describe, expect, it } from "vitest";
import { readFile, writeFile, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { parse as parseYaml } from "yaml";
import { runCli } from "./helpers/cli.js";
import { FIXTURES } from "./helpers/generate.js";
import { scratchDir } from "./helpers/scratch.js";

const SEED = path.join(FIXTURES, "import", "ecosystem.staging.config.js");
const PROCFILE = path.join(FIXTURES, "import", "Procfile");

async function dir(prefix = "deploygen-import-"): Promise<string> {
  return scratchDir(prefix);
}

/** Writes a source file into a fresh folder (CommonJS, as in most projects) and returns its path. */
async function source(name: string, text: string): Promise<string> {
  const folder = await dir();
  await writeFile(path.join(folder, "package.json"), '{ "type": "commonjs" }\n');
  await writeFile(path.join(folder, name), text);
  return path.join(folder, name);
}

/** The comment block at the top, as lines without "# ". */
function notes(manifest: string): string[] {
  return manifest
    .split("\n")
    .filter((line) => line.startsWith("# - "))
    .map((line) => line.slice(4));
}

/** Loads a generated ecosystem file the way PM2 would, with the project root set. */
function loadEcosystem(file: string, root: string): { apps: Record<string, unknown>[] } {
  const json = execFileSync(process.execPath, ["-e", "process.stdout.write(JSON.stringify(require(process.argv[1])))", file], {
    env: { ...process.env, CODEFRAME_ROOT: root },
    encoding: "utf8",
  });
  return JSON.parse(json) as { apps: Record<string, unknown>[] };
}

describe("deploygen import of the seed's staging ecosystem file", () => {
  it("writes the manifest locked in fixtures/import (review that file to see the result)", async () => {
    const cwd = await dir();
    const result = await runCli(["import", SEED], { cwd });
    expect(result.code).toBe(0);
    await expect(result.stdout).toMatchFileSnapshot("../fixtures/import/ecosystem.staging.deploygen.yaml");
    // The manifest goes to stdout, the summary to stderr, so `> deploygen.yaml` stays clean.
    expect(result.stderr).toMatch(/^imported 2 apps from .*ecosystem\.staging\.config\.js: 10 defects fixed, \d+ assumptions to check, 1 option not imported/);
  });

  it("names each defect of the review that the file had, one line each", async () => {
    const { stdout } = await runCli(["import", SEED], { cwd: await dir() });
    const fixed = stdout.slice(stdout.indexOf("# Fixed"), stdout.indexOf("# Assumed"));
    const lines = notes(fixed);
    const expected = [
      /^PM2 names codeframe-backend-staging -> codeframe-staging-backend, codeframe-frontend-staging -> codeframe-staging-frontend: /,
      /^hard-coded absolute paths under \/home\/frankbria\/projects\/codeframe \(backend cwd, backend script, backend env PYTHONPATH, backend env DATABASE_PATH, frontend cwd, env_file\): now relative/,
      /^backend, frontend: nothing installed dependencies/,
      /^backend: nothing checked the install before starting: deploy now verifies that \.venv\/bin\/python exists and imports codeframe\.ui\.server$/,
      /^backend, frontend: no kill_timeout/,
      /^backend, frontend: log files in a folder nothing created/,
      /^frontend ran `next dev` .*: now runtime nextjs/,
      /^frontend: nothing built the app before it started: deploy now runs npm run build and checks \.next\/BUILD_ID/,
      /^frontend: NODE_ENV "staging" is not a value Node\.js or Next\.js know .*: NODE_ENV is production and "staging" moved to CODEFRAME_ENV$/,
      /^env_file is not a PM2 option .*: it is now environments\.staging\.envFile/,
    ];
    expect(lines).toHaveLength(expected.length);
    expected.forEach((pattern, index) => expect(lines[index]).toMatch(pattern));
    expect(notes(stdout.slice(stdout.indexOf("# Not imported")))).toEqual(['frontend: max_memory_restart: "1G"']);
  });

  it("produces data without any of the file's defects", async () => {
    const { stdout } = await runCli(["import", SEED], { cwd: await dir() });
    const data = parseYaml(stdout) as {
      project: string;
      apps: Record<string, { runtime: string; cwd: string; script?: string; args?: string[]; port?: number; env?: Record<string, string> }>;
      environments: Record<string, { envFile?: string; env?: Record<string, string> }>;
    };
    expect(JSON.stringify(data)).not.toContain("/home/");
    expect(data.project).toBe("codeframe");
    expect(Object.keys(data.apps)).toEqual(["backend", "frontend"]);
    expect(data.apps.backend).toMatchObject({ runtime: "python", cwd: ".", script: ".venv/bin/python", port: 14200, env: { PYTHONPATH: "." } });
    expect(data.apps.backend!.args).toEqual(["-m", "uvicorn", "codeframe.ui.server:app", "--host", "0.0.0.0", "--port", "{port}"]);
    expect(data.apps.frontend).toMatchObject({ runtime: "nextjs", cwd: "web-ui", port: 14100, host: "0.0.0.0" });
    expect(data.apps.frontend!.args).toBeUndefined();
    expect(data.apps.frontend!.env?.NODE_ENV).toBeUndefined();
    expect(data.environments).toEqual({ staging: { envFile: ".env.staging", env: { CODEFRAME_ENV: "staging" } } });
  });

  it("end to end: import -o, validate, generate, check; the generated ecosystem runs next start in production", async () => {
    const root = await dir("deploygen-import-e2e-");
    const imported = await runCli(["import", SEED, "-o", "deploygen.yaml"], { cwd: root });
    expect(imported.code).toBe(0);
    expect(imported.stdout).toMatch(/^written deploygen\.yaml\nimported 2 apps .*\nnext: deploygen validate && deploygen generate\n$/);
    expect(await runCli(["validate"], { cwd: root })).toMatchObject({ code: 0, stdout: "valid deploygen.yaml: 2 apps, 1 environment\n" });
    expect((await runCli(["generate", "-q"], { cwd: root })).code).toBe(0);
    expect((await runCli(["check", "-q"], { cwd: root })).code).toBe(0);

    const deploy = path.join(root, "deploy");
    for (const file of await readdir(deploy, { recursive: true })) {
      const full = path.join(deploy, file);
      if (!existsSync(full) || !/\.(js|sh|service|timer)$/.test(file)) continue;
      const text = await readFile(full, "utf8");
      expect(text, file).not.toContain("/home/frankbria");
      const code = text.split("\n").filter((line) => !/^\s*(#|\/\/)/.test(line)).join("\n");
      expect(code, file).not.toMatch(/\bpm2 (stop|delete|restart) all\b/);
    }
    const host = "/srv/codeframe";
    const { apps } = loadEcosystem(path.join(deploy, "ecosystem.staging.config.js"), host);
    expect(apps.map((app) => app.name)).toEqual(["codeframe-staging-backend", "codeframe-staging-frontend"]);
    const frontend = apps[1]!;
    expect(frontend).toMatchObject({ namespace: "codeframe-staging", cwd: `${host}/web-ui`, script: "node_modules/.bin/next", args: ["start", "-H", "0.0.0.0", "-p", "14100"] });
    expect(frontend.env).toMatchObject({ NODE_ENV: "production", CODEFRAME_ENV: "staging", PORT: "14100" });
    expect(frontend.kill_timeout).toBe(10_000);
    const backend = apps[0]!;
    expect(backend).toMatchObject({ cwd: host, script: ".venv/bin/python", interpreter: "none", out_file: `${host}/logs/codeframe-staging-backend.out.log` });
    expect(backend.args).toEqual(["-m", "uvicorn", "codeframe.ui.server:app", "--host", "0.0.0.0", "--port", "14200"]);
    const deployScript = await readFile(path.join(deploy, "scripts", "deploy-staging.sh"), "utf8");
    expect(deployScript).toContain("uv sync --frozen");
    expect(deployScript).toContain("npm run build");
    expect(deployScript).toContain(".venv/bin/python -c 'import codeframe.ui.server'");
  });

  it("refuses to replace an existing -o file unless --force", async () => {
    const root = await dir();
    await writeFile(path.join(root, "deploygen.yaml"), "mine\n");
    const refused = await runCli(["import", SEED, "-o", "deploygen.yaml"], { cwd: root });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("error deploygen.yaml already exists; import does not overwrite it\nfix: choose another file with -o FILE, or pass --force to replace it\n");
    expect(await readFile(path.join(root, "deploygen.yaml"), "utf8")).toBe("mine\n");
    expect((await runCli(["import", SEED, "-o", "deploygen.yaml", "--force", "-q"], { cwd: root })).code).toBe(0);
    expect(await readFile(path.join(root, "deploygen.yaml"), "utf8")).toContain("project: codeframe");
  });
});

describe("deploygen import of a Procfile", () => {
  it("maps web, worker and node processes, gives $PORT a port, and reports the release command", async () => {
    const root = await dir();
    const result = await runCli(["import", PROCFILE, "-o", "deploygen.yaml", "--project", "shop"], { cwd: root });
    expect(result.code).toBe(0);
    const text = await readFile(path.join(root, "deploygen.yaml"), "utf8");
    const data = parseYaml(text) as { apps: Record<string, { runtime: string; script?: string; args?: string[]; port?: number }>; environments: Record<string, unknown> };
    expect(data.apps.web).toMatchObject({ runtime: "python", script: ".venv/bin/python", port: 3000 });
    expect(data.apps.web!.args).toEqual(["-m", "gunicorn", "shop.wsgi:application", "--bind", "0.0.0.0:{port}", "--workers", "3"]);
    expect(data.apps.worker).toMatchObject({ runtime: "python", args: ["-m", "celery", "-A", "shop", "worker", "--loglevel=info"] });
    expect(data.apps.worker!.port).toBeUndefined();
    expect(data.apps.clock).toMatchObject({ runtime: "node", script: "scripts/clock.js" });
    expect(data.environments).toEqual({ production: { envFile: ".env.production" } });
    expect(notes(text)).toContain('release: "python manage.py migrate --noinput": run it as a build step of the app it belongs to');
    expect(text).not.toContain("kill_timeout");
    expect((await runCli(["generate", "-q"], { cwd: root })).code).toBe(0);
  });

  it("runs a command with shell syntax through /bin/sh, keeping $PORT for the shell", async () => {
    const file = await source("Procfile", "web: bundle exec puma -p $PORT -C config/puma.rb && echo done\n");
    const root = path.dirname(file);
    const result = await runCli(["import", "Procfile", "-o", "deploygen.yaml"], { cwd: root });
    expect(result.code).toBe(0);
    const data = parseYaml(await readFile(path.join(root, "deploygen.yaml"), "utf8")) as { apps: Record<string, unknown> };
    expect(data.apps.web).toMatchObject({ runtime: "command", script: "/bin/sh", args: ["-c", "bundle exec puma -p $PORT -C config/puma.rb && echo done"], port: 3000 });
  });
});

describe("deploygen import of other ecosystem files", () => {
  it("maps a Node.js cluster app, secrets, env_production blocks and unknown options", async () => {
    const file = await source(
      "ecosystem.config.js",
      `module.exports = {
  apps: [{
    name: 'api',
    script: './dist/server.js',
    instances: 4,
    exec_mode: 'cluster',
    kill_timeout: 8000,
    env: { NODE_ENV: 'development', LOG_LEVEL: 'debug', API_TOKEN: 'sk-live-123', DATABASE_URL: 'postgres://app:hunter2@db/app' },
    env_production: { NODE_ENV: 'production', PORT: 8080, LOG_LEVEL: 'info' },
    cron_restart: '0 3 * * *',
    node_args: '--max-old-space-size=512',
    post_update: ['npm install'],
  }],
  deploy: { production: { user: 'deploy', host: 'example.com' } },
};
`,
    );
    const root = path.dirname(file);
    const result = await runCli(["import", "ecosystem.config.js", "--project", "shop"], { cwd: root });
    expect(result.code).toBe(0);
    const data = parseYaml(result.stdout) as { apps: Record<string, Record<string, unknown>>; environments: Record<string, Record<string, unknown>> };
    expect(data.apps.api).toMatchObject({ runtime: "node", script: "./dist/server.js", instances: 4, stopTimeoutSeconds: 8, env: { NODE_ENV: "development", LOG_LEVEL: "debug" } });
    expect(JSON.stringify(data)).not.toContain("sk-live-123");
    expect(JSON.stringify(data)).not.toContain("hunter2");
    expect(data.environments.production).toEqual({
      envFile: ".env.production",
      requiredEnv: ["API_TOKEN", "DATABASE_URL"],
      apps: { api: { port: 8080, env: { NODE_ENV: "production", LOG_LEVEL: "info" } } },
    });
    const lines = notes(result.stdout);
    expect(lines).toContain("api: cron_restart: \"0 3 * * *\"");
    expect(lines).toContain("api: node_args: \"--max-old-space-size=512\"");
    expect(lines).toContain('api: post_update: ["npm install"]');
    expect(lines.some((line) => line.startsWith('deploy: {"production":'))).toBe(true);
    expect(lines.some((line) => line.startsWith("secret values (API_TOKEN, DATABASE_URL) were written in the process file"))).toBe(true);
    expect(result.stderr).toMatch(/review the comments at the top, save it as deploygen\.yaml/);
  });

  it("turns a Python app in cluster mode into one process and says why", async () => {
    const file = await source(
      "ecosystem.config.cjs",
      "module.exports = { apps: [{ name: 'worker', script: 'worker.py', interpreter: '/usr/bin/python3', instances: 2, exec_mode: 'cluster', args: ['--reload'] }] };\n",
    );
    const result = await runCli(["import", file, "--project", "jobs"], { cwd: path.dirname(file) });
    expect(result.code).toBe(0);
    const data = parseYaml(result.stdout) as { apps: Record<string, Record<string, unknown>> };
    expect(data.apps.worker).toMatchObject({ runtime: "python", script: ".venv/bin/python", args: ["worker.py"] });
    expect(data.apps.worker!.instances).toBeUndefined();
    const lines = notes(result.stdout);
    expect(lines.some((line) => line.startsWith("worker: PM2 cluster mode and instances only work for Node.js apps"))).toBe(true);
    expect(lines.some((line) => line.startsWith("worker ran with --reload"))).toBe(true);
    expect(lines.some((line) => line.startsWith("worker ran /usr/bin/python3 from outside the project: now .venv/bin/python"))).toBe(true);
  });

  it("reads JSON, YAML and ES module ecosystem files", async () => {
    const app = { name: "web", script: "server.js", env: { PORT: "3000" } };
    for (const [name, text] of [
      ["ecosystem.json", JSON.stringify({ apps: [app] })],
      ["ecosystem.yaml", `apps:\n  - name: web\n    script: server.js\n    env: { PORT: "3000" }\n`],
      ["ecosystem.config.mjs", `export default { apps: [${JSON.stringify(app)}] };\n`],
    ] as const) {
      const file = await source(name, text);
      const result = await runCli(["import", file, "--project", "site", "-o", path.join(path.dirname(file), "deploygen.yaml")], { cwd: path.dirname(file) });
      expect(result.code, `${name}: ${result.stderr}`).toBe(0);
      const data = parseYaml(await readFile(path.join(path.dirname(file), "deploygen.yaml"), "utf8")) as { apps: Record<string, unknown> };
      expect(data.apps, name).toEqual({ web: { runtime: "node", cwd: ".", script: "server.js", port: 3000, install: ["npm ci"] } });
    }
  });

  it("runs the file in a child process, never in deploygen's own", async () => {
    const marker = path.join(await dir(), "pid");
    const file = await source(
      "ecosystem.config.js",
      `require('fs').writeFileSync(${JSON.stringify(marker)}, String(process.pid));
globalThis.__deploygenImportRan = true;
module.exports = { apps: [{ name: 'web', script: 'server.js' }] };\n`,
    );
    const result = await runCli(["import", file, "--project", "x"], { cwd: path.dirname(file) });
    expect(result.code).toBe(0);
    expect(Number(await readFile(marker, "utf8"))).not.toBe(process.pid);
    expect((globalThis as { __deploygenImportRan?: boolean }).__deploygenImportRan).toBeUndefined();
  });
});

describe("deploygen import failures: exit 1 with a clear message and the fix", () => {
  it("a file that throws", async () => {
    const file = await source("ecosystem.config.js", "const config = require('./missing-config.json');\nmodule.exports = config;\n");
    const result = await runCli(["import", "ecosystem.config.js"], { cwd: path.dirname(file) });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error ecosystem\.config\.js throws when loaded:\n {2}Error: Cannot find module '\.\/missing-config\.json'\n/);
    expect(result.stderr).toMatch(/\nfix: fix the error above \(the file is run as PM2 runs it: node -e "require\('\.\/ecosystem\.config\.js'\)" in its folder\)\n$/);
  });

  it("a file that never finishes loading is killed after --timeout, with everything it started", async () => {
    const pidFile = path.join(await dir(), "grandchild");
    const file = await source(
      "ecosystem.config.js",
      `const { spawn } = require('child_process');
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
while (true) {}
`,
    );
    const started = Date.now();
    const result = await runCli(["import", "ecosystem.config.js", "--timeout", "1"], { cwd: path.dirname(file) });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "error ecosystem.config.js did not finish loading within 1 s and was stopped\nfix: make the file export its configuration without waiting (no servers, timers or prompts at load time), or allow more time with --timeout SECONDS\n",
    );
    // Gone, or a zombie waiting for a PID 1 that does not reap (as in some containers).
    const grandchild = Number(await readFile(pidFile, "utf8"));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const state = await readFile(`/proc/${grandchild}/stat`, "utf8").then((stat) => stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3), () => "gone");
    expect(["gone", "Z", "X"]).toContain(state);
  });

  it("a file that exits before exporting", async () => {
    const file = await source("ecosystem.config.js", "console.error('no config here'); process.exit(3);\n");
    const result = await runCli(["import", "ecosystem.config.js"], { cwd: path.dirname(file) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error ecosystem\.config\.js exited with code 3 before exporting anything:\n {2}no config here\nfix: /);
  });

  it("a CommonJS file that an ES module package.json makes export nothing", async () => {
    const folder = await dir();
    await writeFile(path.join(folder, "package.json"), '{ "type": "module" }\n');
    await writeFile(path.join(folder, "ecosystem.config.js"), "module.exports = { apps: [{ name: 'web', script: 'server.js' }] };\n");
    const result = await runCli(["import", "ecosystem.config.js"], { cwd: folder });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ES module|rename it to \.cjs|module is not defined/);
  });

  it("a missing file, a folder, a file of unknown kind, data that is not a PM2 configuration", async () => {
    const folder = await dir();
    const missing = await runCli(["import", "nope.config.js"], { cwd: folder });
    expect(missing).toMatchObject({ code: 1, stderr: "error nope.config.js does not exist\nfix: pass the path of a PM2 ecosystem file (.js, .cjs, .mjs, .json, .yaml) or a Procfile\n" });
    expect((await runCli(["import", "."], { cwd: folder })).stderr).toContain("error . is a folder\nfix: ");
    await writeFile(path.join(folder, "apps.toml"), "x = 1\n");
    const unknown = await runCli(["import", "apps.toml"], { cwd: folder });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error cannot tell what kind of file apps.toml is\nfix: ");
    await writeFile(path.join(folder, "ecosystem.json"), '{ "name": "web" }');
    const noApps = await runCli(["import", "ecosystem.json"], { cwd: folder });
    expect(noApps).toMatchObject({ code: 1, stderr: "error ecosystem.json defines no apps\nfix: export { apps: [{ name, script, ... }] } as PM2 expects\n" });
    await writeFile(path.join(folder, "broken.json"), "{ apps: [ }");
    expect((await runCli(["import", "broken.json"], { cwd: folder })).stderr).toMatch(/^error broken\.json is not valid JSON: .*\nfix: correct the JSON syntax\n$/);
  });

  it("an import that cannot be made valid says what to edit, and still writes the draft", async () => {
    const file = await source("ecosystem.config.js", "module.exports = { apps: [{ name: 'web', script: 'vite', args: 'dev --port 5173' }] };\n");
    const root = path.dirname(file);
    const result = await runCli(["import", "ecosystem.config.js", "-o", "deploygen.yaml", "--project", "site"], { cwd: root });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error deploygen\.yaml:\d+:\d+: apps\.web\..*vite dev server/);
    expect(result.stderr).toContain("error the imported manifest does not validate yet\nfix: edit it as the lines above say, then run `deploygen validate`\n");
    expect(existsSync(path.join(root, "deploygen.yaml"))).toBe(true);
  });
});
