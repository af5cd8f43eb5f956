// Releases under real PM2 with fixtures/tiny: each deploy is an immutable copy of the checkout that
// goes live by an atomic switch; a version that crashes, never turns healthy, fails to build or is
// interrupted never stays live. Deploys in place keep their build outputs when a build fails.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { PM2_BIN, findPm2Processes, httpGet, run, useProjectCopy, waitFor } from './harness.js';
import { setupTiny, type TinyProject } from './tiny.js';

const RELEASES = (keep: number) => (yaml: string) =>
  yaml
    .replace(/^ {4}stopTimeoutSeconds: 5$/m, '    stopTimeoutSeconds: 5\n    buildOutputs: [dist]')
    .concat(`    releases: { keep: ${keep} }\n    minFreeDiskMB: 10\n`);
const CLUSTER = (yaml: string) => yaml.replace(/^ {4}stopTimeoutSeconds: 5$/m, '    stopTimeoutSeconds: 5\n    instances: 2');

const SERVER = 'app/src/server.js';
/** Rewrites the app's source so that it answers "tiny <label>" (and applies `edit`). */
async function setVersion(tiny: TinyProject, label: string, edit: (source: string) => string = (s) => s): Promise<void> {
  const file = path.join(tiny.root, SERVER);
  const source = (await fsp.readFile(file, 'utf8')).replace(/res\.end\("tiny[^"]*\\n"\)/, `res.end("tiny ${label}\\n")`);
  await fsp.writeFile(file, edit(source));
}
const CRASH_AT_START = (source: string) => `throw new Error("crash at start: DATABASE_URL is not set");\n${source}`;
const NEVER_HEALTHY = (source: string) => source.replace(/Date\.now\(\) >= readyAt \? 200 : 503/, '503');

const stateDir = (tiny: TinyProject) => path.join(tiny.root, '.deploygen', 'staging');
const live = (tiny: TinyProject) => path.basename(readlinkSync(path.join(stateDir(tiny), 'current')));
const releases = (tiny: TinyProject) => readdirSync(path.join(stateDir(tiny), 'releases')).sort();
const answer = async (tiny: TinyProject) => {
  const r = await httpGet(`http://127.0.0.1:${tiny.ports[0]}/`, 2000);
  return 'body' in r && r.status === 200 ? r.body : null;
};
const output = (r: { stdout: string; stderr: string }) => r.stdout + r.stderr;

async function deployOk(tiny: TinyProject, args: string[] = []) {
  const r = await tiny.deploy(args);
  expect(r.code, output(r)).toBe(0);
  return r;
}

/**
 * deploy-staging.sh in a process group of its own, its output collected; `signal` sends a signal to
 * the whole group (as a terminal's Ctrl-C does) and resolves to the exit code and the output.
 */
function deployInBackground(tiny: TinyProject, env: Record<string, string> = {}) {
  const child = spawn('bash', [path.join(tiny.root, 'deploy', 'scripts', 'deploy-staging.sh')], { cwd: tiny.root, env: { ...tiny.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  // 'close', not 'exit': the output the script wrote just before it exited has been read by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    output: () => out,
    async signal(name: NodeJS.Signals) {
      process.kill(-child.pid!, name);
      return { code: await exited, out };
    },
  };
}

/** Polls the app every 50 ms while `during` runs: the longest stretch without an answer, in ms. */
async function longestGap<T>(tiny: TinyProject, during: () => Promise<T>): Promise<{ result: T; gapMs: number; bodies: Set<string> }> {
  let done = false;
  let gapMs = 0;
  const bodies = new Set<string>();
  const poller = (async () => {
    let downSince: number | undefined;
    while (!done) {
      const body = await answer(tiny);
      const now = Date.now();
      if (body === null) downSince ??= now;
      else {
        bodies.add(body);
        if (downSince !== undefined) gapMs = Math.max(gapMs, now - downSince);
        downSince = undefined;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (downSince !== undefined) gapMs = Math.max(gapMs, Date.now() - downSince);
  })();
  const result = await during();
  done = true;
  await poller;
  return { result, gapMs, bodies };
}

describe('releases', { timeout: 300_000 }, () => {
  test('a deploy makes a release and switches to it; an unchanged checkout makes none; the release reuses what did not change', async () => {
    const tiny = await setupTiny({ editManifest: (yaml) => RELEASES(5)(yaml).replace('releases: { keep: 5 }', 'releases: { keep: 5, shared: [app/uploads] }') });
    await setVersion(tiny, 'v1');
    const first = await deployOk(tiny);
    expect(first.stdout).toMatch(/release \S+: \d+ files copied/);
    expect(await answer(tiny)).toBe('tiny v1\n');
    const [v1] = releases(tiny);
    expect(live(tiny)).toBe(v1);
    // A shared folder is the checkout's own, linked into the release by a relative link.
    const uploads = path.join(stateDir(tiny), 'releases', v1!, 'app', 'uploads');
    expect(readlinkSync(uploads)).not.toMatch(/^\//);
    await fsp.writeFile(path.join(uploads, 'photo.jpg'), 'bytes');
    expect(await fsp.readFile(path.join(tiny.root, 'app', 'uploads', 'photo.jpg'), 'utf8')).toBe('bytes');
    // PM2 runs the app under the stable current link; the env file and logs stay in the checkout.
    expect(readlinkSync(path.join(stateDir(tiny), 'current'))).toBe(`releases/${v1}`);
    expect(existsSync(path.join(stateDir(tiny), 'releases', v1!, '.env.staging'))).toBe(false);
    expect(existsSync(path.join(tiny.root, 'logs', 'tiny-staging-web.out.log'))).toBe(true);

    const again = await deployOk(tiny);
    expect(again.stdout).toContain(`the checkout is unchanged since release ${v1}`);
    expect(releases(tiny)).toEqual([v1]);

    // Only the manifest's commands and outputs count: a README change reuses the build by hard links.
    await fsp.writeFile(path.join(tiny.root, 'README.txt'), 'notes\n');
    const third = await deployOk(tiny);
    expect(third.stdout).toMatch(/reused the build of web from release/);
    const v2 = live(tiny);
    expect(v2).not.toBe(v1);
    const built = (id: string) => readFileSync(path.join(stateDir(tiny), 'releases', id, 'app', 'dist', 'server.js'));
    expect(built(v2)).toEqual(built(v1!));
  });

  for (const mode of ['fork', 'cluster'] as const) {
    test(`a release that crashes at start (${mode} mode) is rolled back and the previous one serves again`, async () => {
      const tiny = await setupTiny({ editManifest: (yaml) => (mode === 'cluster' ? CLUSTER(RELEASES(5)(yaml)) : RELEASES(5)(yaml)) });
      await setVersion(tiny, 'v1');
      await deployOk(tiny);
      const v1 = live(tiny);
      await setVersion(tiny, 'v2', CRASH_AT_START);
      const { result: r, gapMs, bodies } = await longestGap(tiny, () => tiny.deploy());
      console.log(`[releases] ${mode} crash at start: deploy exited after ${r.ms} ms; longest gap in answers ${gapMs} ms`);
      expect(r.code, output(r)).toBe(1);
      expect(r.stderr).toMatch(/tiny-staging-web crashes at start|tiny-staging-web is not running/);
      expect(r.stderr).toContain('crash at start: DATABASE_URL is not set');
      expect(r.stderr).toMatch(new RegExp(`release \\S+ was rolled back .*; release ${v1} is serving`));
      expect(live(tiny)).toBe(v1);
      expect(await answer(tiny)).toBe('tiny v1\n');
      expect([...bodies]).toEqual(['tiny v1\n']);
      // Well before the health timeout: the crash loop is seen while PM2 still restarts it.
      expect(r.stderr).toMatch(/crashes at start \(PM2 restarted it, \d+\.\ds after the start\)|is not running \(\d+\.\ds after the start\)/);
      const listing = await tiny.deploy(['--list']);
      expect(listing.stdout).toContain(`* ${v1}`);
      expect(listing.stdout).toMatch(/\(failed, rolled back\)/);
    });
  }

  test('a release that listens but never answers its health URL is rolled back at the health timeout', async () => {
    const tiny = await setupTiny({ editManifest: (yaml) => RELEASES(5)(yaml).replace(/^( {4}health: \{ path: \/health), timeoutSeconds: \d+ \}$/m, '$1, timeoutSeconds: 8 }') });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    const v1 = live(tiny);
    await setVersion(tiny, 'v2', NEVER_HEALTHY);
    const r = await tiny.deploy();
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr).toMatch(/tiny-staging-web did not answer http:\/\/127\.0\.0\.1:\d+\/health within 8s/);
    expect(r.stderr).toContain(`release ${v1} is serving`);
    expect(live(tiny)).toBe(v1);
    expect(await answer(tiny)).toBe('tiny v1\n');
  });

  test('a build that fails leaves the live release untouched, serving even after its app restarts', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(5) });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    const v1 = live(tiny);
    await tiny.editManifest((yaml) => yaml.replace('build: ["mkdir -p dist", "cp src/server.js dist/server.js"]', 'build: ["mkdir -p dist", "echo half > dist/server.js", "exit 3"]'));
    const r = await tiny.deploy();
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr).toContain(`build web (in app) failed (exit 3); nothing was switched: release ${v1} keeps serving`);
    expect(r.stdout).toMatch(/removed the unfinished release/);
    expect(releases(tiny)).toEqual([v1]);
    await run(PM2_BIN, ['restart', 'tiny-staging-web'], { env: tiny.env });
    await waitFor(() => answer(tiny), 15_000);
    expect(await answer(tiny)).toBe('tiny v1\n');
  });

  test('a build interrupted by SIGINT removes its half-made release and the lock; the live release keeps serving', async () => {
    const tiny = await setupTiny({ editManifest: (yaml) => RELEASES(5)(yaml).replace('"cp src/server.js dist/server.js"]', '"cp src/server.js dist/server.js", "sleep ${TINY_BUILD_SLEEP:-0}"]') });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    const v1 = live(tiny);
    await setVersion(tiny, 'v2');
    const running = deployInBackground(tiny, { TINY_BUILD_SLEEP: '60' });
    await waitFor(() => /build web \(in app\): inputs changed/.test(running.output()), 30_000);
    const { code, out } = await running.signal('SIGINT');
    expect(code, out).toBe(130);
    expect(out).toContain('interrupted by SIGINT');
    expect(out).toMatch(/removed the unfinished release/);
    expect(releases(tiny)).toEqual([v1]);
    expect(live(tiny)).toBe(v1);
    expect(existsSync(path.join(stateDir(tiny), 'lock.info'))).toBe(false);
    expect(await answer(tiny)).toBe('tiny v1\n');
    // The lock is free: the next deploy does not wait.
    await deployOk(tiny, ['--no-wait']);
    expect(await answer(tiny)).toBe('tiny v2\n');
  });

  test('a deploy interrupted after the switch puts the previous release back', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(5) });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    const v1 = live(tiny);
    await setVersion(tiny, 'v2', NEVER_HEALTHY);
    const running = deployInBackground(tiny);
    await waitFor(() => /current -> /.test(running.output()), 60_000);
    const { code, out } = await running.signal('SIGTERM');
    expect(code, out).toBe(130);
    expect(out).toContain('interrupted by SIGTERM');
    expect(out).toContain(`Rolling back to release ${v1}`);
    expect(out).toContain(`release ${v1} is serving`);
    expect(live(tiny)).toBe(v1);
    expect(await answer(tiny)).toBe('tiny v1\n');
    expect(existsSync(path.join(stateDir(tiny), 'lock.info'))).toBe(false);
  });

  test('two deploys at once: one waits for the other, one PM2 daemon, both succeed; --no-wait fails at once naming the holder', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(5) });
    await setVersion(tiny, 'v1');
    // No daemon yet: both would spawn one without the lock.
    const [a, b] = await Promise.all([tiny.deploy(), tiny.deploy()]);
    expect(a.code, output(a)).toBe(0);
    expect(b.code, output(b)).toBe(0);
    expect(output(a) + output(b)).toMatch(/another run holds the lock of tiny-staging: pid \d+ \(deploy-staging\.sh deploy\) since/);
    const daemons = findPm2Processes(tiny.pm2.home).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('PM2 v');
      } catch {
        return false;
      }
    });
    expect(daemons.length).toBe(1);
    expect(releases(tiny).length).toBe(1);

    await setVersion(tiny, 'v2');
    const slow = tiny.deploy();
    await waitFor(() => existsSync(path.join(stateDir(tiny), 'lock.info')), 20_000);
    const refused = await tiny.deploy(['--no-wait']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/another run still holds the lock of tiny-staging: pid \d+/);
    expect(refused.ms).toBeLessThan(20_000);
    expect((await slow).code).toBe(0);
  });

  test('rollback-staging.sh goes to the previous release, or to the one named, and waits for health', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(5) });
    const ids: string[] = [];
    for (const v of ['v1', 'v2', 'v3']) {
      await setVersion(tiny, v);
      await deployOk(tiny);
      ids.push(live(tiny));
    }
    const rollback = (args: string[] = []) => run('bash', [path.join(tiny.root, 'deploy', 'scripts', 'rollback-staging.sh'), ...args], { cwd: tiny.root, env: tiny.env });
    const back = await rollback();
    expect(back.code, output(back)).toBe(0);
    expect(back.stdout).toContain(`Release ${ids[1]} is serving (was ${ids[2]})`);
    expect(await answer(tiny)).toBe('tiny v2\n');
    const named = await rollback([ids[0]!]);
    expect(named.code, output(named)).toBe(0);
    expect(await answer(tiny)).toBe('tiny v1\n');
    const unknown = await rollback(['no-such-release']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no release no-such-release to roll back to');
    expect(await answer(tiny)).toBe('tiny v1\n');
  });

  test('releases beyond keep are removed after a successful deploy, never the live one or the rollback target', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(2) });
    const ids: string[] = [];
    for (const v of ['v1', 'v2', 'v3', 'v4']) {
      await setVersion(tiny, v);
      await deployOk(tiny);
      ids.push(live(tiny));
    }
    expect(releases(tiny)).toEqual([ids[2], ids[3]]);
  });

  test('a moved checkout deploys from its new folder; a second checkout of the same project is refused unless --takeover', async () => {
    const tiny = await setupTiny({ editManifest: RELEASES(5) });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    // The checkout moves (its old folder is gone): its releases and the relative current link move with it.
    const moved = `${tiny.root}-moved`;
    await fsp.rename(tiny.root, moved);
    try {
      await setVersion({ ...tiny, root: moved }, 'moved');
      const r = await run('bash', [path.join(moved, 'deploy', 'scripts', 'deploy-staging.sh')], { cwd: moved, env: tiny.env });
      expect(r.code, output(r)).toBe(0);
      expect(await answer(tiny)).toBe('tiny moved\n');
    } finally {
      await fsp.rename(moved, tiny.root);
    }
    // A second copy of the checkout on the same host and PM2 daemon: same app names.
    const other = await useProjectCopy(tiny.root, { prefix: 'dg-tiny-second-' });
    await fsp.rm(path.join(other, '.deploygen'), { recursive: true, force: true });
    await fsp.copyFile(path.join(tiny.root, '.env.staging'), path.join(other, '.env.staging'));
    const deployOther = (args: string[] = []) => run('bash', [path.join(other, 'deploy', 'scripts', 'deploy-staging.sh'), ...args], { cwd: other, env: tiny.env });
    await deployOk(tiny);
    const refused = await deployOther();
    expect(refused.code, output(refused)).toBe(1);
    expect(refused.stderr).toContain(`tiny-staging-web already runs from another checkout: ${tiny.root}`);
    expect(refused.stderr).toContain('--takeover');
    expect(await answer(tiny)).toBe('tiny moved\n');
    await setVersion({ ...tiny, root: other }, 'second');
    const taken = await deployOther(['--takeover']);
    expect(taken.code, output(taken)).toBe(0);
    expect(await answer(tiny)).toBe('tiny second\n');
  });
  test('a disk that fills during the build leaves the live release serving and removes the half-made one', async () => {
    const tiny = await setupTiny({ editManifest: (yaml) => RELEASES(5)(yaml).replace('minFreeDiskMB: 10', 'minFreeDiskMB: 1').replace('"cp src/server.js dist/server.js"]', '"cp src/server.js dist/server.js", "head -c ${TINY_BUILD_PAD_MB:-0}M /dev/zero > dist/pad"]') });
    const state = stateDir(tiny);
    await fsp.mkdir(state, { recursive: true });
    // The state folder (where releases are made) on a small disk of its own.
    expect((await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', state])).code).toBe(0);
    try {
      await setVersion(tiny, 'v1');
      await deployOk(tiny);
      const v1 = live(tiny);
      await setVersion(tiny, 'v2');
      const full = await tiny.deploy([], { env: { ...tiny.env, TINY_BUILD_PAD_MB: '8' } });
      expect(full.code, output(full)).toBe(1);
      expect(full.stderr).toMatch(/No space left on device/);
      expect(full.stderr).toContain(`build web (in app) failed (exit 1); nothing was switched: release ${v1} keeps serving`);
      expect(releases(tiny)).toEqual([v1]);
      expect(live(tiny)).toBe(v1);
      expect(await answer(tiny)).toBe('tiny v1\n');
      // Once there is room again, the same checkout deploys.
      await deployOk(tiny);
      expect(await answer(tiny)).toBe('tiny v2\n');
    } finally {
      await run(PM2_BIN, ['kill'], { env: tiny.env });
      await run('umount', ['-l', state]);
    }
  });
});

