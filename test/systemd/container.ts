/**
 * A real systemd (the host's own systemd 252) booted with systemd-nspawn on a throw-away overlay
 * of the host's `/`, for testing generated units under systemd itself. Recipe and measurements:
 * /work/shared/notes/real-systemd.md. Root only, Linux only.
 *
 *   const box = useContainer({ upperLayer: 'disk' });        // booted in beforeAll, stopped in afterAll
 *   await box.ready;
 *   await box.exec(['systemctl', 'start', 'x.service']);
 *   await box.httpGet('http://127.0.0.1:8080/');            // the container's own loopback
 *   await box.reboot();
 *
 * Layout on the host (one folder per container, deleted by stop()):
 *   /var/tmp/deploygen-container-NAME/
 *     launch.sh   the launcher: private mount namespace -> overlay -> systemd-nspawn --boot
 *     console.log the container's console
 *     shared/     bound at /srv/NAME inside (outside the container's /tmp, which is a tmpfs)
 *     layer/      the overlay's upper and work folders (a tmpfs mounted inside the launcher's
 *                 namespace, or this folder on disk when the container must survive a reboot)
 *     root/       the overlay's mount point (mounted only inside the launcher's namespace)
 * plus cgroups /sys/fs/cgroup/{systemd,unified}/NAME for the launcher (nspawn puts payload/
 * and supervisor/ under them).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { REPO_ROOT, run, waitFor, type RunResult } from '../e2e/harness.js';

export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where the repository's PM2 is linked inside the container (the lower layer shows the repository). */
export const CONTAINER_PM2 = '/usr/local/bin/pm2';
const CGROUP_HIERARCHIES = ['systemd', 'unified'] as const;
const STATE_PARENT = '/var/tmp';
const STATE_PREFIX = 'deploygen-container-';

export interface ContainerOptions {
  /** Machine name and hostname; also names the state folder and cgroups. Default: dg-<random>. */
  name?: string;
  /** 'tmpfs' (default): nothing written to disk. 'disk': a folder kept across reboot(). */
  upperLayer?: 'tmpfs' | 'disk';
  /** Created inside the container (useradd in the overlay: the host's /etc/passwd is untouched). */
  serviceUser?: string;
  /** Milliseconds to wait for `systemctl is-system-running --wait` (default 90 000). */
  bootTimeoutMs?: number;
}

