// The systemd unit's command lines, install-systemd, the health-check timer and deploy --dry-run.
// No systemd runs here (test/systemd/ boots a real one): the unit's command lines are resolved for
// the project's root exactly as systemd would and run by hand with the unit's environment; where the
// scripts must talk to systemd, they run in a mount namespace that looks like a booted host with
// the units installed, and a stand-in `systemctl` on PATH records its calls and runs what the unit
// would run.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { shellQuote } from '../../src/quote.js';
import { PM2_BIN, cleanEnv, findPm2Processes, httpGet, isPortFree, killPm2, run } from './harness.js';
import {
  BACKEND,
  FRONTEND,
  NAMESPACE,
  appState,
  describeRun,
  expectOk,
  expectServing,
  readLines,
  removeWhenDone,
  setupProject,
  type E2eProject,
  type ScriptName,
} from './project.js';
import {
  SYSTEMD_DEFAULT_PATH,
  expandSpecifiers,
  readUnitFile,
  resolveEnvironment,
  resolveExec,
  unitValues,
  type ExecCommand,
  type InstanceContext,
  type UnitFile,
} from './systemd-unit.js';

const UNIT_TEMPLATE = `${NAMESPACE}@.service`;
const HEALTH_TEMPLATE = `${NAMESPACE}-health@.service`;
const TIMER_TEMPLATE = `${NAMESPACE}-health@.timer`;

const escapePath = (root: string): string =>
  execFileSync('systemd-escape', ['--path', '--', root], { encoding: 'utf8' }).trim();

const tempDir = async (prefix: string): Promise<string> => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  removeWhenDone(dir);
  return dir;
};

/**
 * A folder standing in for /usr/local/bin of a host where pm2 is installed globally (`npm i -g
 * pm2`): systemd's default PATH has no node_modules/.bin. `pm2` there logs each call (with the
 * value of DG_CALLER) before running the real one.
 */
async function globalPm2Dir(log: string): Promise<string> {
  const dir = await tempDir('dg-bin-');
  await fsp.writeFile(
    path.join(dir, 'pm2'),
    `#!/usr/bin/env bash\n{ printf '%s\\x1f' "\${DG_CALLER:-script}" "$@"; printf '\\n'; } >>${shellQuote(log)}\nexec ${shellQuote(PM2_BIN)} "$@"\n`,
    { mode: 0o755 },
  );
  return dir;
}

/** Calls recorded by a stand-in (one array of arguments per call). */
async function calls(log: string): Promise<string[][]> {
  return (await readLines(log)).map((line) => line.split('\x1f').slice(0, -1));
}

