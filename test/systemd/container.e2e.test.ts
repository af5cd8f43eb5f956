// The container harness itself: a real systemd boots, runs units, keeps an on-disk upper layer
// across a reboot, and leaves nothing on the host when stopped.
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { bootContainer, leftovers, useContainer } from './container.js';

const USER = 'dgselftest';

describe('a container with its upper layer on disk', () => {
  const box = useContainer({ upperLayer: 'disk', serviceUser: USER });

  test('systemd reaches the running state with no failed unit', async () => {
    await box.ready;
    const state = await box.systemctl('is-system-running');
    const failed = await box.systemctl('list-units', '--failed', '--plain', '--no-legend');
    expect(failed.stdout.trim(), 'failed units').toBe('');
    expect(state.stdout.trim()).toBe('running');
  });

  test('a oneshot unit installed inside starts and is seen in systemctl show', async () => {
    await box.ready;
    const unit = ['[Service]', 'Type=oneshot', 'RemainAfterExit=yes', 'ExecStart=/bin/sh -c "echo started >/run/dg-selftest"', ''].join('\n');
    await box.execOk(['tee', '/etc/systemd/system/dg-selftest.service'], { input: unit });
    await box.execOk(['systemctl', 'daemon-reload']);
    await box.execOk(['systemctl', 'start', 'dg-selftest.service']);
    const show = await box.execOk(['systemctl', 'show', '-p', 'ActiveState', '-p', 'Result', 'dg-selftest.service']);
    expect(show.stdout).toContain('ActiveState=active');
    expect(show.stdout).toContain('Result=success');
    expect((await box.execOk(['cat', '/run/dg-selftest'])).stdout).toBe('started\n');
  });

  test('the service user exists inside the container only, and commands run as it', async () => {
    await box.ready;
    expect((await box.exec(['getent', 'passwd', USER])).code).toBe(0);
    expect(spawnSync('getent', ['passwd', USER]).status).not.toBe(0);
    const who = await box.execOk(['id', '-un'], { user: USER });
    expect(who.stdout.trim()).toBe(USER);
    const home = await box.execOk(['sh', '-c', 'echo "$HOME"; pwd'], { user: USER, cwd: `/home/${USER}` });
    expect(home.stdout).toBe(`/home/${USER}\n/home/${USER}\n`);
  });

  test('the shared folder is outside /tmp inside, and node, pm2, curl and python3 are on PATH', async () => {
    await box.ready;
    await fsp.writeFile(path.join(box.hostShared, 'from-host.txt'), 'hello\n');
    expect((await box.execOk(['cat', `${box.guestShared}/from-host.txt`], { user: USER })).stdout).toBe('hello\n');
    expect(box.guestShared.startsWith('/tmp/')).toBe(false);
    const tools = await box.execOk(['sh', '-c', 'node --version && readlink -f "$(command -v pm2)" && curl --version >/dev/null && /usr/bin/python3 -c "import fastapi"'], {
      user: USER,
    });
    expect(tools.stdout).toMatch(/^v\d+\.\d+\.\d+\n.*\/node_modules\/pm2\/bin\/pm2\n$/);
  });

  test('a server inside answers on the container loopback, which the host cannot reach', async () => {
    await box.ready;
    await box.execOk(['systemd-run', '--unit=dg-http', '--property=User=' + USER, '/usr/bin/python3', '-m', 'http.server', '--bind', '127.0.0.1', '18999', '--directory', box.guestShared]);
    let answer = await box.httpGet('http://127.0.0.1:18999/from-host.txt');
    for (let i = 0; i < 50 && answer.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      answer = await box.httpGet('http://127.0.0.1:18999/from-host.txt');
    }
    expect(answer).toEqual({ status: 200, body: 'hello\n' });
    const fromHost = spawnSync('curl', ['-sS', '--max-time', '2', 'http://127.0.0.1:18999/from-host.txt']);
    expect(fromHost.status).not.toBe(0);
    await box.execOk(['systemctl', 'stop', 'dg-http.service']);
  });

  test('reboot keeps what was written to the on-disk upper layer, and forgets /run', async () => {
    await box.ready;
    await box.execOk(['sh', '-c', 'echo kept >/etc/dg-reboot-marker']);
    const before = box.pid;
    await box.reboot();
    expect(box.pid).not.toBe(before);
    expect((await box.execOk(['cat', '/etc/dg-reboot-marker'])).stdout).toBe('kept\n');
    expect((await box.exec(['test', '-e', '/run/dg-selftest'])).code).not.toBe(0);
    expect((await box.exec(['getent', 'passwd', USER])).code).toBe(0);
    expect((await box.systemctl('is-system-running', '--wait')).stdout.trim()).toBe('running');
  });

  test('stop leaves no process, cgroup, mount or folder on the host', async () => {
    await box.ready;
    const name = box.name;
    const stateDir = box.stateDir;
    expect(leftovers(name).nspawnProcesses).toHaveLength(1);
    await box.stop();
    expect(leftovers(name)).toEqual({ nspawnProcesses: [], cgroups: [], mounts: [], stateDirExists: false });
    expect(readMountinfo()).not.toContain(stateDir);
  });
});

test('a container on a tmpfs upper layer boots and stops without leaving anything', async () => {
  const box = await bootContainer();
  try {
    expect((await box.execOk(['hostname'])).stdout.trim()).toBe(box.name);
    await expect(box.reboot()).rejects.toThrow(/upperLayer: 'disk'/);
  } finally {
    await box.stop();
  }
  expect(leftovers(box.name)).toEqual({ nspawnProcesses: [], cgroups: [], mounts: [], stateDirExists: false });
  console.log(`[container] tmpfs ${box.name}: boot ${box.timings.bootMs.join(', ')} ms, teardown ${box.timings.teardownMs} ms`);
}, 120_000);

function readMountinfo(): string {
  return spawnSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).stdout;
}
