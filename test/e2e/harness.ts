/**
 * End-to-end test harness: real processes, real ports, a real PM2 daemon per test.
 * Nothing here is mocked. Linux only (it reads /proc to find and reap processes).
 *
 * Typical use in a test:
 *
 *   const prepared = await prepareE2eProject();             // once per run, cached
 *   const dir = await copyProject(E2E_FIXTURE, { linkFrom: prepared.dir });
 *   const { env } = await usePm2Home();                      // killed after the test
 *   const r = await run('bash', ['deploy/scripts/deploy-staging.sh'], { cwd: dir, env });
 *   await waitForHttp(`http://127.0.0.1:${port}/health`, 60_000);
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, onTestFinished } from 'vitest';

// ---------------------------------------------------------------------------
// Locations

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The deploygen repository root (two levels above this file). */
export const REPO_ROOT = path.resolve(HERE, '..', '..');
/** The repository's `node_modules/.bin` (pm2, tsc, vitest...). */
export const REPO_BIN_DIR = path.join(REPO_ROOT, 'node_modules', '.bin');
/** PM2's CLI, a devDependency of the repository. */
export const PM2_BIN = path.join(REPO_BIN_DIR, 'pm2');
/** The codeframe-shaped end-to-end fixture (FastAPI backend + Next.js frontend). */
export const E2E_FIXTURE = path.join(REPO_ROOT, 'fixtures', 'e2e');
/** Debian's python3: the only interpreter here that sees python3-fastapi/-uvicorn. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Folders that are installed/built/run-time state, never copied from a fixture by default. */
export const HEAVY_DIRS = ['node_modules', '.next', '.venv'] as const;
export type HeavyDir = (typeof HEAVY_DIRS)[number];
const RUNTIME_DIRS = ['logs', '.deploygen', '__pycache__'] as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Process bookkeeping (Linux /proc)

/**
 * True while `pid` is a live process. A zombie counts as dead: on this machine orphans
 * are re-parented to an init that reaps them late (seconds), so `kill -0` alone lies.
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    if (existsSync('/proc/self/stat')) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** Pids (other than this process) whose initial environment has `name=value` exactly. */
export function findProcessesWithEnv(name: string, value: string): number[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // gone, or a kernel thread
    }
    const idx = environ.indexOf(needle);
    if (idx === 0 || (idx > 0 && environ[idx - 1] === 0)) {
      if (isAlive(pid)) found.push(pid);
    }
  }
  return found;
}

/** Live processes that belong to the PM2 daemon of `pm2Home`: the daemon, its apps, their children. */
export function findPm2Processes(pm2Home: string): number[] {
  const pids = new Set(findProcessesWithEnv('PM2_HOME', pm2Home));
  const daemon = readPm2Pid(pm2Home);
  if (daemon !== undefined && isAlive(daemon)) pids.add(daemon);
  return [...pids].sort((a, b) => a - b);
}