interface ServiceContext {
  unit: UnitFile;
  ctx: InstanceContext;
  /** The environment systemd would give the service's processes. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  exec(key: 'ExecStart' | 'ExecReload' | 'ExecStop'): ExecCommand[];
}

/**
 * A unit of the project resolved for its root: instance, Environment=, WorkingDirectory=, and the
 * environment of its processes: systemd's default PATH (with `pathDir` first, standing in for
 * /usr/local/bin), HOME/USER/LOGNAME/SHELL of the service user, and the unit's Environment= lines.
 */
async function resolveService(project: E2eProject, template: string, pathDir: string, home: string): Promise<ServiceContext> {
  const unit = readUnitFile(path.join(project.root, 'deploy', 'systemd', template));
  const ctx: InstanceContext = { template, instance: escapePath(project.root) };
  const unitEnv = resolveEnvironment(unit, 'Service', ctx);
  const user = os.userInfo().username;
  const env: NodeJS.ProcessEnv = {
    PATH: `${pathDir}:${SYSTEMD_DEFAULT_PATH}`,
    HOME: home,
    USER: user,
    LOGNAME: user,
    SHELL: '/bin/sh',
    LANG: 'C.UTF-8',
    ...unitEnv,
  };
  const [workdir] = unitValues(unit, 'Service', 'WorkingDirectory');
  expect(workdir).toBeDefined();
  return {
    unit,
    ctx,
    env,
    cwd: expandSpecifiers(workdir as string, ctx),
    exec: (key) => resolveExec(unit, key, ctx, env as Record<string, string>),
  };
}

/** What systemd adds to the environment of ExecStop= commands (after a successful start). */
const EXEC_STOP_ENV = { SERVICE_RESULT: 'success', EXIT_CODE: 'exited', EXIT_STATUS: '0' };

/** Run resolved command lines one after the other, as systemd does, stopping at the first failure. */
async function runExec(service: ServiceContext, key: 'ExecStart' | 'ExecReload' | 'ExecStop'): Promise<{ ms: number; code: number | null; out: string }> {
  const started = Date.now();
  let out = '';
  const env = key === 'ExecStop' ? { ...service.env, ...EXEC_STOP_ENV } : service.env;
  for (const cmd of service.exec(key)) {
    const r = await run(cmd.path, cmd.argv.slice(1), { cwd: service.cwd, env, timeoutMs: 240_000 });
    out += r.stdout + r.stderr;
    if (r.code !== 0 && !cmd.ignoreFailure) return { ms: Date.now() - started, code: r.code, out: `${out}\n${describeRun(r)}` };
  }
  return { ms: Date.now() - started, code: 0, out };
}

/** Every file, folder and symlink under `dir`: path -> content hash, "dir" or "-> target". */
async function treeSnapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of (await fsp.readdir(dir, { recursive: true })).map(String).sort()) {
    const full = path.join(dir, rel);
    const st = await fsp.lstat(full);
    if (st.isSymbolicLink()) out[rel] = `-> ${await fsp.readlink(full)}`;
    else if (st.isDirectory()) out[rel] = 'dir';
    else out[rel] = `${(st.mode & 0o777).toString(8)} ${createHash('sha256').update(await fsp.readFile(full)).digest('hex')} ${st.mtimeMs}`;
  }
  return out;
}