export interface ExecOptions {
  /** Run as this user (runuser -u USER); default root. */
  user?: string;
  /** Added to the clean environment (PATH, HOME, USER, LOGNAME). */
  env?: Record<string, string>;
  /** Working directory inside the container. */
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

export interface HttpAnswer {
  /** 0 when nothing answered (curl's http_code). */
  status: number;
  body: string;
}

export interface Timings {
  bootMs: number[];
  rebootMs: number[];
  teardownMs?: number;
}

export interface Container {
  readonly name: string;
  /** Host folder bound at {@link guestShared} inside. */
  readonly hostShared: string;
  /** `/srv/NAME` inside the container. */
  readonly guestShared: string;
  readonly stateDir: string;
  readonly serviceUser: string | undefined;
  /** Host pid of the container's PID 1 (changes on reboot). */
  readonly pid: number;
  readonly timings: Timings;
  /** Run a command inside (nsenter into all of PID 1's namespaces); never throws on exit code. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<RunResult>;
  /** {@link exec} that throws with both outputs unless the exit code is 0. */
  execOk(argv: readonly string[], opts?: ExecOptions): Promise<RunResult>;
  /** bash -c SCRIPT inside. */
  sh(script: string, opts?: ExecOptions): Promise<RunResult>;
  systemctl(...args: string[]): Promise<RunResult>;
  /** journalctl -u UNIT --no-pager -o cat (the unit's messages, in order). */
  journal(unit: string): Promise<string>;
  /** GET from inside the container's network namespace (curl on the host, nsenter -n). */
  httpGet(url: string, timeoutSeconds?: number): Promise<HttpAnswer>;
  /** Power off, wait for nspawn to exit, boot again on the same on-disk upper layer. */
  reboot(): Promise<void>;
  /** Power off (SIGKILL after a deadline), remove cgroups and every folder; idempotent. */
  stop(): Promise<void>;
}

export interface Leftovers {
  nspawnProcesses: number[];
  cgroups: string[];
  mounts: string[];
  stateDirExists: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The launcher run by `unshare --mount --propagation private`: everything it mounts dies with it. */
const REPO_IN_CONTAINER = '/opt/deploygen-repo';
const LAUNCHER = String.raw`set -euo pipefail
NAME=$1 STATE=$2 LAYER_KIND=$3 FIRST_BOOT=$4 REPO_IN_CONTAINER=${REPO_IN_CONTAINER}
# Own cgroups, so nspawn's payload/ and supervisor/ are not created at the hierarchies' roots.
for h in systemd unified; do
  mkdir -p "/sys/fs/cgroup/$h/$NAME"
  echo $$ >"/sys/fs/cgroup/$h/$NAME/cgroup.procs"
done
# nspawn writes lock and propagation folders under /run, which is on disk on the host.
mount -t tmpfs tmpfs /run
LAYER=$STATE/layer ROOT=$STATE/root
mkdir -p "$LAYER" "$ROOT"
if [[ $LAYER_KIND == tmpfs ]]; then mount -t tmpfs -o mode=0755 tmpfs "$LAYER"; fi
mkdir -p "$LAYER/upper" "$LAYER/work"
mount -t overlay -o "lowerdir=/,upperdir=$LAYER/upper,workdir=$LAYER/work" overlay "$ROOT"
if [[ $FIRST_BOOT == 1 ]]; then
  # The host's own enabled services and timers do not start in the container.
  for wanted in /etc/systemd/system/*.wants/*.service /etc/systemd/system/*.wants/*.timer; do
    [[ -e $wanted || -L $wanted ]] || continue
    unit=$(basename "$wanted")
    ln -sfn /dev/null "$ROOT/etc/systemd/system/$unit"
  done
  ln -sfn /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
  systemd-id128 new >"$ROOT/etc/machine-id"
  echo "$NAME" >"$ROOT/etc/hostname"
  ln -sfn "$5" "$ROOT/usr/local/bin/pm2"
fi
# The repository (PM2 comes from its node_modules) at a fixed path: nspawn hides the host's /tmp,
# where a checkout may live.
mkdir -p "$ROOT$REPO_IN_CONTAINER"
exec systemd-nspawn -D "$ROOT" -M "$NAME" --register=no --keep-unit --private-network \
  --console=read-only --kill-signal=SIGRTMIN+4 --bind="$STATE/shared:/srv/$NAME" \
  --bind-ro="$6:$REPO_IN_CONTAINER" --boot
`;

// Containers to kill if the test process exits without stopping them (crash, bail, Ctrl-C).
const liveContainers = new Set<{ name: string; stateDir: string; nspawnPid: () => number | undefined }>();
let exitGuardInstalled = false;
function installExitGuard(): void {
  if (exitGuardInstalled) return;
  exitGuardInstalled = true;
  const reap = (): void => {
    for (const box of liveContainers) killSync(box.name, box.stateDir, box.nspawnPid());
    liveContainers.clear();
  };
  process.once('exit', reap);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      reap();
      process.exit(130);
    });
  }
}