describe('deploys in place', { timeout: 300_000 }, () => {
  const IN_PLACE = (yaml: string) => yaml.replace(/^ {4}stopTimeoutSeconds: 5$/m, '    stopTimeoutSeconds: 5\n    buildOutputs: [dist]');

  test('a failed build puts the previous build output back; a crash says the service is down and what to run', async () => {
    const tiny = await setupTiny({ editManifest: IN_PLACE });
    await setVersion(tiny, 'v1');
    await deployOk(tiny);
    const built = path.join(tiny.root, 'app', 'dist', 'server.js');
    const good = await fsp.readFile(built, 'utf8');
    await tiny.editManifest((yaml) => yaml.replace('build: ["mkdir -p dist", "cp src/server.js dist/server.js"]', 'build: ["mkdir -p dist", "echo half > dist/server.js", "exit 3"]'));
    const failed = await tiny.deploy();
    expect(failed.code, output(failed)).toBe(1);
    expect(failed.stderr).toContain('nothing was restarted: the running version keeps serving');
    expect(failed.stdout).toContain('put the previous app/dist back');
    expect(await fsp.readFile(built, 'utf8')).toBe(good);
    await run(PM2_BIN, ['restart', 'tiny-staging-web'], { env: tiny.env });
    await waitFor(() => answer(tiny), 15_000);
    expect(await answer(tiny)).toBe('tiny v1\n');

    await tiny.editManifest((yaml) => yaml.replace('build: ["mkdir -p dist", "echo half > dist/server.js", "exit 3"]', 'build: ["mkdir -p dist", "cp src/server.js dist/server.js"]'));
    await setVersion(tiny, 'v2', CRASH_AT_START);
    const crashed = await tiny.deploy();
    expect(crashed.code, output(crashed)).toBe(1);
    expect(crashed.stderr).toContain('tiny-staging-web does not run: tiny-staging is DOWN (a deploy in place has no automatic rollback)');
    expect(crashed.stderr).toContain('crash at start: DATABASE_URL is not set');
    expect(crashed.stderr).toMatch(/releases: \{ keep: 5 \} in the manifest gives automatic rollback/);
  });

  test('pre-flight refuses too little free disk and an unwritable logs folder, naming the fix', async () => {
    const tiny = await setupTiny({ editManifest: (yaml) => `${yaml}    minFreeDiskMB: 1048576\n` });
    const disk = await tiny.deploy();
    expect(disk.code).toBe(1);
    expect(disk.stderr).toMatch(/only \d+ MB free on the disk of .* \(at least 1048576 MB needed\)/);
    expect(disk.stderr).toContain('fix: free disk space');

    await tiny.editManifest((yaml) => yaml.replace('    minFreeDiskMB: 1048576\n', ''));
    // A logs "folder" the service user cannot create files in (a file of that name, as even root cannot write into one).
    await fsp.rm(path.join(tiny.root, 'logs'), { recursive: true, force: true });
    await fsp.writeFile(path.join(tiny.root, 'logs'), '');
    const r = await tiny.deploy();
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr).toContain(`${tiny.root}/logs is not writable by`);
    expect(r.stderr).toMatch(/fix: sudo chown -R \S+ .*\/logs/);
  });
});
