// deploygen import: existing PM2 ecosystem files and Procfiles become manifests that validate and
// generate, every defect fixed on the way named in the output; JavaScript runs in a child process.
import { describe, expect, it } from "vitest";
import { mkdir, readFile, writeFile, readdir, symlink } from "node:fs/promises";
import { createRequire } from "node:module";
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
    expect(result.stderr).toMatch(/^imported 2 apps from .*ecosystem\.staging\.config\.js: 9 defects fixed, \d+ assumptions to check, 0 options not imported/);
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
      /^frontend ran `next dev` .*: now runtime nextjs/,
      /^frontend: nothing built the app before it started: deploy now runs npm run build and checks \.next\/BUILD_ID/,
      /^frontend: NODE_ENV "staging" is not a value Node\.js or Next\.js know .*: NODE_ENV is production and "staging" moved to CODEFRAME_ENV$/,
      /^env_file is not a PM2 option .*: it is now environments\.staging\.envFile/,
    ];
    expect(lines).toHaveLength(expected.length);
    expected.forEach((pattern, index) => expect(lines[index]).toMatch(pattern));
    // Current PM2 creates log folders itself: the log paths are a change to note, not a defect fixed.
    expect(stdout).toContain("# - backend, frontend: out_file, error_file not kept: logs are logs/<pm2 name>.out.log and .err.log under the project root");
    // max_memory_restart has a manifest field: nothing is left out.
    expect(stdout).not.toContain("# Not imported");
    expect(stdout).toMatch(/^ {4}maxMemory: 1G$/m);
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
    const scripts = await readdir(path.join(deploy, "scripts"));
    const deployScript = (await Promise.all(scripts.map((name) => readFile(path.join(deploy, "scripts", name), "utf8")))).join("\n");
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
    expect(data.apps.api).toMatchObject({ cronRestart: "0 3 * * *", nodeArgs: ["--max-old-space-size=512"] });
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

/** Imports `name` (written with `text`, plus `files`) from a fresh folder; returns the result, its data and its notes. */
async function importOf(name: string, text: string, files: Record<string, string> = {}, args: string[] = [], env: Record<string, string> = {}, links: Record<string, string> = {}) {
  const file = await source(name, text);
  const root = path.dirname(file);
  for (const [relative, target] of Object.entries(links)) {
    await mkdir(path.dirname(path.join(root, relative)), { recursive: true });
    await symlink(target, path.join(root, relative));
  }
  for (const [relative, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, relative)), { recursive: true });
    await writeFile(path.join(root, relative), content);
  }
  const result = await runCli(["import", name, "--project", "shop", ...args], { cwd: root, env });
  const data = parseYaml(result.stdout) as {
    apps: Record<string, Record<string, unknown> & { args?: string[]; env?: Record<string, string>; install?: string[] }>;
    environments: Record<string, Record<string, unknown> & { requiredEnv?: string[] }>;
  };
  return { result, data, notes: notes(result.stdout), root };
}