/** Last-resort teardown (synchronous, for process exit): SIGKILL, then remove cgroups and folders. */
function killSync(name: string, stateDir: string, nspawnPid: number | undefined): void {
  const pids = new Set<number>(nspawnPid !== undefined ? [nspawnPid] : []);
  for (const pid of nspawnProcesses(name)) pids.add(pid);
  for (const pid of pids) {
    const init = containerInit(pid);
    for (const target of [init, pid]) {
      if (target === undefined) continue;
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  const deadline = Date.now() + 10_000;
  while (nspawnProcesses(name).length > 0 && Date.now() < deadline) spawnSync('sleep', ['0.1']);
  for (let i = 0; i < 50 && removeCgroups(name).length > 0; i++) spawnSync('sleep', ['0.1']);
  rmSync(stateDir, { recursive: true, force: true });
}

/** Live systemd-nspawn processes started for machine `name`. */
export function nspawnProcesses(name: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (path.basename(argv[0] ?? '') !== 'systemd-nspawn') continue;
    const machine = argv.indexOf('-M');
    if (machine >= 0 && argv[machine + 1] === name && !isZombie(Number(entry))) found.push(Number(entry));
  }
  return found;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return true;
  }
}

/** The child of nspawn that is PID 1 of its own PID namespace (its NSpid line ends in 1). */
function containerInit(nspawnPid: number): number | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${nspawnPid}/task`);
  } catch {
    return undefined;
  }
  for (const task of tasks) {
    let children: string[];
    try {
      children = readFileSync(`/proc/${nspawnPid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      continue;
    }
    for (const child of children) {
      try {
        const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
        if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return Number(child);
      } catch {
        /* gone */
      }
    }
  }
  return undefined;
}

/** Cgroup folders named after the container, deepest first. */
function containerCgroups(name: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
    found.push(dir);
  };
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const top = path.join('/sys/fs/cgroup', hierarchy, name);
    if (existsSync(top)) walk(top);
  }
  return found;
}

/** rmdir every cgroup of the container (deepest first); returns those still there. */
function removeCgroups(name: string): string[] {
  for (const dir of containerCgroups(name)) {
    try {
      rmdirSync(dir);
    } catch {
      /* busy (a process still in it) or gone */
    }
  }
  return containerCgroups(name);
}

/** What a container named `name` could have left on the host: must be all empty after stop(). */
export function leftovers(name: string): Leftovers {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(name));
  return {
    nspawnProcesses: nspawnProcesses(name),
    cgroups: containerCgroups(name),
    mounts,
    stateDirExists: existsSync(path.join(STATE_PARENT, STATE_PREFIX + name)),
  };
}