function readPm2Pid(pm2Home: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(pm2Home, 'pm2.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Poll `check` every `intervalMs` until it returns a truthy value; throw after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

// Things to kill if the test process exits without cleaning up (crash, Ctrl-C, bail).
const livePm2Homes = new Set<string>();
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of liveChildren) {
      if (child.pid === undefined) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const home of livePm2Homes) {
      for (const pid of findPm2Processes(home)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Ports

/** A TCP port that was free on 127.0.0.1 a moment ago (bind :0, read, close). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** `n` distinct free ports: all are held open together, then released. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** True if nothing listens on 127.0.0.1:`port` (we can bind it). */
export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  const server = net.createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

// ---------------------------------------------------------------------------
// Environment

/**
 * `process.env` without what the test runner and npm inject: `npm_*` (npm_config_local_prefix
 * would point a nested `npm ci` at this repository), `INIT_CWD`, `NODE`, `VITEST*`, `TEST`,
 * `NODE_ENV=test`, and any `PM2_*`/pm2 app variables. Real scripts never see these.
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (/^npm_/i.test(k) || /^VITEST/.test(k) || /^__VITEST/.test(k) || /^PM2_/.test(k)) continue;
    if (['INIT_CWD', 'NODE', 'TEST', 'NODE_ENV', 'pm_id', 'name', 'namespace'].includes(k)) continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Environment for talking to (and starting) one isolated PM2 daemon: PM2_HOME set,
 * the repository's node_modules/.bin first on PATH (so `pm2` resolves), NO_COLOR=1.
 */
export function pm2Env(pm2Home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    PATH: [REPO_BIN_DIR, process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(path.delimiter),
    PM2_HOME: pm2Home,
    NO_COLOR: '1',
    ...extra,
  });
}

// ---------------------------------------------------------------------------
// Running commands

export interface RunOptions {
  cwd?: string;
  /** Full environment; default {@link cleanEnv}(). */
  env?: NodeJS.ProcessEnv;
  /** Kill the whole process group after this long (default 120 000 ms). */
  timeoutMs?: number;
  /** Written to stdin, then closed; default: stdin is /dev/null. */
  input?: string;
}

export interface RunResult {
  /** Exit code; null if killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
  /** Set when the command could not be started (ENOENT...). */
  error?: Error;
}

/**
 * Run a command to completion; never throws on a non-zero exit. The child gets its own
 * process group, killed (TERM, then KILL after 3 s) on timeout. Resolves shortly after the
 * child exits even if a grandchild it left behind still holds stdout/stderr open.
 */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  installExitHook();
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise<RunResult>((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? cleanEnv(),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    liveChildren.add(child);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin?.end(opts.input);

    const killGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        try {
          child.kill(signal);
        } catch {
          /* gone */
        }
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 3000).unref();
    }, timeoutMs);

    const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      liveChildren.delete(child);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const result: RunResult = { code, signal, stdout, stderr, ms: Date.now() - started, timedOut };
      if (error) result.error = error;
      resolve(result);
    };
    child.once('error', (err) => finish(null, null, err));
    child.once('exit', (code, signal) => {
      // Normally 'close' follows at once; if a daemonised grandchild kept the pipes, stop waiting.
      const grace = setTimeout(() => finish(code, signal), 1000);
      child.once('close', () => {
        clearTimeout(grace);
        finish(code, signal);
      });
    });
  });
}

/** {@link run}, but throws (with both outputs) unless the exit code is 0. */
export async function runOk(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} failed (code ${r.code}, signal ${r.signal}${r.timedOut ? ', timed out' : ''}` +
        `${r.error ? `, ${r.error.message}` : ''}) in ${opts.cwd ?? process.cwd()}\n` +
        `--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
    );
  }
  return r;
}

// ---------------------------------------------------------------------------
// HTTP

export interface HttpResponse {
  kind: 'response';
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}
export interface HttpError {
  kind: 'error';
  /** ECONNREFUSED, ECONNRESET, ETIMEDOUT (our timeout), ... */
  code: string;
  message: string;
  ms: number;
}
export type HttpResult = HttpResponse | HttpError;

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * One HTTP request on a fresh connection (no keep-alive, so it never delays a server's
 * graceful shutdown). Never throws: network failures come back as `{ kind: 'error' }`.
 */
export function httpGet(url: string, timeoutMs = 5000, opts: HttpRequestOptions = {}): Promise<HttpResult> {
  const started = Date.now();
  return new Promise<HttpResult>((resolve) => {
    let done = false;
    const settle = (r: HttpResult): void => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        resolve(r);
      }
    };
    const headers: Record<string, string> = { connection: 'close', ...opts.headers };
    if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        settle({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - started }),
      );
      res.on('error', (err: NodeJS.ErrnoException) =>
        settle({ kind: 'error', code: err.code ?? 'ERESPONSE', message: err.message, ms: Date.now() - started }),
      );
    });
    const timer = setTimeout(() => {
      settle({ kind: 'error', code: 'ETIMEDOUT', message: `no response within ${timeoutMs} ms`, ms: Date.now() - started });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      settle({ kind: 'error', code: err.code ?? 'EREQUEST', message: err.message, ms: Date.now() - started }),
    );
    req.end(opts.body);
  });
}

