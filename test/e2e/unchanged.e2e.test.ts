// A deploy with nothing to do reloads nothing: no install or build ran, the checkout's files (with
// releases: the live release), the env file and Node.js are what the last successful deploy started,
// and every app runs from this checkout and answers its health URL. Anything else reloads, as does
// --force; start-<env>.sh reloads anyway. fixtures/tiny under a real PM2.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { PM2_BIN, pm2List, run, runOk, writeEnvFile, type RunResult } from './harness.js';
import { describeRun } from './project.js';
import { setupTiny, type TinyProject } from './tiny.js';

const ok = (r: RunResult): void => expect(r.code, describeRun(r)).toBe(0);
const NOTHING = /^==> Deployed tiny \(staging\)( release \S+)? in \d+\.\ds: unchanged since the last deploy and healthy, nothing reloaded$/m;

/** The pid of each process of the namespace, by PM2 name and id. */
async function pids(project: TinyProject): Promise<Record<string, number>> {
  return Object.fromEntries((await pm2List(project.env)).map((p) => [`${p.name}#${p.pm_id}`, p.pid]));
}

/** Deploys; expects success and says whether it reloaded (the apps' pids changed or the reload section ran). */
async function deployed(project: TinyProject, args: string[] = []): Promise<{ reloaded: boolean; run: RunResult }> {
  const before = await pids(project);
  const result = await project.deploy(args);
  ok(result);
  const skipped = NOTHING.test(result.stdout);
  expect(skipped, describeRun(result)).toBe(!result.stdout.includes('==> Start or reload namespace'));
  if (skipped) expect(await pids(project)).toEqual(before);
  return { reloaded: !skipped, run: result };
}

describe('an unchanged deploy of healthy apps reloads nothing', () => {
  test('in place: unchanged reloads nothing; a source file, the env file, a stopped app or --force reload', async () => {
    const project = await setupTiny();
    expect((await deployed(project)).reloaded).toBe(true);

    const unchanged = await deployed(project);
    expect(unchanged.reloaded).toBe(false);
    expect(unchanged.run.stdout).toContain('ok skipped build web: inputs unchanged');
    expect(unchanged.run.stdout).not.toContain('verify web');
    expect(unchanged.run.stdout).toContain('start-staging.sh reloads the apps anyway; --force also redoes install and build');

    // A file no step reads (not a build input): the checkout's files differ, so the apps are reloaded.
    await fsp.writeFile(path.join(project.root, 'NOTES.md'), 'not an input of any step\n');
    expect((await deployed(project)).reloaded).toBe(true);
    expect((await deployed(project)).reloaded).toBe(false);

    // A new value in the env file reaches the app: reloaded.
    await writeEnvFile(project.root, '.env.staging', { TINY_API_KEY: 'rotated-key' });
    expect((await deployed(project)).reloaded).toBe(true);
    const app = (await pm2List(project.env)).find((p) => p.name === 'tiny-staging-web')!;
    expect(app.env.TINY_API_KEY).toBe('rotated-key');
    expect((await deployed(project)).reloaded).toBe(false);

    // A stopped app is started again, although nothing changed.
    await runOk(PM2_BIN, ['stop', 'tiny-staging-web'], { env: project.env });
    expect((await deployed(project)).reloaded).toBe(true);
    expect((await pm2List(project.env)).find((p) => p.name === 'tiny-staging-web')?.status).toBe('online');

    // --force reloads (and redoes install and build); start reloads anyway.
    expect((await deployed(project, ['--force'])).reloaded).toBe(true);
    const before = await pids(project);
    const started = await run('bash', [path.join(project.root, 'deploy/scripts/start-staging.sh')], { cwd: project.root, env: project.env, timeoutMs: 120_000 });
    ok(started);
    expect(await pids(project)).not.toEqual(before);
    expect((await deployed(project)).reloaded).toBe(false);
  }, 240_000);

  test('an app that is online but does not answer its health URL is reloaded; one missing from PM2 is started', async () => {
    const project = await setupTiny();
    expect((await deployed(project)).reloaded).toBe(true);
    // Hung: PM2 still reports it online, but it answers nothing.
    const hung = (await pm2List(project.env)).find((p) => p.name === 'tiny-staging-web')!;
    process.kill(hung.pid, 'SIGSTOP');
    try {
      expect((await deployed(project)).reloaded).toBe(true);
    } finally {
      try { process.kill(hung.pid, 'SIGCONT'); } catch { /* replaced and gone */ }
    }
    expect((await pm2List(project.env)).find((p) => p.name === 'tiny-staging-web')?.pid).not.toBe(hung.pid);
    expect((await deployed(project)).reloaded).toBe(false);

    await runOk(PM2_BIN, ['delete', 'tiny-staging-web'], { env: project.env });
    expect((await deployed(project)).reloaded).toBe(true);
    expect((await pm2List(project.env)).filter((p) => p.name === 'tiny-staging-web').map((p) => p.status)).toEqual(['online']);
  }, 180_000);

  test('with releases: an unchanged checkout whose release serves reloads nothing; after a rollback the deploy switches back', async () => {
    const project = await setupTiny({ editManifest: (yaml) => yaml.replace(/^( {2}staging:\n)/m, '$1    releases: { keep: 3 }\n') });
    expect((await deployed(project)).reloaded).toBe(true);
    const unchanged = await deployed(project);
    expect(unchanged.reloaded).toBe(false);
    expect(unchanged.run.stdout).toMatch(/the checkout is unchanged since release \S+/);

    // A second release, then a rollback to the first: the checkout is not what serves any more.
    await fsp.appendFile(path.join(project.root, 'app/src/server.js'), '// version 2\n');
    expect((await deployed(project)).reloaded).toBe(true);
    const rollback = await run('bash', [path.join(project.root, 'deploy/scripts/rollback-staging.sh')], { cwd: project.root, env: project.env, timeoutMs: 120_000 });
    ok(rollback);
    const back = await deployed(project);
    expect(back.reloaded).toBe(true);
    expect((await deployed(project)).reloaded).toBe(false);
  }, 240_000);
});
