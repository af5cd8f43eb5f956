// `pm2-list JLIST_FILE PM2_BIN`: the Node helper asks a real PM2 daemon for its process list over PM2's own RPC client
// (no `pm2 jlist` process), and must see exactly what `pm2 jlist` prints; in a PM2 layout without those modules it runs
// `PM2_BIN jlist` instead. Each test has its own PM2_HOME and daemon (killed at the end).
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PM2_BIN, REPO_ROOT, makePm2Home, killPm2, pm2Env, run, runOk, usePm2Home, waitFor } from "./e2e/harness.js";
import { HelperServer, helperCli } from "./helpers/helper-serve.js";
import { scratchDir } from "./helpers/scratch.js";

const PM2_PACKAGE = path.join(REPO_ROOT, "node_modules", "pm2");

type Row = { name: unknown; pid: unknown; pm_id: unknown; status: unknown; namespace: unknown; cwd: unknown; mode: unknown; instances: unknown };
/** What the deploy scripts read of a process list: compared field by field with `pm2 jlist`'s. */
const rows = (list: unknown): Row[] =>
  (list as Array<{ name: unknown; pid: unknown; pm_id: unknown; pm2_env?: Record<string, unknown> }>).map((p) => ({
    name: p.name,
    pid: p.pid,
    pm_id: p.pm_id,
    status: p.pm2_env?.status,
    namespace: p.pm2_env?.namespace,
    cwd: p.pm2_env?.pm_cwd,
    mode: p.pm2_env?.exec_mode,
    instances: p.pm2_env?.instances,
  }));

async function jlist(env: NodeJS.ProcessEnv): Promise<unknown[]> {
  const r = await runOk(PM2_BIN, ["jlist"], { env, timeoutMs: 60_000 });
  return JSON.parse(r.stdout.slice(r.stdout.indexOf("[")));
}

/** The helper's pm2-list with PM2_BIN: its exit status, stdout, stderr, and the list it wrote to JLIST_FILE. */
function helperList(dir: string, pm2Bin: string, env: NodeJS.ProcessEnv) {
  const file = path.join(dir, `jlist-${Math.random().toString(36).slice(2)}`);
  const started = Date.now();
  const r = helperCli(dir, ["pm2-list", file, pm2Bin], env);
  const ms = Date.now() - started;
  return { status: r.status, out: r.out.toString(), err: r.err.toString(), file, ms, list: r.status === 0 ? (JSON.parse(readFileSync(file, "utf8")) as unknown[]) : [] };
}

/** A daemon with a cluster app of 2 instances and a fork app in namespace `ns`, and a stopped app: all settled. */
async function startApps(dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const app = path.join(dir, "app");
  mkdirSync(app, { recursive: true });
  writeFileSync(path.join(app, "server.js"), "setInterval(() => {}, 1 << 30);\n");
  await runOk(PM2_BIN, ["start", "server.js", "--name", "web", "-i", "2", "--namespace", "ns"], { cwd: app, env });
  await runOk(PM2_BIN, ["start", "server.js", "--name", "worker", "--namespace", "ns"], { cwd: app, env });
  await runOk(PM2_BIN, ["start", "server.js", "--name", "paused"], { cwd: app, env });
  await runOk(PM2_BIN, ["stop", "paused"], { cwd: app, env });
  await waitFor(
    async () => {
      const statuses = rows(await jlist(env)).map((r) => `${String(r.name)}:${String(r.status)}`);
      return statuses.sort().join(" ") === "paused:stopped web:online web:online worker:online";
    },
    30_000,
    { what: "web (2 instances) and worker online, paused stopped" },
  );
}