/** POST a JSON value; same result shape as {@link httpGet}. */
export function httpPostJson(url: string, value: unknown, timeoutMs = 5000): Promise<HttpResult> {
  return httpGet(url, timeoutMs, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
}

export interface WaitForHttpOptions {
  /** Which responses end the wait; default: status 200-299. */
  accept?: (r: HttpResponse) => boolean;
  intervalMs?: number;
}

/** Poll `url` every 100 ms until an accepted response; throw (with the last result) after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs: number, opts: WaitForHttpOptions = {}): Promise<HttpResponse> {
  const accept = opts.accept ?? ((r: HttpResponse) => r.status >= 200 && r.status < 300);
  const deadline = Date.now() + timeoutMs;
  let last: HttpResult | undefined;
  for (;;) {
    const remaining = deadline - Date.now();
    last = await httpGet(url, Math.max(100, Math.min(5000, remaining)));
    if (last.kind === 'response' && accept(last)) return last;
    if (Date.now() + (opts.intervalMs ?? 100) >= deadline) break;
    await sleep(opts.intervalMs ?? 100);
  }
  const lastText =
    last.kind === 'response' ? `HTTP ${last.status} ${last.body.slice(0, 300)}` : `${last.code}: ${last.message}`;
  throw new Error(`waitForHttp ${url}: not ready after ${timeoutMs} ms; last: ${lastText}`);
}

// ---------------------------------------------------------------------------
// PM2

/** A fresh empty folder for PM2_HOME (short path: PM2's unix sockets live in it). */
export async function makePm2Home(): Promise<string> {
  installExitHook();
  const home = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-pm2-'));
  livePm2Homes.add(home);
  return home;
}

export interface KillPm2Result {
  /** Exit code of `pm2 kill`, or null when no daemon was running (not called). */
  pm2KillCode: number | null;
  /** Pids that were still alive after `pm2 kill` and got SIGKILL. */
  killed: number[];
}

/**
 * Stop the daemon of `pm2Home` and everything it started: `pm2 kill` (graceful), then
 * SIGKILL for any survivor (the pid in $PM2_HOME/pm2.pid and every process whose
 * environment carries this PM2_HOME), then wait until none is alive. Throws if some
 * process still survives after that.
 */
export async function killPm2(pm2Home: string, opts: { timeoutMs?: number } = {}): Promise<KillPm2Result> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let pm2KillCode: number | null = null;
  const daemonPid = readPm2Pid(pm2Home);
  const daemonRunning =
    (daemonPid !== undefined && isAlive(daemonPid)) || existsSync(path.join(pm2Home, 'rpc.sock'));
  // `pm2 kill` against a home without a daemon would spawn one first, so skip it then.
  if (daemonRunning) {
    const r = await run(PM2_BIN, ['kill'], { env: pm2Env(pm2Home), timeoutMs });
    pm2KillCode = r.code;
  }
  const killed: number[] = [];
  const survivors = findPm2Processes(pm2Home);
  for (const pid of survivors) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  await waitFor(() => findPm2Processes(pm2Home).length === 0, 10_000, {
    what: `processes of PM2_HOME=${pm2Home} to die`,
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}; still alive: ${findPm2Processes(pm2Home).join(', ')}`);
  });
  livePm2Homes.delete(pm2Home);
  return { pm2KillCode, killed };
}

export interface Pm2Handle {
  home: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Inside a test: a fresh PM2_HOME whose daemon (and apps) are killed when the test
 * finishes, pass or fail. The folder is removed on success and kept (path printed) on
 * failure so its pm2.log can be read; `keep: true` always keeps it.
 *
 *   test('x', async () => { const { home, env } = await usePm2Home(); ... });
 */
export async function usePm2Home(opts: { keep?: boolean } = {}): Promise<Pm2Handle> {
  const holder: { home?: string } = {};
  // Registered before the first await so it binds to the current test.
  onTestFinished(async (ctx) => {
    if (!holder.home) return;
    await killPm2(holder.home);
    const failed = ctx.task.result?.state === 'fail';
    if (failed || opts.keep) {
      console.error(`[harness] PM2_HOME kept for inspection: ${holder.home}`);
    } else {
      await fsp.rm(holder.home, { recursive: true, force: true });
    }
  }, 60_000);
  holder.home = await makePm2Home();
  return { home: holder.home, env: pm2Env(holder.home) };
}

/**
 * In a describe block: a fresh PM2_HOME before each test, killed after each.
 *
 *   const pm2 = pm2HomeForEachTest();
 *   test('x', async () => { await run('pm2', ['ls'], { env: pm2.env }); });
 */
export function pm2HomeForEachTest(): { readonly home: string; readonly env: NodeJS.ProcessEnv } {
  let current: string | undefined;
  beforeEach(async () => {
    current = await makePm2Home();
  });
  afterEach(async () => {
    if (current) {
      await killPm2(current);
      await fsp.rm(current, { recursive: true, force: true });
      current = undefined;
    }
  }, 60_000);
  return {
    get home(): string {
      if (!current) throw new Error('pm2HomeForEachTest: only available inside a test');
      return current;
    },
    get env(): NodeJS.ProcessEnv {
      return pm2Env(this.home);
    },
  };
}

export interface Pm2Process {
  name: string;
  namespace: string;
  /** online, stopping, stopped, launching, errored, one-launch-status, waiting restart */
  status: string;
  pid: number;
  pm_id: number;
  restarts: number;
  unstableRestarts: number;
  execMode: string;
  cwd: string | undefined;
  execPath: string | undefined;
  args: string[];
  outLog: string | undefined;
  errLog: string | undefined;
  killTimeout: number | undefined;
  /** pm2_env.env: the environment PM2 launched the process with (string values only). */
  env: Record<string, string>;
  /** The whole jlist entry, for anything not picked above. */
  raw: Record<string, unknown>;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown, d = 0): number => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : d);

/** Parse `pm2 jlist` output (tolerates "[PM2] ..." lines before the JSON). */
export function parsePm2Jlist(stdout: string): Pm2Process[] {
  const lines = stdout.split('\n').map((l) => l.trim());
  let parsed: unknown;
  for (let i = lines.length - 1; i >= 0 && parsed === undefined; i--) {
    const line = lines[i] as string;
    if (!line.startsWith('[')) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (Array.isArray(value)) parsed = value;
    } catch {
      /* a "[PM2] ..." log line */
    }
  }
  if (!Array.isArray(parsed)) throw new Error(`pm2 jlist: no JSON array in output:\n${stdout}`);
  return parsed.map((entry): Pm2Process => {
    const raw = asRecord(entry);
    const e = asRecord(raw.pm2_env);
    const envOut: Record<string, string> = {};
    for (const [k, v] of Object.entries(asRecord(e.env))) if (typeof v === 'string') envOut[k] = v;
    const args = Array.isArray(e.args) ? e.args.map(String) : typeof e.args === 'string' ? [e.args] : [];
    return {
      name: str(raw.name) ?? str(e.name) ?? '',
      namespace: str(e.namespace) ?? 'default',
      status: str(e.status) ?? 'unknown',
      pid: num(raw.pid),
      pm_id: num(raw.pm_id ?? e.pm_id, -1),
      restarts: num(e.restart_time),
      unstableRestarts: num(e.unstable_restarts),
      execMode: str(e.exec_mode) ?? '',
      cwd: str(e.pm_cwd),
      execPath: str(e.pm_exec_path),
      args,
      outLog: str(e.pm_out_log_path),
      errLog: str(e.pm_err_log_path),
      killTimeout: typeof e.kill_timeout === 'number' ? e.kill_timeout : undefined,
      env: envOut,
      raw,
    };
  });
}

/**
 * `pm2 jlist` for the daemon of `env.PM2_HOME`, parsed. Returns [] without calling PM2
 * when that home has no running daemon (jlist would otherwise spawn one).
 */
export async function pm2List(env: NodeJS.ProcessEnv): Promise<Pm2Process[]> {
  const home = env.PM2_HOME;
  if (home) {
    const pid = readPm2Pid(home);
    if (pid === undefined || !isAlive(pid)) return [];
  }
  const r = await run(PM2_BIN, ['jlist'], { env, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`pm2 jlist failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return parsePm2Jlist(r.stdout);
}

// ---------------------------------------------------------------------------
// Foreign process holding a port, webhook receiver

export interface ForeignServer {
  pid: number;
  port: number;
  url: string;
  /** SIGKILL and wait for exit (idempotent). */
  stop(): Promise<void>;
}

const FOREIGN_SERVER_JS = `
const http = require('node:http');
const [port, host] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
  res.end('foreign\\n');
});
server.on('error', (err) => { process.stdout.write('ERROR ' + (err.code || err.message) + '\\n'); process.exit(1); });
server.listen(Number(port), host, () => process.stdout.write('LISTENING\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * A node process that is not ours and not PM2's, listening on `host:port` and answering
 * "foreign" to every request. Rejects (EADDRINUSE...) if it cannot listen.
 */
export async function startForeignServer(port: number, host = '127.0.0.1'): Promise<ForeignServer> {
  installExitHook();
  const child = spawn(process.execPath, ['-e', FOREIGN_SERVER_JS, String(port), host], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: cleanEnv(),
  });
  liveChildren.add(child);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    });
  });
  const line = await new Promise<string>((resolve) => {
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf.split('\n')[0] ?? '');
    });
    void exited.then(() => resolve(buf.split('\n')[0] ?? 'EXITED'));
  });
  if (line !== 'LISTENING') {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`startForeignServer(${port}): ${line.replace(/^ERROR /, '')}`);
  }
  return {
    pid: child.pid as number,
    port,
    url: `http://${host}:${port}/`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface WebhookRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  /** The parsed JSON body, or undefined if it was not JSON. */
  body: unknown;
  at: number;
}

