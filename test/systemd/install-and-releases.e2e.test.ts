// fixtures/tiny under a real systemd: install-systemd refuses each root or user the unit cannot
// work with (naming the fix, installing nothing); with `releases`, the service user deploys a new
// release and rolls it back through the unit (sudoers rule of the runbook); after the manifest's
// timeouts change and the files are regenerated, a deploy says how the installed unit differs and
// what to run, and says nothing once install-systemd ran.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { generateIn } from '../helpers/generate.js';
import { useContainer } from './container.js';
import { grantDeployRights } from './deploy-rights.js';
import { placeTiny, TINY_PORT, TINY_USER, waitForAnswer, type TinyInContainer } from './tiny-in-container.js';

const ROOT_URL = `http://127.0.0.1:${TINY_PORT}/`;
const UNIT_FILE = '/etc/systemd/system/tiny-staging@.service';
const withReleases = (yaml: string) => `${yaml.trimEnd()}\n    releases: { keep: 3 }\n`;

describe('install-systemd refusals, releases through the unit, unit drift', () => {
  const box = useContainer();
  let tiny: TinyInContainer;

  const install = (root: string) => box.exec(['bash', `${root}/deploy/scripts/install-systemd-staging.sh`], { cwd: root });
  const asTiny = (argv: string[]) => box.exec(argv, { user: TINY_USER, cwd: tiny.root, timeoutMs: 180_000 });
  const script = (name: string) => `${tiny.root}/deploy/scripts/${name}-staging.sh`;
  const current = async () => (await box.execOk(['readlink', `${tiny.root}/.deploygen/staging/current`])).stdout.trim().replace(/^releases\//, '');
  const unitCgroup = async () => (await box.execOk(['systemctl', 'show', '-p', 'ControlGroup', '--value', tiny.unit])).stdout.trim();
  const cgroupOf = async (pid: string) => /^\d+:name=systemd:(.*)$/m.exec((await box.execOk(['cat', `/proc/${pid}/cgroup`])).stdout)?.[1];

  test.each([
    { where: '/tmp', root: '/tmp/tiny', error: /under \/tmp, which the unit's PrivateTmp=yes hides from the apps/ },
    { where: '/var/tmp', root: '/var/tmp/tiny', error: /under \/var\/tmp, which the unit's PrivateTmp=yes hides from the apps/ },
    { where: '/usr', root: '/usr/local/tiny', error: /is read-only for the unit \(ProtectSystem=full\)/ },
    { where: '/etc', root: '/etc/tiny', error: /is read-only for the unit \(ProtectSystem=full\)/ },
    { where: 'a folder the service user cannot enter', root: '/srv/locked/tiny', error: /the service user tiny cannot read and write \/srv\/locked\/tiny/ },
    { where: 'a path logrotate cannot carry', root: '/srv/tiny[1]', error: /contains a character logrotate's paths cannot carry/ },
  ])('refuses a root under $where, naming the fix, and installs nothing', async ({ root, error }) => {
    await box.ready;
    tiny ??= await placeTiny(box, { editManifest: withReleases });
    await box.execOk(['bash', '-c', 'mkdir -p "$(dirname "$1")" && rm -rf "$1" && cp -a "$2" "$1"', '-', root, tiny.root]);
    if (root.startsWith('/srv/locked/')) await box.execOk(['chmod', '0700', '/srv/locked']);
    const refused = await install(root);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(error);
    expect(refused.stderr).toMatch(/^fix: \S/m);
    expect((await box.exec(['test', '-e', UNIT_FILE])).code).toBe(1);
    await box.execOk(['rm', '-rf', root]);
  });

  test('refuses a service user that does not exist, naming the fix, and installs nothing', async () => {
    await box.ready;
    const ghost = await placeTiny(box, { folder: 'ghost', editManifest: (yaml) => `${yaml.trimEnd()}\n    systemd: { user: ghost }\n` });
    const refused = await install(ghost.root);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stderr).toContain('error: the service user ghost does not exist');
    expect(refused.stderr).toContain('fix: create it (sudo useradd --system --create-home ghost)');
    expect((await box.exec(['test', '-e', UNIT_FILE])).code).toBe(1);
    await box.execOk(['rm', '-rf', ghost.root]);
  });

  test('the service user deploys a new release and rolls it back through the unit', async () => {
    await box.ready;
    const installed = await install(tiny.root);
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);
    await grantDeployRights(box, { envName: 'tiny-staging', user: TINY_USER, root: tiny.root });

    const first = await asTiny(['bash', script('deploy')]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const release1 = await current();
    expect(await waitForAnswer(box, ROOT_URL)).toEqual({ status: 200, body: 'tiny\n' });

    const server = path.join(tiny.hostRoot, 'app', 'src', 'server.js');
    await fsp.writeFile(server, (await fsp.readFile(server, 'utf8')).replace('res.end("tiny\\n")', 'res.end("tiny v2\\n")'));
    const second = await asTiny(['bash', script('deploy')]);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    const release2 = await current();
    expect(release2).not.toBe(release1);
    expect(await waitForAnswer(box, ROOT_URL)).toEqual({ status: 200, body: 'tiny v2\n' });

    const rollback = await asTiny(['bash', script('rollback')]);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
    expect(rollback.stdout).toContain(`Release ${release1} is serving (was ${release2})`);
    expect(await current()).toBe(release1);
    expect(await waitForAnswer(box, ROOT_URL)).toEqual({ status: 200, body: 'tiny\n' });
    // Everything ran through the unit: PM2's daemon and the app are in its cgroup.
    const cgroup = await unitCgroup();
    const daemon = (await box.execOk(['cat', `${tiny.pm2Home}/pm2.pid`])).stdout.trim();
    const appPid = (await box.execOk(['pm2', 'pid', 'tiny-staging-web'], { user: TINY_USER, env: tiny.pm2Env })).stdout.trim();
    expect([await cgroupOf(daemon), await cgroupOf(appPid)]).toEqual([cgroup, cgroup]);
  }, 300_000);

  test('after a timeout changes in the manifest, a deploy names the difference of the installed unit and the command to run; after it ran, no warning', async () => {
    await box.ready;
    const manifest = path.join(tiny.hostRoot, 'deploygen.yaml');
    await fsp.writeFile(manifest, (await fsp.readFile(manifest, 'utf8')).replace('stopTimeoutSeconds: 5', 'stopTimeoutSeconds: 25'));
    await generateIn(tiny.hostRoot);
    await box.execOk(['chown', '-R', `${TINY_USER}:`, `${tiny.root}/deploy`]);
    const drifted = await asTiny(['bash', script('deploy')]);
    expect(drifted.code, drifted.stdout + drifted.stderr).toBe(0);
    expect(drifted.stderr).toContain(`warning: the installed ${UNIT_FILE} differs from the generated ../systemd/tiny-staging@.service:`);
    expect(drifted.stderr).toMatch(/^-TimeoutStopSec=\d+$/m);
    expect(drifted.stderr).toMatch(/^\+TimeoutStopSec=\d+$/m);
    expect(drifted.stderr).toContain(`warning: apply it: sudo ${tiny.root}/deploy/scripts/install-systemd-staging.sh`);

    const reinstalled = await install(tiny.root);
    expect(reinstalled.code, reinstalled.stderr).toBe(0);
    expect(reinstalled.stdout).toContain(`ok installed ${UNIT_FILE}`);
    const clean = await asTiny(['bash', script('deploy')]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stderr).not.toContain('warning: the installed');
  }, 300_000);
});
