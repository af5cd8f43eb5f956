/**
 * The end-to-end project under test, set up the way a staging host would have it: a fresh copy
 * of fixtures/e2e on free ports, generated in place, with its env file and its own PM2_HOME.
 * Built on harness.ts (real processes, nothing mocked).
 */
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { generateIn } from '../helpers/generate.js';
import {
  E2E_FIXTURE,
  freePorts,
  httpGet,
  killPm2,
  pm2Env,
  pm2List,
  prepareE2eProject,
  run,
  usePm2Home,
  useProjectCopy,
  waitForHttp,
  writeEnvFile,
  type Pm2Handle,
  type Pm2Process,
  type RunOptions,
  type RunResult,
} from './harness.js';

export const PROJECT = 'e2eapp';
export const ENV = 'staging';
export const NAMESPACE = `${PROJECT}-${ENV}`;
export const BACKEND = `${NAMESPACE}-backend`;
export const FRONTEND = `${NAMESPACE}-frontend`;
export const API_KEY = 'e2e-real-key-123';

export type ScriptName = 'deploy' | 'start' | 'stop' | 'health-check' | 'install-systemd' | 'rollback';

export interface SetupOptions {
  /** Start from a tree with no .venv, node_modules or .next (test 1). Default: hard-link them from the prepared copy. */
  fresh?: boolean;
  /** Edits to deploygen.yaml after the ports are rewritten (before generating). */
  editManifest?: (yaml: string) => string;
  /** Contents of .env.staging; null: no env file. Default: the required key with a real value. */
  envVars?: Record<string, string> | null;
  /** Reuse a PM2 home (default: a fresh one, killed when the test finishes). */
  pm2?: Pm2Handle;
  /**
   * Set the environment's `pm2Home` in the manifest to this project-relative folder and use it
   * (its daemon is killed when the test finishes).
   */
  projectPm2Home?: string;
}

