// The generated logrotate configuration: accepted by logrotate itself (-d) once the install step
// has put a root in, for roots with spaces and shell characters; sizes and counts from the manifest.
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { findManifest, loadManifest } from '../../src/manifest/load.js';
import { planGeneration } from '../../src/generate.js';
import { ROOT_PLACEHOLDER } from '../../src/outputs/logrotate.js';
import { TINY_FIXTURE } from '../e2e/tiny.js';
import { instantiateLogrotate } from './logrotate-install.js';

const temps: string[] = [];
afterAll(async () => {
  for (const dir of temps) await fsp.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-logrotate-'));
  temps.push(dir);
  await fsp.chmod(dir, 0o755); // the service user reaches the project through it
  return dir;
}

/** fixtures/tiny's manifest, edited, planned in memory; returns the staging logrotate file. */
async function generatedConfig(edit: (yaml: string) => string = (y) => y): Promise<string> {
  const dir = await tempDir();
  const yaml = await fsp.readFile(path.join(TINY_FIXTURE, 'deploygen.yaml'), 'utf8');
  await fsp.writeFile(path.join(dir, 'deploygen.yaml'), edit(yaml));
  const plan = planGeneration(await loadManifest(findManifest(dir), dir));
  const file = plan.files.find((f) => f.path === 'logrotate/tiny-staging.conf');
  expect(file, 'logrotate/tiny-staging.conf is generated').toBeDefined();
  expect(file!.mode).toBe(0o644);
  return file!.content;
}

/** The host's own service user and group stand in for tiny's (logrotate -d resolves su's names). */
const asNobody = (yaml: string) => yaml.replace(/^( {4}env: \{ TINY_ENV: staging \})$/m, '$1\n    systemd: { user: www-data, group: www-data }');

/** logrotate -d (debug: reads, checks, rotates nothing) on the file installed for `root`. */
async function logrotateDebug(content: string, root: string): Promise<{ code: number | null; output: string }> {
  await fsp.mkdir(path.join(root, 'logs'), { recursive: true });
  await fsp.writeFile(path.join(root, 'logs', 'tiny-staging-web.out.log'), 'a line\n');
  // Owned by the service user, as on a host (logrotate's su makes it act as that user).
  expect(spawnSync('chown', ['-R', 'www-data:www-data', root]).status).toBe(0);
  const conf = path.join(await tempDir(), 'tiny-staging');
  await fsp.writeFile(conf, instantiateLogrotate(content, root), { mode: 0o644 });
  const state = path.join(path.dirname(conf), 'state');
  const r = spawnSync('logrotate', ['-d', '-s', state, conf], { encoding: 'utf8' });
  return { code: r.status, output: r.stdout + r.stderr };
}

describe('the generated logrotate configuration', () => {
  test('names no root: the placeholder stands for it', async () => {
    const content = await generatedConfig();
    expect(content).toContain(`"${ROOT_PLACEHOLDER}/logs/*.log" {`);
    expect(content).not.toMatch(/\/tmp|\/home\/|\/root\b/);
    expect(content).toMatch(/^ {2}su tiny tiny$/m);
    expect(content).toMatch(/^ {2}size 10M$/m);
    expect(content).toMatch(/^ {2}rotate 7$/m);
    expect(content).toMatch(/^ {2}copytruncate$/m);
  });

  for (const [label, rootName] of [
    ['a plain root', 'srv-tiny'],
    ['a root with spaces, "$", "`" and "\'"', "my $HOME `id` it's tiny"],
  ] as const) {
    test(`passes logrotate -d once installed for ${label}`, async () => {
      const root = path.join(await tempDir(), rootName);
      const { code, output } = await logrotateDebug(await generatedConfig(asNobody), root);
      expect(output).not.toMatch(/error/i);
      expect(code, output).toBe(0);
      expect(output).toContain(`${root}/logs/*.log`);
      expect(output).toContain(`${root}/logs/tiny-staging-web.out.log`);
    });
  }

  test("a project PM2_HOME puts the root in the scripts and rotates pm2.log with the logs of the apps", async () => {
    const content = await generatedConfig((y) => asNobody(y).replace(/^( {4}requiredEnv: .*)$/m, '$1\n    pm2Home: .pm2-staging\n    logs: { maxSize: 50M, keep: 3 }'));
    expect(content).toMatch(/^ {2}size 50M$/m);
    expect(content).toMatch(/^ {2}rotate 3$/m);
    expect(content).toContain(`"${ROOT_PLACEHOLDER}/logs/*.log" "${ROOT_PLACEHOLDER}/.pm2-staging/pm2.log" {`);
    expect(content).toMatch(new RegExp(`^${ROOT_PLACEHOLDER}$`, 'm'));
    const root = path.join(await tempDir(), 'it $s root');
    await fsp.mkdir(path.join(root, '.pm2-staging'), { recursive: true });
    await fsp.writeFile(path.join(root, '.pm2-staging', 'pm2.log'), 'daemon line\n');
    const { code, output } = await logrotateDebug(content, root);
    expect(code, output).toBe(0);
    expect(output).toContain(`${root}/.pm2-staging/pm2.log`);
    // The postrotate script, run by sh with the root as installed, finds that PM2 home.
    const script = /prerotate\n([\s\S]*?)\n {2}endscript/.exec(instantiateLogrotate(content, root))![1]!;
    const probe = spawnSync('sh', ['-c', script.replace(/pid=\$\(cat[\s\S]*/, 'printf %s "$pm2_home"')], { encoding: 'utf8' });
    expect(probe.stdout).toBe(`${root}/.pm2-staging`);
  });

  test('an invalid maxSize is refused with the manifest path', async () => {
    await expect(generatedConfig((y) => y.replace(/^( {4}requiredEnv: .*)$/m, '$1\n    logs: { maxSize: 10MB }'))).rejects.toThrow(
      /environments\.staging\.logs\.maxSize[\s\S]*k, M or G/,
    );
  });

  test('installing refuses a root logrotate cannot quote', () => {
    for (const root of ['/srv/a"b', '/srv/a\\b', '/srv/a*', '/srv/a?', '/srv/a[1]', '/srv/a\nb', 'relative/root', '/srv/trailing/']) {
      expect(() => instantiateLogrotate(`"${ROOT_PLACEHOLDER}/logs/*.log" {}`, root), root).toThrow();
    }
  });
});