/** Boot a container and wait until systemd reports running (or degraded). Call stop() when done. */
export async function bootContainer(opts: ContainerOptions = {}): Promise<Container> {
  const name = opts.name ?? `dg-${randomBytes(4).toString('hex')}`;
  if (!/^[a-z][a-z0-9-]{1,40}$/.test(name)) throw new Error(`container name ${name}: use [a-z][a-z0-9-]*`);
  const upperLayer = opts.upperLayer ?? 'tmpfs';
  const bootTimeoutMs = opts.bootTimeoutMs ?? 90_000;
  const stateDir = path.join(STATE_PARENT, STATE_PREFIX + name);
  const hostShared = path.join(stateDir, 'shared');
  const guestShared = `/srv/${name}`;
  await fsp.mkdir(hostShared, { recursive: true, mode: 0o755 });
  await fsp.chmod(stateDir, 0o700);
  const launcher = path.join(stateDir, 'launch.sh');
  await fsp.writeFile(launcher, LAUNCHER);
  const repoRoot = await fsp.realpath(REPO_ROOT);
  const pm2Target = path.join(REPO_IN_CONTAINER, path.relative(repoRoot, await fsp.realpath(path.join(REPO_ROOT, 'node_modules', '.bin', 'pm2'))));

  let nspawnPid: number | undefined;
  let initPid = 0;
  let stopped = false;
  const timings: Timings = { bootMs: [], rebootMs: [] };
  const entry = { name, stateDir, nspawnPid: () => nspawnPid };
  installExitGuard();
  liveContainers.add(entry);

  const launch = async (firstBoot: boolean): Promise<void> => {
    const started = Date.now();
    const consoleLog = await fsp.open(path.join(stateDir, 'console.log'), 'a');
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', 'bash', launcher, name, stateDir, upperLayer, firstBoot ? '1' : '0', pm2Target, repoRoot],
      { detached: true, stdio: ['ignore', consoleLog.fd, consoleLog.fd] },
    );
    await consoleLog.close();
    child.unref();
    child.once('error', () => undefined);
    nspawnPid = child.pid;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let exitCode: number | null | undefined;
    void exited.then((code) => (exitCode = code));
    initPid = await waitFor(
      () => {
        if (exitCode !== undefined) throw new Error(`systemd-nspawn exited with ${exitCode} before booting:\n${consoleTail()}`);
        const pid = nspawnPid !== undefined && nspawnProcesses(name).includes(nspawnPid) ? containerInit(nspawnPid) : undefined;
        return pid !== undefined && existsSync(`/proc/${pid}/root/run/systemd/private`) ? pid : undefined;
      },
      bootTimeoutMs,
      { what: `systemd in container ${name} to open its private bus` },
    );
    const state = await execIn(['systemctl', 'is-system-running', '--wait'], { timeoutMs: bootTimeoutMs });
    const status = state.stdout.trim();
    if (status !== 'running' && status !== 'degraded') {
      throw new Error(`container ${name} booted into state "${status}" (${state.stderr.trim()})\n${consoleTail()}`);
    }
    (firstBoot ? timings.bootMs : timings.rebootMs).push(Date.now() - started);
  };

  const consoleTail = (): string => {
    try {
      return readFileSync(path.join(stateDir, 'console.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  };

  const nsenterArgs = (opts: ExecOptions, argv: readonly string[]): string[] => {
    const user = opts.user ?? 'root';
    const home = user === 'root' ? '/root' : `/home/${user}`;
    const env = [`PATH=${CONTAINER_PATH}`, `HOME=${home}`, `USER=${user}`, `LOGNAME=${user}`, ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`)];
    // nsenter --wd opens its folder before entering the namespaces: env -C changes folder inside.
    const enter = ['-t', String(initPid), '-a', '--'];
    const asUser = user === 'root' ? [] : ['/usr/sbin/runuser', '-u', user, '--'];
    return [...enter, ...asUser, '/usr/bin/env', '-i', ...(opts.cwd ? ['-C', opts.cwd] : []), ...env, ...argv];
  };

  const execIn = (argv: readonly string[], o: ExecOptions = {}): Promise<RunResult> => {
    if (stopped) throw new Error(`container ${name} is stopped`);
    return run('nsenter', nsenterArgs(o, argv), { timeoutMs: o.timeoutMs ?? 120_000, ...(o.input !== undefined ? { input: o.input } : {}) });
  };

  const execOk = async (argv: readonly string[], o: ExecOptions = {}): Promise<RunResult> => {
    const r = await execIn(argv, o);
    if (r.code !== 0) {
      throw new Error(
        `in container ${name}${o.user ? ` as ${o.user}` : ''}: ${argv.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''})\n` +
          `--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
      );
    }
    return r;
  };

  /** poweroff --no-block, then wait for nspawn to exit; SIGKILL its container after `deadlineMs`. */
  const powerOff = async (deadlineMs: number): Promise<void> => {
    const pid = nspawnPid;
    if (pid === undefined || !nspawnProcesses(name).includes(pid)) return;
    await execIn(['systemctl', 'poweroff', '--no-block'], { timeoutMs: 10_000 }).catch(() => undefined);
    const deadline = Date.now() + deadlineMs;
    while (nspawnProcesses(name).length > 0 && Date.now() < deadline) await sleep(100);
    if (nspawnProcesses(name).length > 0) {
      killSync(name, path.join(stateDir, 'nothing-to-remove'), pid);
    }
  };

  const box: Container = {
    name,
    hostShared,
    guestShared,
    stateDir,
    serviceUser: opts.serviceUser,
    get pid() {
      return initPid;
    },
    timings,
    exec: execIn,
    execOk,
    sh: (script, o) => execIn(['bash', '-c', script], o),
    systemctl: (...args) => execIn(['systemctl', '--no-pager', ...args]),
    async journal(unit) {
      return (await execIn(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout;
    },
    async httpGet(url, timeoutSeconds = 5) {
      const r = await run('nsenter', ['-t', String(initPid), '-n', '--', 'curl', '-sS', '--max-time', String(timeoutSeconds), '-w', '\n%{http_code}', url], {
        timeoutMs: (timeoutSeconds + 5) * 1000,
      });
      const cut = r.stdout.lastIndexOf('\n');
      return { status: Number(r.stdout.slice(cut + 1)) || 0, body: cut >= 0 ? r.stdout.slice(0, cut) : '' };
    },
    async reboot() {
      if (upperLayer !== 'disk') throw new Error(`container ${name} has its upper layer on a tmpfs: boot it with upperLayer: 'disk' to reboot`);
      await powerOff(60_000);
      for (let i = 0; i < 50 && removeCgroups(name).length > 0; i++) await sleep(100);
      await launch(false);
    },
    async stop() {
      if (stopped) return;
      const started = Date.now();
      try {
        await powerOff(30_000);
      } finally {
        stopped = true;
        for (let i = 0; i < 50 && removeCgroups(name).length > 0; i++) await sleep(100);
        await fsp.rm(stateDir, { recursive: true, force: true });
        liveContainers.delete(entry);
        timings.teardownMs = Date.now() - started;
      }
    },
  };

  try {
    await launch(true);
    if (opts.serviceUser) {
      await execOk(['useradd', '--system', '--create-home', '--home-dir', `/home/${opts.serviceUser}`, '--shell', '/bin/bash', opts.serviceUser]);
    }
  } catch (err) {
    await box.stop();
    throw err;
  }
  return box;
}

/**
 * Copy a host folder into the shared folder (outside the container's /tmp) and give it to
 * `owner`; returns its path inside the container.
 */
export async function copyIntoContainer(box: Container, hostDir: string, as: string, owner?: string): Promise<string> {
  const target = path.join(box.hostShared, as);
  await fsp.cp(hostDir, target, { recursive: true, verbatimSymlinks: true });
  const guest = `${box.guestShared}/${as}`;
  if (owner) await box.execOk(['chown', '-R', `${owner}:`, guest]);
  return guest;
}

export interface ContainerHandle extends Container {
  /** Resolves when the container has booted (beforeAll). */
  readonly ready: Promise<void>;
}

/**
 * Boot a container for a test file: booted in beforeAll, stopped in afterAll (also on failure,
 * and by the process-exit guard if the run dies). The handle forwards to the live container.
 */
export function useContainer(opts: ContainerOptions = {}): ContainerHandle {
  let box: Container | undefined;
  let resolveReady!: () => void;
  let rejectReady!: (err: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  ready.catch(() => undefined);
  beforeAll(async () => {
    try {
      box = await bootContainer(opts);
      resolveReady();
    } catch (err) {
      rejectReady(err);
      throw err;
    }
  }, (opts.bootTimeoutMs ?? 90_000) + 30_000);
  afterAll(async () => {
    if (box) {
      await box.stop();
      console.log(`[container] ${box.name}: boot ${box.timings.bootMs.join(', ')} ms, reboot ${box.timings.rebootMs.join(', ') || '-'} ms, teardown ${box.timings.teardownMs} ms`);
    }
  }, 90_000);
  const live = (): Container => {
    if (!box) throw new Error('the container is not booted yet (await handle.ready in a test or beforeAll)');
    return box;
  };
  return new Proxy({ ready } as ContainerHandle, {
    get(target, prop) {
      if (prop === 'ready') return target.ready;
      const value = (live() as unknown as Record<string | symbol, unknown>)[prop];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(live()) : value;
    },
  });
}