export interface WebhookReceiver {
  /** http://127.0.0.1:PORT/hook (any path is accepted). */
  url: string;
  port: number;
  /** Every request received, in order (POSTs and anything else). */
  received: WebhookRequest[];
  /** Resolves once at least `n` requests arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<WebhookRequest[]>;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that records request bodies (JSON parsed) and answers 200 {"ok":true}. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: WebhookRequest[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (raw += d));
    req.on('end', () => {
      let body: unknown;
      try {
        body = raw === '' ? undefined : JSON.parse(raw);
      } catch {
        body = undefined;
      }
      received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, body, at: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    waitFor: async (n, timeoutMs = 10_000) => {
      await waitFor(() => received.length >= n, timeoutMs, { what: `${n} webhook request(s)` });
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------
// Project copies

export interface CopyProjectOptions {
  /** Heavy folders to copy from `srcDir` itself instead of skipping them. */
  include?: readonly HeavyDir[];
  /**
   * A prepared tree (see {@link prepareE2eProject}) with the same layout as `srcDir`: its
   * node_modules/.next/.venv folders are added to the copy.
   */
  linkFrom?: string;
  /**
   * How folders from `linkFrom` are added. 'auto' (default): node_modules hard-linked
   * (`cp -al`; npm ci only unlinks it), .next and .venv copied (`next build` and
   * `python -m venv` rewrite some files in place, which would write through hard links
   * into the shared cache). 'hardlink' / 'copy': all the same way.
   */
  linkMode?: 'auto' | 'hardlink' | 'copy';
  /** Extra file/folder names to skip anywhere in the tree. */
  exclude?: readonly string[];
  /** mkdtemp prefix under os.tmpdir(); default "dg-e2e-". */
  prefix?: string;
}

