// fixtures/e2e (FastAPI + Next.js) under a real systemd, as an operator runs it (docs/runbook.md):
// install-systemd, the sudoers rule as the runbook writes it, a deploy by the service user through
// systemctl, the health timer with alerts, a reboot, a graceful stop, the journal and the security
// rating. One container for the whole file; each test goes on from where the previous one left.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT, waitFor } from '../e2e/harness.js';
import { startAlertReceiver, type AlertReceiver } from './alert-receiver.js';
import { useContainer } from './container.js';
import { grantDeployRights } from './deploy-rights.js';
import { E2E_BACKEND_PORT, E2E_FRONTEND_PORT, E2E_NAMESPACE, E2E_USER, placeE2e, type E2eInContainer } from './e2e-in-container.js';

const BACKEND = `http://127.0.0.1:${E2E_BACKEND_PORT}/health`;
const FRONTEND = `http://127.0.0.1:${E2E_FRONTEND_PORT}/`;
const BACKEND_APP = `${E2E_NAMESPACE}-backend`;
const FRONTEND_APP = `${E2E_NAMESPACE}-frontend`;
const ALERT_PORT = 18999;

interface Pm2Process {
  name: string;
  pid: number;
  pm2_env: { status: string; restart_time: number; namespace: string };
}

describe('fixtures/e2e under a real systemd: install, deploy rights, health timer, reboot, stop', () => {
  const box = useContainer({ upperLayer: 'disk' });
  let app: E2eInContainer;
  let alerts: AlertReceiver;

  const script = (name: string) => `${app.root}/deploy/scripts/${name}-staging.sh`;
  /** Runs as the service user from the project root, with a login-like clean environment. */
  const asServiceUser = (argv: string[]) => box.exec(argv, { user: E2E_USER, cwd: app.root, timeoutMs: 240_000 });
  const pm2List = async (): Promise<Pm2Process[]> => {
    const out = (await box.execOk(['pm2', 'jlist'], { user: E2E_USER, env: app.pm2Env })).stdout;
    // PM2 may print "[PM2] ..." lines before the list.
    return JSON.parse(out.slice(out.search(/^\[(?!PM2\])/m))) as Pm2Process[];
  };
  const bothHealthy = async (): Promise<boolean> =>
    (await box.httpGet(BACKEND, 2)).status === 200 && (await box.httpGet(FRONTEND, 5)).status === 200;
  const unitCgroup = async () => (await box.execOk(['systemctl', 'show', '-p', 'ControlGroup', '--value', app.unit])).stdout.trim();
  /** The systemd cgroup of a process inside the container. */
  const cgroupOf = async (pid: number | string) => /^\d+:name=systemd:(.*)$/m.exec((await box.execOk(['cat', `/proc/${pid}/cgroup`])).stdout)?.[1];
  const daemonPid = async () => (await box.execOk(['cat', `${app.pm2Home}/pm2.pid`])).stdout.trim();
  const healthRuns = async () => (await box.journal(app.healthUnit)).split('\n').filter((line) => line.startsWith('==> Health of ')).length;

  test('install-systemd installs and enables the unit, starts the health timer, installs the log rotation; a second run changes nothing', async () => {
    await box.ready;
    alerts = await startAlertReceiver(box, ALERT_PORT);
    app = await placeE2e(box, {
      environmentLines: ['healthIntervalSeconds: 10', 'alerts: { webhookEnv: ALERT_WEBHOOK_URL }'],
      envFileLines: [`ALERT_WEBHOOK_URL=${alerts.url}`],
    });
    const first = await box.exec(['bash', script('install-systemd')], { cwd: app.root });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect((await box.systemctl('is-enabled', app.unit)).stdout.trim()).toBe('enabled');
    expect((await box.systemctl('is-enabled', app.timer)).stdout.trim()).toBe('enabled');
    expect((await box.systemctl('is-active', app.timer)).stdout.trim()).toBe('active');
    const rotation = '/etc/logrotate.d/e2eapp-staging';
    expect((await box.execOk(['stat', '-c', '%U:%G %a', rotation])).stdout.trim()).toBe('root:root 644');
    const installed = (await box.execOk(['cat', rotation])).stdout;
    expect(installed).toContain(`"${app.root}/logs/*.log"`);
    expect(installed).not.toContain('@@DEPLOYGEN_ROOT@@');
    const dryRun = await box.exec(['logrotate', '-d', rotation]);
    expect(dryRun.code, dryRun.stdout + dryRun.stderr).toBe(0);

    const second = await box.exec(['bash', script('install-systemd')], { cwd: app.root });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.match(/ok unchanged /g)).toHaveLength(4);
    expect(second.stdout).not.toMatch(/ok installed /);
  }, 600_000);

  test("the runbook's sudoers rule lets the service user deploy through systemctl, and nothing else; PM2 and the apps then live in the unit's cgroup", async () => {
    await box.ready;
    await grantDeployRights(box, { envName: E2E_NAMESPACE, user: E2E_USER, root: app.root });
    expect((await box.execOk(['stat', '-c', '%U %a', `/etc/sudoers.d/${E2E_NAMESPACE}`])).stdout.trim()).toBe('root 440');
    const other = await asServiceUser(['sudo', '-n', 'systemctl', 'restart', '--', 'systemd-journald.service']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/a password is required|not allowed/);

    const deploy = await asServiceUser(['bash', script('deploy')]);
    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);
    expect(deploy.stdout).toContain(`PM2's daemon does not run under ${app.unit}: restarting the unit first`);
    expect((await box.systemctl('is-active', app.unit)).stdout.trim()).toBe('active');
    expect(await bothHealthy()).toBe(true);
    const cgroup = await unitCgroup();
    expect(await cgroupOf(await daemonPid())).toBe(cgroup);
    for (const proc of (await pm2List()).filter((p) => p.pm2_env.namespace === E2E_NAMESPACE)) {
      expect(await cgroupOf(proc.pid), proc.name).toBe(cgroup);
    }
    // A second deploy reloads in place, still through the same daemon.
    const daemon = await daemonPid();
    const again = await asServiceUser(['bash', script('deploy')]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(await daemonPid()).toBe(daemon);
  }, 600_000);

  test('the health timer restarts only the app that stopped, with exactly one down and one up alert', async () => {
    await box.ready;
    expect(await alerts.events()).toEqual([]);
    const before = await pm2List();
    const frontend = before.find((p) => p.name === FRONTEND_APP)!;
    await box.execOk(['pm2', 'stop', BACKEND_APP], { user: E2E_USER, env: app.pm2Env });
    await waitFor(async () => (await alerts.events()).length >= 2 && (await box.httpGet(BACKEND, 2)).status === 200, 90_000, {
      what: 'the health timer to bring the backend back',
    });
    const runs = await healthRuns();
    // Two more runs of the timer with everything healthy send nothing more.
    await waitFor(async () => (await healthRuns()) >= runs + 2, 60_000, { what: 'two more health checks' });
    expect((await alerts.events()).map(({ app, event, project, environment }) => ({ app, event, project, environment }))).toEqual([
      { app: 'backend', event: 'down', project: 'e2eapp', environment: 'staging' },
      { app: 'backend', event: 'up', project: 'e2eapp', environment: 'staging' },
    ]);
    const after = (await pm2List()).find((p) => p.name === FRONTEND_APP)!;
    expect({ pid: after.pid, restarts: after.pm2_env.restart_time }).toEqual({ pid: frontend.pid, restarts: frontend.pm2_env.restart_time });
    expect(await box.journal(app.healthUnit)).toContain(`restarting ${BACKEND_APP} only`);
  }, 240_000);

  test("after PM2's daemon is killed, the health check starts the apps and waits for them: no app is reported down or restarted again", async () => {
    await box.ready;
    const earlier = (await alerts.events()).length;
    const journalBefore = (await box.journal(app.healthUnit)).length;
    // The daemon dies between two checks (not in the middle of one, which would see each app go).
    await box.execOk(['systemctl', 'stop', app.timer]);
    await waitFor(async () => !/^(active|activating|deactivating)$/.test((await box.systemctl('is-active', app.healthUnit)).stdout.trim()), 60_000, {
      what: 'the health check in progress to finish',
    });
    await box.execOk(['pm2', 'kill'], { user: E2E_USER, env: app.pm2Env });
    await box.execOk(['systemctl', 'start', app.timer]);
    await waitFor(async () => (await alerts.events()).length >= earlier + 2 && (await bothHealthy()), 120_000, {
      what: 'the health timer to start the namespace again',
    });
    const runs = await healthRuns();
    await waitFor(async () => (await healthRuns()) >= runs + 1, 60_000, { what: 'one more health check' });
    expect((await alerts.events()).slice(earlier).map(({ app, event }) => ({ app, event }))).toEqual([
      { app: E2E_NAMESPACE, event: 'down' },
      { app: E2E_NAMESPACE, event: 'up' },
    ]);
    const since = (await box.journal(app.healthUnit)).slice(journalBefore);
    expect(since).toContain('PM2 is not running');
    expect(since).not.toMatch(/restarting e2eapp-staging-\w+ only/);
    for (const proc of (await pm2List()).filter((p) => p.pm2_env.namespace === E2E_NAMESPACE)) {
      expect({ name: proc.name, status: proc.pm2_env.status, restarts: proc.pm2_env.restart_time }).toEqual({ name: proc.name, status: 'online', restarts: 0 });
    }
  }, 240_000);

  test('after a reboot the enabled unit brings both apps back, healthy, in its cgroup', async () => {
    await box.ready;
    await alerts.stop();
    await box.reboot();
    const state = await box.exec(['systemctl', 'is-active', '--wait', app.unit]);
    expect(state.stdout.trim(), await box.journal(app.unit)).toBe('active');
    expect(await waitFor(bothHealthy, 60_000, { what: 'both apps after the reboot' })).toBe(true);
    expect(await cgroupOf(await daemonPid())).toBe(await unitCgroup());
    expect((await box.systemctl('is-active', app.timer)).stdout.trim()).toBe('active');
  }, 240_000);

  test('systemctl stop lets a request in flight finish and leaves nothing running in the unit; systemctl restart brings the apps back', async () => {
    await box.ready;
    const cgroup = await unitCgroup();
    const slow = box.httpGet(`http://127.0.0.1:${E2E_BACKEND_PORT}/slow`, 30);
    // The request is in the backend's hands before the stop begins (it answers after ~2 s).
    await new Promise((r) => setTimeout(r, 500));
    const stop = await box.systemctl('stop', app.unit);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await slow).toEqual({ status: 200, body: '{"slow":true}' });
    expect((await box.systemctl('is-active', app.unit)).stdout.trim()).toBe('inactive');
    const left = await box.exec(['cat', `/sys/fs/cgroup/systemd${cgroup}/cgroup.procs`]);
    expect(left.code === 0 ? left.stdout.trim() : '').toBe('');
    expect(await box.journal(app.unit)).not.toMatch(/remains running after unit stopped/);
    expect((await box.httpGet(BACKEND, 2)).status).toBe(0);

    expect((await box.systemctl('start', app.unit)).code).toBe(0);
    const first = (await pm2List()).find((p) => p.name === BACKEND_APP)!.pid;
    const restart = await box.systemctl('restart', app.unit);
    expect(restart.code, restart.stderr).toBe(0);
    expect(await waitFor(bothHealthy, 60_000, { what: 'both apps after systemctl restart' })).toBe(true);
    expect((await pm2List()).find((p) => p.name === BACKEND_APP)!.pid).not.toBe(first);
  }, 240_000);

  test("journalctl shows the scripts' output as plain text: the unit's starts and stops, and each health check", async () => {
    await box.ready;
    await waitFor(async () => (await healthRuns()) > 0, 60_000, { what: 'a health check after the restart' });
    const unitLog = await box.journal(app.unit);
    const healthLog = await box.journal(app.healthUnit);
    expect(unitLog).toContain(`==> Starting ${E2E_NAMESPACE} in ${app.root}`);
    expect(unitLog).toContain(`ok ${BACKEND_APP} answers ${BACKEND}`);
    expect(unitLog).toContain(`==> Stopping ${E2E_NAMESPACE} (each app gets its kill_timeout to finish)`);
    expect(unitLog).toContain(`ok stopped PM2's daemon (PM2_HOME=${app.pm2Home}): it ran nothing else`);
    expect(healthLog).toContain(`==> All apps of ${E2E_NAMESPACE} are healthy`);
    expect(unitLog + healthLog).not.toContain('\u001b');
  }, 120_000);

  test("systemd-analyze security rates the running unit as the README says", async () => {
    await box.ready;
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const promised = /`systemd-analyze security --offline=yes` rates it \*\*(\d+\.\d+) (\w+)\*\*/.exec(readme);
    expect(promised, 'README states the rating').not.toBeNull();
    const rating = await box.exec(['systemd-analyze', 'security', '--no-pager', app.unit]);
    const overall = /Overall exposure level for .*: (\d+\.\d+) (\S+)/.exec(rating.stdout);
    expect(overall, rating.stdout + rating.stderr).not.toBeNull();
    console.log(`[e2e-app] systemd-analyze security ${app.unit}: ${overall![1]} ${overall![2]}`);
    expect(`${overall![1]} ${overall![2]}`).toBe(`${promised![1]} ${promised![2]}`);
  }, 60_000);
});