describe("deploygen import gives a manifest that starts", () => {
  it("Python servers named as the script of an interpreter run as modules (-m uvicorn, -m celery), never as a file Python cannot find", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `module.exports = { apps: [
  { name: 'api', script: 'uvicorn', args: 'shop.main:app --port 8000', interpreter: 'venv/bin/python' },
  { name: 'worker', script: 'celery', args: ['-A', 'shop', 'worker'], interpreter: 'python3' },
] };
`,
    );
    expect(result.code).toBe(0);
    expect(data.apps.api).toMatchObject({ runtime: "python", script: "venv/bin/python", args: ["-m", "uvicorn", "shop.main:app", "--port", "{port}"], port: 8000 });
    expect(data.apps.worker).toMatchObject({ runtime: "python", script: ".venv/bin/python", args: ["-m", "celery", "-A", "shop", "worker"] });
    expect(lines).toContain("api ran venv/bin/python uvicorn, which makes Python look for a file named uvicorn in the app's folder: now uvicorn runs as a module (-m uvicorn)");
  });

  it("evaluates the file with a fixed environment: nothing of this machine's environment, nothing dotenv loaded, no \"undefined\" reaches the manifest", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `require('dotenv').config();
module.exports = { apps: [
  { name: 'worker-' + process.env.WORKER_ID, script: 'worker.js', env: { ...process.env, LOG_LEVEL: 'info' } },
  { name: 'api', script: 'api.js', env: { DATABASE_URL: process.env.DATABASE_URL, CACHE_URL: process.env.CACHE_URL, REGION: 'eu-' + process.env.REGION_SUFFIX } },
] };
`,
      { ".env": "DATABASE_URL=postgres://app:pw@db/app\nCACHE_URL=redis://127.0.0.1:6379\n" },
      [],
      { SHELL_ONLY_SECRET: "from-this-shell", SSH_AUTH_SOCK: "/tmp/ssh-agent.sock" },
      // The real dotenv package, as the project would have it installed.
      { "node_modules/dotenv": path.dirname(createRequire(import.meta.url).resolve("dotenv/package.json")) },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(Object.keys(data.apps)).toEqual(["worker", "api"]);
    expect(data.apps.worker!.env).toEqual({ LOG_LEVEL: "info" });
    expect(data.apps.api!.env).toBeUndefined();
    const text = result.stdout.split("\n").filter((line) => !line.startsWith("#")).join("\n");
    for (const leaked of ["PATH", "HOME", "USER", "PWD", "SSH_AUTH_SOCK", "SHELL_ONLY_SECRET", "from-this-shell", "DATABASE_URL", "CACHE_URL", "undefined", "postgres://"]) expect(text).not.toContain(leaked);
    expect(data.environments.production!.requiredEnv).toBeUndefined();
    expect(data.environments.production!.envFile).toBe(".env.production");
    expect(lines).toContain(
      "PATH, HOME, USER, LOGNAME, SHELL, LANG, PWD: copied from the environment of whoever ran PM2 (env: {...process.env} or similar), which differs on every machine: kept out of the manifest (the service user's environment reaches the apps anyway)",
    );
    expect(lines).toContain(
      "DATABASE_URL, CACHE_URL: loaded into process.env while the file ran (require('dotenv').config() reading a local .env): kept out of the manifest; the env file on the host gives them to the apps",
    );
    expect(lines.some((line) => line.startsWith("PM2 name worker-undefined: computed from variables that were not set while importing (WORKER_ID"))).toBe(true);
    expect(lines.some((line) => line.startsWith("api env.REGION: computed from variables that were not set while importing"))).toBe(true);
  });

  it("secrets by name go to the env file (*_PW, *_PASS*, *_SECRET*, *_TOKEN*, *_KEY, credentials in URLs); public and harmless names stay", async () => {
    const env = {
      DB_PW: "a", SMTP_PASSWORD: "b", MAIL_PASS: "c", JWT_SECRET_KEY: "d", GITHUB_TOKEN_RO: "e", STRIPE_KEY: "f", CACHE_URL: "redis://:hunter2@cache:6379",
      NEXT_PUBLIC_STRIPE_KEY: "pk_1", STRIPE_PUBLISHABLE_KEY: "pk_2", NEXT_PUBLIC_API_URL: "https://api.example.com", SSH_AUTH_SOCK: "/tmp/agent.sock", TOKENIZERS_PARALLELISM: "false", PWD_POLICY: "strict",
    };
    const { result, data } = await importOf("ecosystem.json", JSON.stringify({ apps: [{ name: "api", script: "server.js", env }] }));
    expect(result.code).toBe(0);
    expect(data.environments.production!.requiredEnv).toEqual(["CACHE_URL", "DB_PW", "GITHUB_TOKEN_RO", "JWT_SECRET_KEY", "MAIL_PASS", "SMTP_PASSWORD", "STRIPE_KEY"]);
    expect(Object.keys(data.apps.api!.env ?? {}).sort()).toEqual(["NEXT_PUBLIC_API_URL", "NEXT_PUBLIC_STRIPE_KEY", "PWD_POLICY", "SSH_AUTH_SOCK", "STRIPE_PUBLISHABLE_KEY", "TOKENIZERS_PARALLELISM"]);
  });

  it("absolute paths inside args become relative to the app's folder, or are flagged when outside the project", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `module.exports = { apps: [{ name: 'api', cwd: '/srv/shop', script: '/srv/shop/server.js', args: ['--env-file=/srv/shop/.env.production', '--config', '/srv/shop/config/app.yml', '--ca=/root/certs/ca.pem'] }] };\n`,
    );
    expect(result.code).toBe(0);
    expect(data.apps.api!.args).toEqual(["--env-file=.env.production", "--config", "config/app.yml", "--ca=/root/certs/ca.pem"]);
    expect(lines.some((line) => line.startsWith("hard-coded absolute paths under /srv/shop (api cwd, api script, api args)"))).toBe(true);
    expect(lines).toContain("api: the argument --ca=/root/certs/ca.pem names /root/certs/ca.pem, outside the project root /srv/shop: kept as written; it must exist on every host (or move it into the project)");
  });

  it("Express's bin/www (a file without extension PM2 runs with node) becomes runtime node with an install step", async () => {
    const { result, data } = await importOf("ecosystem.config.js", "module.exports = { apps: [{ name: 'web', script: './bin/www', env: { PORT: 3000 } }] };\n", {
      "bin/www": "#!/usr/bin/env node\nrequire('../app');\n",
      "package-lock.json": "{}\n",
      "package.json": '{ "scripts": { "start": "node ./bin/www" } }\n',
    });
    expect(result.code).toBe(0);
    expect(data.apps.web).toMatchObject({ runtime: "node", script: "./bin/www", port: 3000, install: ["npm ci"] });
  });

  it.each([
    ["a pnpm lockfile", { "pnpm-lock.yaml": "lockfileVersion: '9.0'\n" }, "npm", "pnpm install --frozen-lockfile", undefined],
    ["the packageManager field (yarn 4)", { "package.json": '{ "packageManager": "yarn@4.1.0", "scripts": { "build": "tsc" } }\n' }, "npm", "yarn install --immutable", "yarn run build"],
    ["the command itself (bun)", {}, "bun", "bun install --frozen-lockfile", undefined],
  ])("the install command follows the package manager: %s", async (_what, files, manager, install, build) => {
    const { result, data } = await importOf("ecosystem.config.js", `module.exports = { apps: [{ name: 'web', script: '${manager}', args: 'start', cwd: 'web' }] };\n`, Object.fromEntries(Object.entries(files).map(([name, text]) => [`web/${name}`, text])));
    expect(result.code).toBe(0);
    expect(data.apps.web!.install).toEqual([install]);
    expect(data.apps.web!.build).toEqual(build === undefined ? undefined : [build]);
  });

  it("reports development servers hidden behind package scripts (npm start, npm run start:dev, yarn develop)", async () => {
    const { notes: lines } = await importOf(
      "ecosystem.config.js",
      `module.exports = { apps: [
  { name: 'web', script: 'npm', args: 'start', cwd: 'web' },
  { name: 'api', script: 'npm', args: 'run start:dev', cwd: 'web' },
  { name: 'site', script: 'yarn', args: 'develop', cwd: 'web' },
] };
`,
      { "web/package.json": JSON.stringify({ scripts: { start: "react-scripts start", "start:dev": "nodemon src/index.js", develop: "gatsby develop" } }), "web/package-lock.json": "{}" },
    );
    expect(lines).toContain(
      "web runs `npm start`, whose package.json script is `react-scripts start`: a development server (hot reload, unoptimised code); build the app and serve the build instead (change that script or this app's args), or validate cannot tell",
    );
    expect(lines.some((line) => line.startsWith("api runs `npm run start:dev`, whose package.json script is `nodemon src/index.js`: a development server"))).toBe(true);
    expect(lines.some((line) => line.startsWith("site runs `yarn develop`, whose package.json script is `gatsby develop`: a development server"))).toBe(true);
  });

  it("drops nothing silently: instances 0, -1 and \"2\", cluster mode with one instance, interpreter bash, Next.js's bind address", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `module.exports = { apps: [
  { name: 'a', script: 'a.js', instances: 0, exec_mode: 'cluster' },
  { name: 'b', script: 'b.js', instances: -1, exec_mode: 'cluster' },
  { name: 'c', script: 'c.js', instances: '2' },
  { name: 'd', script: 'd.js', exec_mode: 'cluster_mode' },
  { name: 'e', script: 'backup.sh', interpreter: 'bash' },
  { name: 'f', script: 'node_modules/.bin/next', args: 'start -p 3000' },
] };
`,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(data.apps.a!.instances).toBe("max");
    expect(data.apps.b!.instances).toBe(-1);
    expect(data.apps.c!.instances).toBe(2);
    expect(data.apps.d).toMatchObject({ execMode: "cluster" });
    expect(data.apps.d!.instances).toBeUndefined();
    expect(data.apps.e).toMatchObject({ runtime: "command", script: "/usr/bin/env", args: ["bash", "backup.sh"] });
    expect(lines).toContain("d: cluster mode with one instance kept (execMode: cluster): PM2 reloads it without downtime");
    expect(lines).toContain("e: interpreter bash: runs as bash backup.sh (runtime command); check that backup.sh does not start a development server");
    expect(lines.some((line) => line.startsWith("f: next listened on all interfaces (0.0.0.0, Next.js's default); it now binds 127.0.0.1"))).toBe(true);
  });

  it("a Procfile that names a process twice keeps both and says so", async () => {
    const { data, notes: lines } = await importOf("Procfile", "web: node server.js\nweb: node other.js\n");
    expect(Object.keys(data.apps)).toEqual(["web", "web-2"]);
    expect(lines).toContain("Procfile defines web 2 times: all are kept, as web, web-2; remove the ones you do not run");
  });

  it.each([
    ["a bare app object", "ecosystem.config.js", "module.exports = { name: 'api', script: 'server.js' };\n"],
    ["apps under a pm2 key", "ecosystem.json", JSON.stringify({ pm2: [{ name: "api", script: "server.js" }] })],
    ["cmd instead of script", "ecosystem.json", JSON.stringify({ apps: [{ name: "api", cmd: "server.js" }] })],
    ["command instead of script", "ecosystem.json", JSON.stringify({ apps: [{ name: "api", command: "server.js" }] })],
    ["exec instead of script", "ecosystem.json", JSON.stringify({ apps: [{ name: "api", exec: "server.js" }] })],
  ])("accepts PM2's input forms: %s", async (_what, name, text) => {
    const { result, data } = await importOf(name, text);
    expect(result.code, result.stderr).toBe(0);
    expect(data.apps.api).toMatchObject({ runtime: "node", script: "server.js" });
  });

  it("a JSON file saved as .js shows the SyntaxError and where it is", async () => {
    const { result } = await importOf("ecosystem.config.js", '{\n  "apps": [{ "name": "api", "script": "server.js" }]\n}\n');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ecosystem.config.js throws when loaded:");
    expect(result.stderr).toMatch(/ecosystem\.config\.js:2\n\s+"apps": \[\{ "name": "api", "script": "server\.js" \}\]\n\s+\^+\n\s+SyntaxError: Unexpected token ':'/);
  });

  it("notes are true: a path computed from __dirname is not called hard-coded, shared notes appear once, ports below 1024 are flagged", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `const path = require('path');
module.exports = { apps: [
  { name: 'web', cwd: path.resolve(__dirname), script: 'web.js', env: { PORT: 80 } },
  { name: 'api', cwd: path.join(__dirname, 'api'), script: 'api.js', env: { PORT: 8080 } },
  { name: 'jobs', cwd: __dirname, script: 'jobs.js' },
] };
`,
    );
    expect(result.code).toBe(0);
    expect(data.apps.api!.cwd).toBe("api");
    expect(lines.some((line) => line.includes("hard-coded absolute paths"))).toBe(false);
    for (const start of ["web, api, jobs: nothing installed dependencies", "web, api, jobs: no kill_timeout", "web, api, jobs: install is npm ci"])
      expect(lines.filter((line) => line.startsWith(start)), start).toHaveLength(1);
    expect(lines).toContain("web: port below 1024 (80): the systemd unit runs as the service user shop, not root, which cannot bind them: use a port above 1023 behind a reverse proxy");
  });

  it("maps PM2's process options onto the manifest's fields instead of dropping them", async () => {
    const { result, data, notes: lines } = await importOf(
      "ecosystem.config.js",
      `module.exports = { apps: [
  { name: 'api', script: 'server.js', max_memory_restart: 536870912, max_restarts: 10, min_uptime: '10s', restart_delay: 3000, node_args: ['--enable-source-maps'], log_date_format: 'YYYY-MM-DD HH:mm Z', wait_ready: true, cron: '0 4 * * *' },
  { name: 'worker', script: 'worker.py', interpreter: '.venv/bin/python', interpreter_args: '-u -X utf8', maxMemoryRestart: '300M', wait_ready: true },
] };
`,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(data.apps.api).toMatchObject({
      maxMemory: "512M",
      maxRestarts: 10,
      minUptimeSeconds: 10,
      restartDelaySeconds: 3,
      nodeArgs: ["--enable-source-maps"],
      logDateFormat: "YYYY-MM-DD HH:mm Z",
      waitReady: true,
      cronRestart: "0 4 * * *",
    });
    expect(data.apps.worker).toMatchObject({ runtime: "python", maxMemory: "300M", interpreterArgs: ["-u", "-X", "utf8"] });
    expect(data.apps.worker!.waitReady).toBeUndefined();
    expect(lines).toContain("worker: wait_ready true: only a node app can send process.send('ready'); worker is python");
  });
});