describe('the systemd unit, run by hand', () => {
  test("8. ExecStart, ExecReload and ExecStop, resolved for the root as systemd would, start, reload and stop the apps", async () => {
    const project = await setupProject({ projectPm2Home: '.pm2' });
    const pm2Log = path.join(await tempDir('dg-log-'), 'pm2.log');
    const service = await resolveService(project, UNIT_TEMPLATE, await globalPm2Dir(pm2Log), await tempDir('dg-home-'));

    // What systemd resolves, spelled out.
    expect(service.ctx.instance).not.toContain('/');
    expect(expandSpecifiers('%f', service.ctx)).toBe(project.root);
    expect(service.cwd).toBe(project.root);
    expect({ E2EAPP_ROOT: service.env.E2EAPP_ROOT, PM2_HOME: service.env.PM2_HOME }).toEqual({
      E2EAPP_ROOT: project.root,
      PM2_HOME: path.join(project.root, '.pm2'),
    });
    const script = (name: string) => path.join(project.root, 'deploy', 'scripts', `${name}-staging.sh`);
    expect(service.exec('ExecStart').map((c) => c.argv)).toEqual([['/bin/bash', script('start'), '--direct']]);
    expect(service.exec('ExecReload').map((c) => c.argv)).toEqual([['/bin/bash', script('start'), '--direct']]);
    expect(service.exec('ExecStop').map((c) => c.argv)).toEqual([['/bin/bash', script('stop'), '--direct']]);

    // ExecStart: both apps start under the unit's PM2_HOME and answer.
    const started = await runExec(service, 'ExecStart');
    console.log(`[e2e] 8. ExecStart took ${started.ms} ms`);
    expect(started.code, started.out).toBe(0);
    await expectServing(project, 1000);
    const apps = await project.apps();
    expect(apps.map((a) => `${a.name}/${a.status}`)).toEqual([`${BACKEND}/online`, `${FRONTEND}/online`]);
    for (const a of apps) {
      expect(a.env.PM2_HOME).toBe(path.join(project.root, '.pm2'));
      expect(a.env.E2EAPP_ROOT).toBe(project.root);
    }
    const timeoutStart = Number(unitValues(service.unit, 'Service', 'TimeoutStartSec')[0]);
    expect(timeoutStart * 1000).toBeGreaterThan(started.ms);

    // ExecReload: the apps pick up a new version.
    const before = await appState(project);
    await fsp.writeFile(path.join(project.root, 'backend/VERSION'), 'reloaded\n');
    const reloaded = await runExec(service, 'ExecReload');
    console.log(`[e2e] 8. ExecReload took ${reloaded.ms} ms`);
    expect(reloaded.code, reloaded.out).toBe(0);
    await expectServing(project, 1000);
    const version = await httpGet(project.backendUrl('/version'));
    expect(version.kind === 'response' && JSON.parse(version.body)).toMatchObject({ version: 'reloaded' });
    const after = await appState(project);
    expect(after[BACKEND]!.pid).not.toBe(before[BACKEND]!.pid);

    // ExecStop: both apps stop, then PM2's daemon too (it runs nothing else, and systemd leaves
    // it alone: KillMode=process); the ports are free.
    const stopped = await runExec(service, 'ExecStop');
    console.log(`[e2e] 8. ExecStop took ${stopped.ms} ms`);
    expect(stopped.code, stopped.out).toBe(0);
    expect(stopped.out).toContain(`ok stopped ${BACKEND}`);
    expect(stopped.out).toContain(`ok stopped ${FRONTEND}`);
    expect(stopped.out).toContain(`ok stopped PM2's daemon (PM2_HOME=${path.join(project.root, '.pm2')}): it ran nothing else`);
    expect(findPm2Processes(path.join(project.root, '.pm2'))).toEqual([]);
    expect(await isPortFree(project.backendPort)).toBe(true);
    expect(await isPortFree(project.webPort)).toBe(true);
    const timeoutStop = Number(unitValues(service.unit, 'Service', 'TimeoutStopSec')[0]);
    expect(timeoutStop * 1000).toBeGreaterThan(stopped.ms);

    // systemctl restart is ExecStop then ExecStart: the stopped apps come back.
    const restarted = await runExec(service, 'ExecStart');
    expect(restarted.code, restarted.out).toBe(0);
    await expectServing(project, 1000);
    expect((await appState(project))[BACKEND]!.status).toBe('online');
  }, 180_000);

  test('8. install-systemd-staging.sh --root-dir DIR installs and enables the units, idempotently', async () => {
    const project = await setupProject();
    const rootDir = await tempDir('dg-sysroot-');
    const instance = escapePath(project.root);
    const env = cleanEnv({ NO_COLOR: '1' });
    const first = await project.runScript('install-systemd', ['--root-dir', rootDir], { env });
    expectOk(first);
    const units = path.join(rootDir, 'etc/systemd/system');
    for (const name of [UNIT_TEMPLATE, HEALTH_TEMPLATE, TIMER_TEMPLATE]) {
      expect(first.stdout).toContain(`installed ${path.join(units, name)}`);
      expect(readFileSync(path.join(units, name))).toEqual(readFileSync(path.join(project.root, 'deploy/systemd', name)));
    }
    // The log rotation, with this checkout's root in place.
    const logrotate = path.join(rootDir, 'etc/logrotate.d', NAMESPACE);
    expect(first.stdout).toContain(`installed ${logrotate}`);
    expect(readFileSync(logrotate, 'utf8')).toContain(path.join(project.root, 'logs'));
    const mainInstance = `${NAMESPACE}@${instance}.service`;
    const timerInstance = `${NAMESPACE}-health@${instance}.timer`;
    expect(await fsp.readlink(path.join(units, 'multi-user.target.wants', mainInstance))).toBe(`/etc/systemd/system/${UNIT_TEMPLATE}`);
    expect(await fsp.readlink(path.join(units, 'timers.target.wants', timerInstance))).toBe(`/etc/systemd/system/${TIMER_TEMPLATE}`);
    for (const unit of [mainInstance, timerInstance]) {
      const enabled = spawnSync('systemctl', [`--root=${rootDir}`, 'is-enabled', unit], { encoding: 'utf8' });
      expect(enabled.stdout.trim(), unit).toBe('enabled');
    }

    const snapshot = await treeSnapshot(rootDir);
    const second = await project.runScript('install-systemd', ['--root-dir', rootDir], { env });
    expectOk(second);
    for (const name of [UNIT_TEMPLATE, HEALTH_TEMPLATE, TIMER_TEMPLATE]) {
      expect(second.stdout).toContain(`unchanged ${path.join(units, name)}`);
    }
    expect(second.stdout).not.toMatch(/\binstalled /);
    expect(await treeSnapshot(rootDir)).toEqual(snapshot);
  }, 60_000);
});