function isLocalEnvFile(name: string): boolean {
  return /^\.env(\..+)?$/.test(name) && !name.endsWith('.example');
}

/**
 * Copy a fixture into a fresh temp folder and return its path. Skipped anywhere in the
 * tree unless asked: node_modules, .next, .venv, logs, .deploygen, __pycache__ and local
 * env files (`.env`, `.env.staging`, not `*.example`), so a copy holds what git would.
 */
export async function copyProject(srcDir: string, opts: CopyProjectOptions = {}): Promise<string> {
  const include = new Set<string>(opts.include ?? []);
  const skip = new Set<string>([...HEAVY_DIRS, ...RUNTIME_DIRS, ...(opts.exclude ?? [])].filter((n) => !include.has(n)));
  const dest = await fsp.mkdtemp(path.join(os.tmpdir(), opts.prefix ?? 'dg-e2e-'));
  const src = path.resolve(srcDir);
  await fsp.cp(src, dest, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (from) => {
      if (from === src) return true;
      const name = path.basename(from);
      return !skip.has(name) && !isLocalEnvFile(name);
    },
  });
  if (opts.linkFrom) {
    const from = path.resolve(opts.linkFrom);
    for (const rel of await findHeavyDirs(from)) {
      const target = path.join(dest, rel);
      if (!existsSync(path.dirname(target)) || existsSync(target)) continue;
      const name = path.basename(rel) as HeavyDir;
      const mode = opts.linkMode ?? 'auto';
      const hard = mode === 'hardlink' || (mode === 'auto' && name === 'node_modules');
      await cpTree(path.join(from, rel), target, hard);
    }
  }
  return dest;
}