describe("README's import example", () => {
  it("is the real output of the command it shows", async () => {
    const readme = await readFile(path.join(FIXTURES, "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Importing an existing PM2 file"));
    const block = /```console\n([\s\S]*?)\n```/.exec(section)![1]!;
    const between = (from: string, to: string) => block.slice(block.indexOf(from) + from.length + 1, block.indexOf(to)).replace(/\n$/, "");
    const ecosystem = between("$ cat ecosystem.config.js", "$ npx deploygen import");
    const summary = between("$ npx deploygen import ecosystem.config.js -o deploygen.yaml", "$ cat deploygen.yaml");
    const manifest = block.slice(block.indexOf("$ cat deploygen.yaml") + "$ cat deploygen.yaml".length + 1);
    const root = await dir("deploygen-import-readme-");
    await mkdir(path.join(root, "api"));
    await mkdir(path.join(root, "web"));
    await writeFile(path.join(root, "api", "uv.lock"), "");
    await writeFile(path.join(root, "web", "package-lock.json"), "{}\n");
    await writeFile(path.join(root, "web", "package.json"), '{ "scripts": { "build": "next build", "start": "next start" } }\n');
    await writeFile(path.join(root, "ecosystem.config.js"), `${ecosystem}\n`);
    const result = await runCli(["import", "ecosystem.config.js", "-o", "deploygen.yaml"], { cwd: root });
    expect(result.code, result.stderr).toBe(0);
    expect((result.stdout + result.stderr).trimEnd()).toBe(summary);
    expect((await readFile(path.join(root, "deploygen.yaml"), "utf8")).trimEnd()).toBe(manifest.trimEnd());
  });
});