export interface E2eProject {
  root: string;
  backendPort: number;
  webPort: number;
  pm2: Pm2Handle;
  /** Environment for the generated scripts: PM2_HOME, pm2 on PATH, NO_COLOR, nothing from vitest. */
  env: NodeJS.ProcessEnv;
  script(name: ScriptName): string;
  /** Run a generated script (bash deploy/scripts/NAME-staging.sh ARGS) in the project root. */
  runScript(name: ScriptName, args?: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** deploy-staging.sh, timed: prints `[e2e] <label>: deploy took N ms`. */
  deploy(label: string, args?: readonly string[], opts?: RunOptions): Promise<RunResult>;
  backendUrl(p?: string): string;
  webUrl(p?: string): string;
  /** This project's PM2 processes (namespace e2eapp-staging), by name. */
  apps(): Promise<Pm2Process[]>;
}

/** Replace exactly one `port: N` line; fails loudly if the fixture changed. */
function replacePort(yaml: string, from: number, to: number): string {
  const needle = new RegExp(`^(\\s*port:\\s*)${from}\\s*$`, 'm');
  expect(yaml, `deploygen.yaml has a "port: ${from}" line`).toMatch(needle);
  return yaml.replace(needle, `$1${to}`);
}

export async function setupProject(opts: SetupOptions = {}): Promise<E2eProject> {
  const linkFrom = opts.fresh ? undefined : (await prepareE2eProject()).dir;
  const root = await useProjectCopy(E2E_FIXTURE, linkFrom ? { linkFrom } : {});
  const [backendPort, webPort] = (await freePorts(2)) as [number, number];
  const manifest = path.join(root, 'deploygen.yaml');
  let yaml = await fsp.readFile(manifest, 'utf8');
  yaml = replacePort(replacePort(yaml, 14200, backendPort), 14100, webPort);
  if (opts.projectPm2Home !== undefined) {
    expect(yaml).toMatch(/^ {4}requiredEnv: .*$/m);
    yaml = yaml.replace(/^( {4}requiredEnv: .*)$/m, `$1\n    pm2Home: ${opts.projectPm2Home}`);
  }
  if (opts.editManifest) yaml = opts.editManifest(yaml);
  await fsp.writeFile(manifest, yaml);
  await generateIn(root);
  if (opts.envVars !== null) await writeEnvFile(root, '.env.staging', opts.envVars ?? { E2E_API_KEY: API_KEY });
  const pm2 = opts.projectPm2Home !== undefined ? useProjectPm2Home(path.join(root, opts.projectPm2Home)) : (opts.pm2 ?? (await usePm2Home()));
  return projectAt(root, { backendPort, webPort, pm2 });
}

/** A PM2 home inside the project: its daemon is killed when the test finishes, pass or fail. */
function useProjectPm2Home(home: string): Pm2Handle {
  onTestFinished(async () => {
    await killPm2(home);
  }, 60_000);
  return { home, env: pm2Env(home) };
}

/** The handle for a generated project at `root` (also after it was moved). */
export function projectAt(root: string, p: { backendPort: number; webPort: number; pm2: Pm2Handle }): E2eProject {
  const script = (name: ScriptName) => path.join(root, 'deploy', 'scripts', `${name}-${ENV}.sh`);
  const runScript = (name: ScriptName, args: readonly string[] = [], o: RunOptions = {}) =>
    run('bash', [script(name), ...args], { cwd: root, env: p.pm2.env, timeoutMs: 240_000, ...o });
  return {
    root,
    backendPort: p.backendPort,
    webPort: p.webPort,
    pm2: p.pm2,
    env: p.pm2.env,
    script,
    runScript,
    async deploy(label, args = [], o = {}) {
      const r = await runScript('deploy', args, o);
      const argText = args.length > 0 ? ` ${args.join(' ')}` : '';
      console.log(`[e2e] ${label}: deploy-staging.sh${argText} took ${r.ms} ms (exit ${r.code})`);
      return r;
    },
    backendUrl: (x = '/health') => `http://127.0.0.1:${p.backendPort}${x}`,
    webUrl: (x = '/') => `http://127.0.0.1:${p.webPort}${x}`,
    apps: async () => (await pm2List(p.pm2.env)).filter((a) => a.namespace === NAMESPACE).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** Both apps answer: backend /health with {"status":"ok"}, frontend / with its page. */
export async function expectServing(project: E2eProject, timeoutMs = 5000): Promise<void> {
  const health = await waitForHttp(project.backendUrl('/health'), timeoutMs);
  expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
  const page = await waitForHttp(project.webUrl('/'), timeoutMs);
  expect(page.body).toContain('e2eapp web');
}

/** A compact description of a failed script run for assertion messages. */
export function describeRun(r: RunResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' TIMED OUT' : ''} after ${r.ms} ms\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Expect a script run to have succeeded, printing its output if not. */
export function expectOk(r: RunResult): void {
  expect(r.code, describeRun(r)).toBe(0);
}

/** pid and restart count of each app, to prove that nothing was restarted. */
export async function appState(project: E2eProject): Promise<Record<string, { pid: number; restarts: number; status: string }>> {
  const out: Record<string, { pid: number; restarts: number; status: string }> = {};
  for (const a of await project.apps()) out[a.name] = { pid: a.pid, restarts: a.restarts, status: a.status };
  return out;
}

export interface PollSample {
  url: string;
  at: number;
  ok: boolean;
  detail: string;
}

export interface Poller {
  /** Stop polling; resolves with every sample taken. */
  stop(): Promise<PollSample[]>;
}

/** Poll each URL every `intervalMs` (sequentially, one request in flight per URL) until stopped. */
export function pollUrls(urls: readonly string[], intervalMs = 200): Poller {
  const samples: PollSample[] = [];
  let stopped = false;
  const loops = urls.map(async (url) => {
    while (!stopped) {
      const at = Date.now();
      const r = await httpGet(url, 4000);
      const ok = r.kind === 'response' && r.status >= 200 && r.status < 300;
      samples.push({ url, at, ok, detail: r.kind === 'response' ? `HTTP ${r.status}` : r.code });
      await new Promise((res) => setTimeout(res, intervalMs));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return samples.sort((a, b) => a.at - b.at);
    },
  };
}

/** The longest run of consecutive failed samples of one URL, in ms (0 when none failed). */
export function longestOutageMs(samples: readonly PollSample[], url: string): number {
  let longest = 0;
  let start: number | undefined;
  for (const s of samples.filter((x) => x.url === url)) {
    if (!s.ok) start ??= s.at;
    else if (start !== undefined) {
      longest = Math.max(longest, s.at - start);
      start = undefined;
    }
  }
  if (start !== undefined) longest = Math.max(longest, Date.now() - start);
  return longest;
}

/** Lines of a file, or [] when it does not exist. */
export async function readLines(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await fsp.readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

/** Removes `dir` when the current test finishes (kept on failure, like useProjectCopy). */
export function removeWhenDone(dir: string): void {
  onTestFinished(async (ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`[e2e] kept for inspection: ${dir}`);
    else await fsp.rm(dir, { recursive: true, force: true });
  });
}