/** In a test: {@link copyProject}, removed when the test finishes (kept on failure). */
export async function useProjectCopy(srcDir: string, opts: CopyProjectOptions = {}): Promise<string> {
  const holder: { dir?: string } = {};
  onTestFinished(async (ctx) => {
    if (!holder.dir) return;
    if (ctx.task.result?.state === 'fail') console.error(`[harness] project copy kept for inspection: ${holder.dir}`);
    else await fsp.rm(holder.dir, { recursive: true, force: true });
  }, 60_000);
  holder.dir = await copyProject(srcDir, opts);
  return holder.dir;
}

async function cpTree(from: string, to: string, hardlink: boolean): Promise<void> {
  if (hardlink) {
    const r = await run('cp', ['-al', from, to], { timeoutMs: 300_000 });
    if (r.code === 0) return;
    await fsp.rm(to, { recursive: true, force: true }); // e.g. EXDEV: fall back to a copy
  }
  await runOk('cp', ['-a', from, to], { timeoutMs: 300_000 });
}

/** Relative paths of node_modules/.next/.venv folders in `root` (not looking inside them). */
async function findHeavyDirs(root: string, maxDepth = 4): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const childRel = rel ? path.join(rel, e.name) : e.name;
      if ((HEAVY_DIRS as readonly string[]).includes(e.name)) out.push(childRel);
      else if (depth < maxDepth && !(RUNTIME_DIRS as readonly string[]).includes(e.name) && e.name !== '.git')
        await walk(childRel, depth + 1);
    }
  };
  await walk('', 1);
  return out.sort();
}

/** Write a KEY=VALUE env file (e.g. `.env.staging`) into `dir`; values are written verbatim. */
export async function writeEnvFile(dir: string, name: string, vars: Record<string, string>): Promise<string> {
  const file = path.join(dir, name);
  const body = Object.entries(vars)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('');
  await fsp.writeFile(file, body, { mode: 0o600 });
  return file;
}

// ---------------------------------------------------------------------------
// Prepared (installed + built) e2e fixture, shared by all tests of a run

/** Bump to invalidate every prepared tree when the preparation steps change. */
const PREPARE_VERSION = 1;

export interface PreparedProject {
  /** Installed and built copy of the fixture: pass as `copyProject(..., { linkFrom: dir })`. */
  dir: string;
  key: string;
  /** true when this call built it, false when it came from the cache. */
  built: boolean;
  timings: { venvMs: number; npmCiMs: number; nextBuildMs: number } | undefined;
}

export interface PrepareOptions {
  fixtureDir?: string;
  /** Where prepared trees live; default `$TMPDIR/deploygen-e2e-cache`. */
  cacheRoot?: string;
  /** How long to wait for another worker's build (default 15 min). */
  timeoutMs?: number;
}