describe('on a host where the unit is installed', () => {
  test('9. start and stop go through systemctl (a recording stand-in), deploy runs PM2 under the unit; without it they call PM2', async () => {
    const project = await setupProject({ projectPm2Home: '.pm2' });
    const logs = await tempDir('dg-log-');
    const systemctlLog = path.join(logs, 'systemctl.log');
    const pm2Log = path.join(logs, 'pm2.log');
    const pm2Dir = await globalPm2Dir(pm2Log);
    const home = await tempDir('dg-home-');
    const service = await resolveService(project, UNIT_TEMPLATE, pm2Dir, home);
    const unitName = `${NAMESPACE}@${service.ctx.instance}.service`;

    // The installed units: what install-systemd-staging.sh copies to /etc/systemd/system. The
    // scripts run in a mount namespace of their own where this folder is /etc/systemd/system and
    // /run/systemd/system exists (systemd's mark of a booted host); the host itself is untouched.
    const installed = await tempDir('dg-etc-units-');
    for (const name of [UNIT_TEMPLATE, HEALTH_TEMPLATE, TIMER_TEMPLATE]) {
      await fsp.copyFile(path.join(project.root, 'deploy/systemd', name), path.join(installed, name));
    }
    const unitHost = [
      'mount -t tmpfs deploygen-run /run && mkdir -p /run/systemd/system',
      `mount --bind ${shellQuote(installed)} /etc/systemd/system`,
      'exec "$@"',
    ].join(' && ');
    const onUnitHost = (name: ScriptName, args: readonly string[], env: NodeJS.ProcessEnv) =>
      run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', unitHost, 'unit-host', 'bash', project.script(name), ...args], {
        cwd: project.root,
        env,
        timeoutMs: 240_000,
      });

    // The stand-in answers `systemctl is-enabled UNIT` (enabled) and, like systemd, runs the unit's
    // resolved ExecStart/ExecStop with the unit's environment only (DG_CALLER=systemd marks them);
    // restart runs ExecStop first when the unit is active (RemainAfterExit=yes), reload-or-restart
    // runs ExecReload when it is active and ExecStart when not.
    const commandLine = (key: 'ExecStart' | 'ExecReload' | 'ExecStop') => {
      const [cmd] = service.exec(key);
      const stopEnv = key === 'ExecStop' ? EXEC_STOP_ENV : {};
      const envWords = Object.entries({ ...service.env, ...stopEnv, DG_CALLER: 'systemd' }).map(([k, v]) => shellQuote(`${k}=${v}`));
      return `(cd ${shellQuote(service.cwd)} && exec env -i ${envWords.join(' ')} ${cmd!.argv.map(shellQuote).join(' ')})`;
    };
    const active = path.join(logs, 'active');
    const standIn = await tempDir('dg-systemctl-');
    await fsp.writeFile(
      path.join(standIn, 'systemctl'),
      [
        '#!/usr/bin/env bash',
        `{ printf '%s\\x1f' "$@"; printf '\\n'; } >>${shellQuote(systemctlLog)}`,
        'args=()',
        'for a in "$@"; do [[ $a == -- || $a == --quiet ]] || args+=("$a"); done',
        `[[ \${args[1]-} == ${shellQuote(unitName)} ]] || exit 5`,
        'case ${args[0]-} in',
        '  is-enabled) exit 0 ;;',
        `  is-active) [[ -e ${shellQuote(active)} ]] ;;`,
        `  start) ${commandLine('ExecStart')} && touch ${shellQuote(active)} ;;`,
        `  reload-or-restart) if [[ -e ${shellQuote(active)} ]]; then ${commandLine('ExecReload')}; else ${commandLine('ExecStart')} && touch ${shellQuote(active)}; fi ;;`,
        `  restart) if [[ -e ${shellQuote(active)} ]]; then ${commandLine('ExecStop')} || exit 1; fi; ${commandLine('ExecStart')} && touch ${shellQuote(active)} ;;`,
        `  stop) ${commandLine('ExecStop')}; rm -f ${shellQuote(active)} ;;`,
        '  *) exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );

    // The deploy user's shell: no PM2_HOME set (the scripts resolve the manifest's pm2Home, as the unit does).
    const withStandIn = cleanEnv({ PATH: `${standIn}:${pm2Dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, NO_COLOR: '1' });
    const withoutUnit = cleanEnv({ PATH: `${pm2Dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, NO_COLOR: '1' });
    const systemctlCalls = async () => (await calls(systemctlLog)).map((c) => c.filter((a) => a !== '--'));
    /** PM2 commands the scripts ran themselves (not through the unit), other than reading the list. */
    const directPm2Changes = async () =>
      (await calls(pm2Log)).filter((c) => c[0] === 'script' && c[1] !== 'jlist').map((c) => c.slice(1).join(' '));
    const isEnabled = ['is-enabled', '--quiet', unitName];

    // start-staging.sh -> systemctl reload-or-restart (an active unit would ignore "start"); the PM2
    // daemon is born from the unit's command, not the shell.
    const start = await onUnitHost('start', [], withStandIn);
    expectOk(start);
    expect(start.stdout).toContain(`ok started ${unitName}`);
    expect(await systemctlCalls()).toEqual([isEnabled, ['reload-or-restart', unitName]]);
    expect(await directPm2Changes()).toEqual([]);
    await expectServing(project, 1000);
    const daemonPid = Number(readFileSync(path.join(project.root, '.pm2/pm2.pid'), 'utf8'));
    expect(readFileSync(`/proc/${daemonPid}/environ`, 'utf8').split('\0')).toContain('DG_CALLER=systemd');

    // deploy-staging.sh --dry-run changes nothing and asks systemctl nothing.
    await fsp.rm(systemctlLog, { force: true });
    expectOk(await onUnitHost('deploy', ['--dry-run'], withStandIn));
    expect(existsSync(systemctlLog)).toBe(false);

    // deploy-staging.sh: install, build, verify; PM2's daemon must live in the unit's cgroup, and a
    // stand-in gives it none, so the deploy restarts the unit first (its ExecStop waits for no lock:
    // the deploy holds it for them), then reloads the apps itself.
    await fsp.writeFile(path.join(project.root, 'backend/VERSION'), 'via-systemd\n');
    await fsp.rm(systemctlLog, { force: true });
    const deploy = await onUnitHost('deploy', [], withStandIn);
    console.log(`[e2e] 9. deploy with the unit installed took ${deploy.ms} ms`);
    expectOk(deploy);
    expect(deploy.stdout).toContain(`PM2's daemon does not run under ${unitName}: restarting the unit first`);
    expect(await systemctlCalls()).toEqual([isEnabled, ['restart', unitName]]);
    expect((await directPm2Changes()).map((c) => c.split(' ')[0])).toEqual(['startOrReload']);
    const version = await httpGet(project.backendUrl('/version'));
    expect(version.kind === 'response' && JSON.parse(version.body)).toMatchObject({ version: 'via-systemd' });
    expect(existsSync(path.join(project.root, '.deploygen/staging/lock.info'))).toBe(false);
    // The restart's ExecStop stopped the old daemon; the one serving now was born from ExecStart.
    const unitDaemon = Number(readFileSync(path.join(project.root, '.pm2/pm2.pid'), 'utf8'));
    expect(unitDaemon).not.toBe(daemonPid);
    expect(readFileSync(`/proc/${unitDaemon}/environ`, 'utf8').split('\0')).toContain('DG_CALLER=systemd');

    // An installed unit that differs from the generated one: the deploy and start warn, with the diff
    // and the command that applies it.
    await fsp.appendFile(path.join(installed, UNIT_TEMPLATE), '# edited on the host\n');
    await fsp.rm(systemctlLog, { force: true });
    const stale = await onUnitHost('start', [], withStandIn);
    expectOk(stale);
    expect(await systemctlCalls()).toEqual([isEnabled, ['reload-or-restart', unitName]]);
    expect(stale.stderr).toContain(`warning: the installed /etc/systemd/system/${UNIT_TEMPLATE} differs from the generated ../systemd/${UNIT_TEMPLATE}:`);
    expect(stale.stderr).toContain('-# edited on the host');
    expect(stale.stderr).toContain(`warning: apply it: sudo ${path.join(project.root, 'deploy/scripts')}/install-systemd-staging.sh`);
    await fsp.copyFile(path.join(project.root, 'deploy/systemd', UNIT_TEMPLATE), path.join(installed, UNIT_TEMPLATE));

    // health-check-staging.sh with the daemon gone (the unit still active): it starts the namespace
    // itself (the timer runs it with --direct, unprivileged) and waits for the apps; systemctl is
    // only asked whether the unit is active.
    await killPm2(path.join(project.root, '.pm2'));
    await fsp.rm(systemctlLog, { force: true });
    await fsp.rm(pm2Log, { force: true });
    const hc = await onUnitHost('health-check', [], withStandIn);
    expectOk(hc);
    expect(hc.stderr).toContain(`PM2 is not running (PM2_HOME=${path.join(project.root, '.pm2')}): starting ${NAMESPACE}`);
    expect(await systemctlCalls()).toEqual([isEnabled, ['is-active', '--quiet', unitName]]);
    expect((await directPm2Changes()).map((c) => c.split(' ')[0])).toEqual(['ping', 'startOrReload']);
    await expectServing(project, 1000);

    // stop-staging.sh -> systemctl stop: the unit's ExecStop stops the apps, then the daemon.
    await fsp.rm(systemctlLog, { force: true });
    await fsp.rm(pm2Log, { force: true });
    const stop = await onUnitHost('stop', [], withStandIn);
    expectOk(stop);
    expect(await systemctlCalls()).toEqual([isEnabled, ['stop', unitName]]);
    expect(await directPm2Changes()).toEqual([]);
    expect(findPm2Processes(path.join(project.root, '.pm2'))).toEqual([]);
    expect(await isPortFree(project.backendPort)).toBe(true);

    // The health check of a stopped unit checks nothing and starts nothing.
    await fsp.rm(systemctlLog, { force: true });
    const idle = await onUnitHost('health-check', [], withStandIn);
    expectOk(idle);
    expect(idle.stdout).toContain(`ok ${unitName} is stopped: nothing to check`);
    expect(await systemctlCalls()).toEqual([isEnabled, ['is-active', '--quiet', unitName]]);
    expect(await directPm2Changes()).toEqual([]);
    expect(findPm2Processes(path.join(project.root, '.pm2'))).toEqual([]);

    // --direct, or no unit installed: PM2 is called directly, systemctl is never asked to act.
    await fsp.rm(systemctlLog, { force: true });
    await fsp.rm(pm2Log, { force: true });
    expectOk(await onUnitHost('start', ['--direct'], withStandIn));
    expect(existsSync(systemctlLog)).toBe(false);
    // The unit's stop ended the daemon: the script starts one (ping), then the apps.
    expect((await directPm2Changes()).map((c) => c.split(' ')[0])).toEqual(['ping', 'startOrReload']);
    await expectServing(project, 1000);
    await fsp.rm(pm2Log, { force: true });
    expectOk(await project.runScript('stop', [], { env: withoutUnit }));
    expect(existsSync(systemctlLog)).toBe(false);
    expect(await directPm2Changes()).toEqual([`stop ${BACKEND}`, `stop ${FRONTEND}`]);
    // Run by hand (not as the unit's ExecStop), the stop leaves PM2's daemon running.
    expect(Object.values(await appState(project)).map((a) => a.status)).toEqual(['stopped', 'stopped']);
    await fsp.rm(pm2Log, { force: true });
    expectOk(await project.runScript('start', [], { env: withoutUnit }));
    expect(existsSync(systemctlLog)).toBe(false);
    expect((await directPm2Changes()).map((c) => c.split(' ')[0])).toEqual(['startOrReload']);
    await expectServing(project, 1000);
  }, 300_000);
});

describe('the health-check timer', () => {
  test('P-E-health@.timer and its service pass systemd-analyze verify, and the service runs the health check', async () => {
    const project = await setupProject({
      projectPm2Home: '.pm2',
      editManifest: (yaml) => yaml.replace(/^( {4}requiredEnv: .*)$/m, '$1\n    healthIntervalSeconds: 45'),
    });
    const instance = escapePath(project.root);
    const dir = await tempDir('dg-units-');
    const instances: string[] = [];
    for (const template of [UNIT_TEMPLATE, HEALTH_TEMPLATE, TIMER_TEMPLATE]) {
      const target = path.join(dir, template.replace('@.', `@${instance}.`));
      await fsp.copyFile(path.join(project.root, 'deploy/systemd', template), target);
      instances.push(target);
    }
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', '--recursive-errors=yes', ...instances], { encoding: 'utf8' });
    expect(verify.stdout + verify.stderr).toBe('');
    expect(verify.status).toBe(0);

    // The timer starts the health service of the same instance every 45 s.
    const timer = readUnitFile(path.join(project.root, 'deploy/systemd', TIMER_TEMPLATE));
    const timerCtx = { template: TIMER_TEMPLATE, instance };
    expect(unitValues(timer, 'Timer', 'Unit').map((u) => expandSpecifiers(u, timerCtx))).toEqual([`${NAMESPACE}-health@${instance}.service`]);
    expect(unitValues(timer, 'Timer', 'OnUnitActiveSec')).toEqual(['45']);
    expect(unitValues(timer, 'Install', 'WantedBy')).toEqual(['timers.target']);

    // The health service, resolved and run by hand, checks (and heals) the apps.
    expectOk(await project.runScript('start'));
    await run('pm2', ['stop', BACKEND], { env: project.env, timeoutMs: 60_000 });
    const service = await resolveService(project, HEALTH_TEMPLATE, await globalPm2Dir(path.join(dir, 'pm2.log')), await tempDir('dg-home-'));
    expect(service.env.E2EAPP_ROOT).toBe(project.root);
    const checked = await runExec(service, 'ExecStart');
    console.log(`[e2e] timer: health service ExecStart took ${checked.ms} ms`);
    expect(checked.code, checked.out).toBe(0);
    expect(checked.out).toContain(`restarting ${BACKEND} only`);
    await expectServing(project, 1000);
  }, 120_000);
});

describe('deploy-staging.sh --dry-run', () => {
  test('prints every step with its resolved values and changes nothing', async () => {
    const project = await setupProject({ fresh: true });
    const before = await treeSnapshot(project.root);
    const r = await project.runScript('deploy', ['--dry-run']);
    expectOk(r);
    const out = r.stdout;
    const root = project.root;
    for (const value of [
      root,
      project.pm2.home,
      path.join(root, 'deploy/ecosystem.staging.config.js'),
      NAMESPACE,
      path.join(root, '.env.staging'),
      'E2E_API_KEY',
      BACKEND,
      FRONTEND,
      path.join(root, 'backend'),
      path.join(root, 'web'),
      String(project.backendPort),
      String(project.webPort),
      `http://127.0.0.1:${project.backendPort}/health (timeout 60s)`,
      `http://127.0.0.1:${project.webPort}/ (timeout 60s)`,
      path.join(root, 'logs', `${BACKEND}.err.log`),
      path.join(root, 'logs', `${FRONTEND}.err.log`),
      // The plan: every step and why it would run (nothing was ever installed or built here).
      'plan\twould run install backend (no earlier success recorded)\n',
      'plan\twould run install frontend (no earlier success recorded)\n',
      'plan\twould run build frontend (no earlier success recorded)\n',
      `then\tswitch, start or reload ${NAMESPACE}, watch for crash loops and wait for health\n`,
    ]) {
      expect(out, value).toContain(value);
    }
    expect(out).not.toContain('would run build backend');
    // Nothing changed: same tree, no logs/, nothing installed or built, no PM2 daemon.
    expect(await treeSnapshot(root)).toEqual(before);
    for (const dir of ['logs', 'backend/.venv', 'web/node_modules', 'web/.next']) expect(existsSync(path.join(root, dir)), dir).toBe(false);
    expect(existsSync(path.join(project.pm2.home, 'pm2.pid'))).toBe(false);
    expect(await fsp.readdir(project.pm2.home)).toEqual([]);
    expect(findPm2Processes(project.pm2.home)).toEqual([]);
  }, 60_000);
});