describe("pm2-list over PM2's RPC", () => {
  it("sees an empty list from a daemon without apps, as pm2 jlist does", async () => {
    const { env } = await usePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    await runOk(PM2_BIN, ["ping"], { env });
    const r = helperList(dir, PM2_BIN, env);
    expect(r).toMatchObject({ status: 0, out: "", err: "", list: [] });
    expect(await jlist(env)).toEqual([]);
  });

  it("sees the names, pids, statuses, namespaces and folders pm2 jlist prints: cluster of 2, fork, stopped", async () => {
    const { env } = await usePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    await startApps(dir, env);
    const before = rows(await jlist(env));
    const r = helperList(dir, PM2_BIN, env);
    const after = rows(await jlist(env));
    expect(before).toEqual(after);
    expect(r.status).toBe(0);
    expect(r.err).toBe("");
    expect(rows(r.list)).toEqual(before);
    expect(before.map((p) => [p.name, p.namespace, p.status, p.mode])).toEqual([
      ["web", "ns", "online", "cluster_mode"],
      ["web", "ns", "online", "cluster_mode"],
      ["worker", "ns", "online", "fork_mode"],
      ["paused", "default", "stopped", "fork_mode"],
    ]);
    // The lines the library reads, and the same lines from the file it wrote (which pm2-changed reads later).
    const app = path.join(dir, "app");
    const expected = before.map((p) => `${String(p.name)}\t${String(p.namespace)}\t${String(p.status)}\t${String(p.pid)}\t${String(p.mode)}\t${app}\n`).join("");
    expect(r.out).toBe(expected);
    expect(helperCli(dir, ["pm2-list", r.file], env).out.toString()).toBe(expected);
    const jlistFile = path.join(dir, "from-pm2-jlist");
    writeFileSync(jlistFile, (await runOk(PM2_BIN, ["jlist"], { env })).stdout);
    expect(helperCli(dir, ["pm2-list", jlistFile], env).out.toString()).toBe(expected);
  });

  it("loads the RPC modules as PM2 5 ships them (npm packages next to its package) and runs no pm2 process", async () => {
    const { env } = await usePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    await startApps(dir, env);
    const calls = path.join(dir, "calls");
    for (const layout of ["pm2-7", "pm2-5"]) {
      // bin/pm2 records each call and runs the real PM2; the modules are links to PM2's own.
      const pkg = path.join(dir, layout);
      mkdirSync(path.join(pkg, "bin"), { recursive: true });
      writeFileSync(path.join(pkg, "bin", "pm2"), `#!/bin/sh\necho "$*" >>'${calls}'\nexec '${PM2_BIN}' "$@"\n`);
      chmodSync(path.join(pkg, "bin", "pm2"), 0o755);
      const modules = path.join(pkg, layout === "pm2-7" ? "modules" : "node_modules");
      mkdirSync(modules);
      for (const name of ["pm2-axon", "pm2-axon-rpc"]) symlinkSync(path.join(PM2_PACKAGE, "modules", name), path.join(modules, name));
      const r = helperList(dir, path.join(pkg, "bin", "pm2"), env);
      expect(r.status, r.err).toBe(0);
      expect(rows(r.list)).toEqual(rows(await jlist(env)));
    }
    expect(() => readFileSync(calls)).toThrow();
  });

  it("falls back to running PM2_BIN jlist in a PM2 layout without the RPC modules", async () => {
    const { env } = await usePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    await startApps(dir, env);
    const calls = path.join(dir, "calls");
    const fake = path.join(dir, "fake");
    mkdirSync(path.join(fake, "bin"), { recursive: true });
    writeFileSync(path.join(fake, "bin", "pm2"), `#!/bin/sh\necho "$*" >>'${calls}'\nexec '${PM2_BIN}' "$@"\n`);
    chmodSync(path.join(fake, "bin", "pm2"), 0o755);
    const r = helperList(dir, path.join(fake, "bin", "pm2"), env);
    expect(r.status, r.err).toBe(0);
    expect(readFileSync(calls, "utf8")).toBe("jlist\n");
    expect(rows(r.list)).toEqual(rows(await jlist(env)));
    expect(r.out.split("\n").filter(Boolean)).toHaveLength(4);

    // A PM2_BIN jlist that fails is PM2's daemon not answering, with the fix.
    writeFileSync(path.join(fake, "bin", "pm2"), "#!/bin/sh\necho 'connect EACCES' >&2\nexit 3\n");
    const failed = helperList(dir, path.join(fake, "bin", "pm2"), env);
    expect(failed.status).toBe(1);
    expect(failed.err).toBe(
      `error\tPM2's daemon (PM2_HOME=${env.PM2_HOME}) does not answer to ${fake}/bin/pm2 jlist (connect EACCES)\n` +
        "fix\trun pm2 jlist to see why (pm2 kill restarts a stuck daemon)\n",
    );
  });

  it("answers in serve mode as on the command line, and lets the server exit at once at EOF", async () => {
    const { env } = await usePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    await startApps(dir, env);
    const server = new HelperServer(path.join(dir, "out"), path.join(dir, "err"), { env });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const served = await server.ask(dir, ["pm2-list", path.join(dir, "served-jlist"), PM2_BIN]);
      times.push(Date.now() - started);
      expect(served.status, served.err.toString()).toBe(0);
      expect(served.out.toString()).toBe(helperList(dir, PM2_BIN, env).out);
      expect(rows(JSON.parse(readFileSync(path.join(dir, "served-jlist"), "utf8")))).toEqual(rows(await jlist(env)));
    }
    // Loading PM2's RPC client once and asking: far below the ~300 ms of a `pm2 jlist` process.
    expect(Math.min(...times)).toBeLessThan(200);
    const end = await server.close();
    expect(end.code).toBe(0);
    expect(end.ms).toBeLessThan(2000);
    expect(end.stderr).toBe("");
  });
});