/** Hash of everything the install and build depend on (sources, lockfile, Node, Python). */
export async function e2eCacheKey(fixtureDir: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`v${PREPARE_VERSION}\0${process.version}\0${process.platform}-${process.arch}\0`);
  try {
    hash.update(await fsp.realpath(SYSTEM_PYTHON));
  } catch {
    hash.update('no-python');
  }
  const skip = new Set<string>([...HEAVY_DIRS, ...RUNTIME_DIRS]);
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fsp.readdir(path.join(fixtureDir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (skip.has(e.name) || isLocalEnvFile(e.name)) continue;
      const childRel = path.join(rel, e.name);
      if (e.isDirectory()) await walk(childRel);
      else if (e.isFile()) files.push(childRel);
    }
  };
  for (const part of ['web', 'backend']) {
    if (existsSync(path.join(fixtureDir, part))) await walk(part);
  }
  files.sort();
  for (const rel of files) {
    hash.update(`${rel}\0`);
    hash.update(await fsp.readFile(path.join(fixtureDir, rel)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

const preparedByKey = new Map<string, Promise<PreparedProject>>();

/**
 * An installed and built copy of fixtures/e2e (backend/.venv, web/node_modules,
 * web/.next), made once and cached under os.tmpdir() by {@link e2eCacheKey}. Safe to call
 * from several vitest workers at once: one builds (under a lock dir, into a temp folder
 * renamed into place), the others wait. Allow a few minutes on a cold cache.
 */
export async function prepareE2eProject(opts: PrepareOptions = {}): Promise<PreparedProject> {
  const fixtureDir = path.resolve(opts.fixtureDir ?? E2E_FIXTURE);
  const cacheRoot = opts.cacheRoot ?? path.join(os.tmpdir(), 'deploygen-e2e-cache');
  const key = await e2eCacheKey(fixtureDir);
  const memoKey = `${cacheRoot}\0${key}`;
  let p = preparedByKey.get(memoKey);
  if (!p) {
    p = prepareUncached(fixtureDir, cacheRoot, key, opts.timeoutMs ?? 15 * 60_000);
    preparedByKey.set(memoKey, p);
    p.catch(() => preparedByKey.delete(memoKey));
  }
  return p;
}

async function prepareUncached(fixtureDir: string, cacheRoot: string, key: string, timeoutMs: number): Promise<PreparedProject> {
  let timings: PreparedProject['timings'];
  const { dir, built } = await buildOnce(
    cacheRoot,
    key,
    async (tmp) => {
      timings = await installAndBuild(fixtureDir, tmp);
      await fsp.writeFile(
        path.join(tmp, '.prepared.json'),
        JSON.stringify({ key, node: process.version, timings, at: new Date().toISOString() }, null, 2),
      );
    },
    { timeoutMs },
  );
  if (built) await pruneOldPrepared(cacheRoot, key);
  else await fsp.utimes(dir, new Date(), new Date()).catch(() => undefined); // mark as used
  if (!timings) {
    try {
      const meta = JSON.parse(await fsp.readFile(path.join(dir, '.prepared.json'), 'utf8')) as { timings?: PreparedProject['timings'] };
      timings = meta.timings;
    } catch {
      /* no metadata */
    }
  }
  return { dir, key, built, timings };
}

/** Best effort: drop prepared trees of other keys unused for a day (each is ~400 MB). */
async function pruneOldPrepared(cacheRoot: string, keep: string): Promise<void> {
  const dayAgo = Date.now() - 24 * 3600_000;
  for (const name of await fsp.readdir(cacheRoot).catch(() => [] as string[])) {
    if (name === keep || !/^[0-9a-f]{16}$/.test(name)) continue;
    const dir = path.join(cacheRoot, name);
    try {
      if ((await fsp.stat(dir)).mtimeMs < dayAgo) await fsp.rm(dir, { recursive: true, force: true });
    } catch {
      /* raced with another worker */
    }
  }
}

async function installAndBuild(fixtureDir: string, tmp: string): Promise<NonNullable<PreparedProject['timings']>> {
  if (!existsSync(SYSTEM_PYTHON)) {
    throw new Error(`${SYSTEM_PYTHON} not found: apt-get install python3 python3-venv python3-fastapi python3-uvicorn`);
  }
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.cp(fixtureDir, tmp, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (from) => {
      const name = path.basename(from);
      return from === fixtureDir || (!(HEAVY_DIRS as readonly string[]).includes(name) &&
        !(RUNTIME_DIRS as readonly string[]).includes(name) && !isLocalEnvFile(name));
    },
  });
  const env = cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', NO_COLOR: '1', CI: '1' });
  const backend = path.join(tmp, 'backend');
  const web = path.join(tmp, 'web');

  let t = Date.now();
  await runOk(SYSTEM_PYTHON, ['-m', 'venv', '--system-site-packages', '.venv'], { cwd: backend, env, timeoutMs: 300_000 });
  const venvMs = Date.now() - t;
  await runOk('.venv/bin/python', ['-c', 'import fastapi, uvicorn, e2eapp.server'], {
    cwd: backend,
    env: { ...env, PYTHONPATH: '.' },
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}\nhint: apt-get install python3-venv python3-fastapi python3-uvicorn`);
  });

  t = Date.now();
  await runOk('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: web, env, timeoutMs: 600_000 });
  const npmCiMs = Date.now() - t;

  t = Date.now();
  await runOk('npm', ['run', 'build'], { cwd: web, env, timeoutMs: 600_000 });
  const nextBuildMs = Date.now() - t;
  if (!existsSync(path.join(web, '.next', 'BUILD_ID'))) throw new Error('next build left no .next/BUILD_ID');
  return { venvMs, npmCiMs, nextBuildMs };
}

/**
 * Make `${cacheRoot}/${key}` exactly once across processes: the first caller takes the lock
 * dir `${key}.lock` (mkdir is atomic), builds into a private temp folder and renames it into
 * place (atomic); others poll until it appears. A lock whose owner pid is dead is stolen.
 */
export async function buildOnce(
  cacheRoot: string,
  key: string,
  build: (tmpDir: string) => Promise<void>,
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<{ dir: string; built: boolean }> {
  await fsp.mkdir(cacheRoot, { recursive: true });
  const final = path.join(cacheRoot, key);
  const lock = path.join(cacheRoot, `${key}.lock`);
  const deadline = Date.now() + (opts.timeoutMs ?? 15 * 60_000);
  for (;;) {
    if (existsSync(final)) return { dir: final, built: false };
    let locked = false;
    try {
      await fsp.mkdir(lock);
      locked = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (locked) {
      const tmp = path.join(cacheRoot, `${key}.build-${process.pid}-${randomBytes(4).toString('hex')}`);
      try {
        await fsp.writeFile(path.join(lock, 'owner'), `${process.pid}\n`);
        if (existsSync(final)) return { dir: final, built: false }; // finished just before we locked
        await removeDeadBuilds(cacheRoot, key);
        await fsp.mkdir(tmp, { recursive: true });
        await build(tmp);
        await fsp.rename(tmp, final);
        return { dir: final, built: true };
      } finally {
        await fsp.rm(tmp, { recursive: true, force: true });
        await fsp.rm(lock, { recursive: true, force: true });
      }
    }
    if (await lockIsStale(lock)) {
      await fsp.rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`buildOnce: gave up waiting for ${lock}`);
    await sleep(opts.pollMs ?? 500);
  }
}

/** Remove `${key}.build-<pid>-*` folders left by a builder that died (we hold the lock). */
async function removeDeadBuilds(cacheRoot: string, key: string): Promise<void> {
  for (const name of await fsp.readdir(cacheRoot)) {
    const m = name.startsWith(`${key}.build-`) ? /\.build-(\d+)-/.exec(name) : null;
    if (m && !isAlive(Number(m[1]))) {
      await fsp.rm(path.join(cacheRoot, name), { recursive: true, force: true });
    }
  }
}

async function lockIsStale(lock: string): Promise<boolean> {
  try {
    const text = (await fsp.readFile(path.join(lock, 'owner'), 'utf8')).trim();
    // An empty owner file is one being written right now (writeFile truncates first): not stale.
    if (!/^\d+$/.test(text)) throw new Error('owner file not written yet');
    return !isAlive(Number(text));
  } catch {
    // No owner file yet: the owner is between mkdir and writeFile, unless that was long ago.
    try {
      const st = await fsp.stat(lock);
      return Date.now() - st.mtimeMs > 60_000;
    } catch {
      return false; // lock vanished: loop again
    }
  }
}

/** Synchronous check used by tests: is `cmd` on PATH? */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$1" >/dev/null 2>&1`, 'sh', cmd]).status === 0;
}