describe("pm2-list when the daemon does not answer", () => {
  const fix = "fix\trun pm2 jlist to see why (pm2 kill restarts a stuck daemon)\n";
  /** No daemon ever ran in HOME: without the socket left there, killPm2 has nothing to stop; then HOME goes. */
  const removeHome = async (home: string) => {
    rmSync(path.join(home, "rpc.sock"), { force: true });
    await killPm2(home);
    rmSync(home, { recursive: true, force: true });
  };

  it("says so at once when no daemon runs (no socket) or its socket refuses the connection", async () => {
    const home = await makePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    const env = pm2Env(home);
    try {
      const none = helperList(dir, PM2_BIN, env);
      expect(none.status).toBe(1);
      expect(none.err).toBe(`error\tPM2's daemon (PM2_HOME=${home}) does not answer (connect ENOENT ${home}/rpc.sock)\n${fix}`);
      // A socket file left by a daemon that died: nothing listens on it.
      const holder = spawn(process.execPath, ["-e", `require('net').createServer().listen(${JSON.stringify(path.join(home, "rpc.sock"))}, () => console.log('up'))`]);
      await new Promise((resolve) => holder.stdout.once("data", resolve));
      holder.kill("SIGKILL");
      await new Promise((resolve) => holder.once("close", resolve));
      const refused = helperList(dir, PM2_BIN, env);
      expect(refused.status).toBe(1);
      expect(refused.err).toBe(`error\tPM2's daemon (PM2_HOME=${home}) does not answer (connect ECONNREFUSED ${home}/rpc.sock)\n${fix}`);
      expect(refused.ms).toBeLessThan(5000);
    } finally {
      await removeHome(home);
    }
  });

  it("gives up after 20 s on a daemon that accepts the connection but never answers", async () => {
    const home = await makePm2Home();
    const dir = await scratchDir("dg-pm2-list-");
    const silent = net.createServer(() => {}).listen(path.join(home, "rpc.sock"));
    await new Promise((resolve) => silent.once("listening", resolve));
    try {
      const file = path.join(dir, "jlist");
      const r = await run(process.execPath, [path.join(REPO_ROOT, "templates", "scripts", "deploygen-helper.cjs"), "pm2-list", file, PM2_BIN], {
        env: pm2Env(home),
        timeoutMs: 40_000,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error\tPM2's daemon (PM2_HOME=${home}) does not answer within 20 s\n${fix}`);
      expect(r.ms).toBeGreaterThanOrEqual(19_500);
      expect(r.ms).toBeLessThan(30_000);
    } finally {
      silent.close();
      await removeHome(home);
    }
  }, 60_000);
});
