// A redeploy skips an install or build whose inputs did not change since it last
// succeeded, says so, and redoes everything with --force; a changed lock file or source file runs
// them again; a failed build records nothing. Mostly on fixtures/tiny (fast), plus one full deploy
// and one unchanged redeploy of fixtures/e2e (FastAPI + Next.js) for the figures.
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { httpGet, pm2List, type RunResult } from './harness.js';
import { describeRun, expectOk, expectServing, setupProject } from './project.js';
import { setupTiny } from './tiny.js';

const ok = (r: RunResult): void => expect(r.code, describeRun(r)).toBe(0);
const SHA256 = /^[0-9a-f]{64}\n$/;

/** What the deploy did with each step: "ran: <why>" or "skipped", by "install web" etc. */
function steps(r: RunResult): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^ {4}(install|build) (\S+) \(in [^)]*\): (.+)$/gm)) out[`${m[1]} ${m[2]}`] = `ran: ${m[3]}`;
  for (const m of r.stdout.matchAll(/^ {4}ok skipped (install|build) (\S+): inputs unchanged$/gm)) out[`${m[1]} ${m[2]}`] = 'skipped';
  return out;
}

describe('deploy-staging.sh skips unchanged install and build', () => {
  test('a second deploy says it skipped both; the dry run says it would; --force redoes both', async () => {
    const project = await setupTiny();
    const first = await project.deploy();
    ok(first);
    expect(steps(first)).toEqual({ 'install web': 'ran: no earlier success recorded', 'build web': 'ran: no earlier success recorded' });
    expect(await fsp.readFile(project.stateFile('web', 'install'), 'utf8')).toMatch(SHA256);
    expect(await fsp.readFile(project.stateFile('web', 'build'), 'utf8')).toMatch(SHA256);

    const dry = await project.deploy(['--dry-run']);
    ok(dry);
    expect(dry.stdout).toContain('plan\twould skip install web: inputs unchanged\n');
    expect(dry.stdout).toContain('plan\twould skip build web: inputs unchanged\n');

    const second = await project.deploy();
    ok(second);
    expect(second.stdout).toContain('ok skipped install web: inputs unchanged');
    expect(second.stdout).toContain('ok skipped build web: inputs unchanged');
    expect(steps(second)).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });
    // Nothing ran and the app serves what the first deploy started: nothing to verify or reload.
    expect(second.stdout).not.toContain('verify web');
    expect(second.stdout).toContain('unchanged since the last deploy and healthy, nothing reloaded');
    expect(await httpGet(`http://127.0.0.1:${project.ports[0]}/health`)).toMatchObject({ kind: 'response', status: 200 });
    console.log(`[e2e] tiny: first deploy ${first.ms} ms, unchanged redeploy ${second.ms} ms`);

    const forcedDry = await project.deploy(['--dry-run', '--force']);
    expect(forcedDry.stdout).toContain('plan\twould run install web (--force)\n');
    const forced = await project.deploy(['--force']);
    ok(forced);
    expect(steps(forced)).toEqual({ 'install web': 'ran: --force', 'build web': 'ran: --force' });
    expect(await fsp.readFile(project.stateFile('web', 'build'), 'utf8')).toMatch(SHA256);
    // --print-values (a tool's view) is unchanged by the plan lines.
    const values = await project.deploy(['--print-values']);
    expect(values.stdout).not.toContain('would');
  }, 120_000);

  test('a changed lock file runs install and build again, a changed source file the build only, missing outputs both', async () => {
    const project = await setupTiny();
    const app = path.join(project.root, 'app');
    ok(await project.deploy());

    await fsp.writeFile(path.join(app, 'package-lock.json'), '{"name":"tiny","lockfileVersion":3,"packages":{}}\n');
    const lock = await project.deploy();
    ok(lock);
    expect(steps(lock)).toEqual({ 'install web': 'ran: inputs changed', 'build web': 'ran: inputs changed' });
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });

    const source = path.join(app, 'src', 'server.js');
    await fsp.appendFile(source, '// changed\n');
    const changed = await project.deploy();
    ok(changed);
    expect(steps(changed)).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
    expect(await fsp.readFile(path.join(app, 'dist', 'server.js'), 'utf8')).toContain('// changed\n');

    // The build output is gone (undeclared, it is among the build's inputs): the build runs again;
    // the install, which never wrote it, does not.
    await fsp.rm(path.join(app, 'dist'), { recursive: true });
    const missing = await project.deploy();
    ok(missing);
    expect(steps(missing)).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
    expect(await fsp.readFile(path.join(app, 'dist', 'server.js'), 'utf8')).toContain('// changed\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });

    // A changed build command is a change too.
    await project.editManifest((yaml) => yaml.replace('build: ["mkdir -p dist"', 'build: ["mkdir -p -- dist"'));
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
  }, 120_000);

  test('declared buildOutputs: a deleted output runs the build again, and is no build input', async () => {
    const project = await setupTiny({ editManifest: (yaml) => yaml.replace(/^( {4}build: .*)$/m, '$1\n    buildOutputs: [dist]') });
    const app = path.join(project.root, 'app');
    expect(await fsp.readFile(path.join(project.root, 'deploy/scripts/config-staging.sh'), 'utf8')).toContain("DG_OUTPUTS_OF[web.build]='dist'\n");
    ok(await project.deploy());
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });
    // An output changed by hand is not an input: nothing runs.
    await fsp.appendFile(path.join(app, 'dist', 'server.js'), '// edited by hand\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });
    // Gone: the build runs again and puts it back.
    await fsp.rm(path.join(app, 'dist'), { recursive: true });
    const dry = await project.deploy(['--dry-run']);
    expect(dry.stdout).toContain('plan\twould run build web (inputs changed)\n');
    const rebuilt = await project.deploy();
    ok(rebuilt);
    expect(steps(rebuilt)).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
    expect(existsSync(path.join(app, 'dist', 'server.js'))).toBe(true);
    expect(existsSync(path.join(app, 'dist.deploygen-previous'))).toBe(false);
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });
  }, 120_000);

  test('declared buildInputs: only those files (and the dependency files) count for the build', async () => {
    const project = await setupTiny({ editManifest: (yaml) => yaml.replace(/^( {4}build: .*)$/m, '$1\n    buildInputs: [src, "*.config.js"]') });
    const app = path.join(project.root, 'app');
    expect(await fsp.readFile(path.join(project.root, 'deploy/scripts/config-staging.sh'), 'utf8')).toContain("DG_BUILD_INPUTS[web]='src\n*.config.js'\n");
    ok(await project.deploy());
    await fsp.writeFile(path.join(app, 'NOTES.md'), 'not a build input\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'skipped' });
    await fsp.writeFile(path.join(app, 'tiny.config.js'), 'module.exports = {};\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
    await fsp.appendFile(path.join(app, 'src', 'server.js'), '// changed\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'skipped', 'build web': 'ran: inputs changed' });
    await fsp.writeFile(path.join(app, 'requirements.txt'), 'fastapi\n');
    expect(steps(await project.deploy())).toEqual({ 'install web': 'ran: inputs changed', 'build web': 'ran: inputs changed' });
  }, 120_000);

  test('a failed build records no hash: the running version keeps serving and the next deploy builds again', async () => {
    const project = await setupTiny({ editManifest: (yaml) => yaml.replace('"cp src/server.js dist/server.js"]', '"cp src/server.js dist/server.js", "test ! -e src/FAIL"]') });
    const app = path.join(project.root, 'app');
    ok(await project.deploy());
    const before = (await pm2List(project.env)).map((p) => p.pid);

    await fsp.writeFile(path.join(app, 'src', 'FAIL'), '');
    const failed = await project.deploy();
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.stderr).toContain('error: build web (in app) failed');
    expect(existsSync(project.stateFile('web', 'build'))).toBe(false);
    expect(await fsp.readFile(project.stateFile('web', 'install'), 'utf8')).toMatch(SHA256);
    expect((await pm2List(project.env)).map((p) => p.pid)).toEqual(before);
    expect(await httpGet(`http://127.0.0.1:${project.ports[0]}/health`)).toMatchObject({ kind: 'response', status: 200 });

    // Even with the inputs as they were at the last success, the build runs again: nothing is recorded.
    await fsp.rm(path.join(app, 'src', 'FAIL'));
    const dry = await project.deploy(['--dry-run']);
    expect(dry.stdout).toContain('plan\twould run build web (no earlier success recorded)\n');
    const again = await project.deploy();
    ok(again);
    expect(steps(again)).toEqual({ 'install web': 'skipped', 'build web': 'ran: no earlier success recorded' });
    expect(await fsp.readFile(project.stateFile('web', 'build'), 'utf8')).toMatch(SHA256);
  }, 120_000);
});

describe('fixtures/e2e (FastAPI + Next.js): full deploy, then an unchanged redeploy', () => {
  test('the redeploy skips the venv, npm ci and next build, and is much faster', async () => {
    const project = await setupProject({ fresh: true });
    const full = await project.deploy('full deploy (venv + npm ci + next build)');
    expectOk(full);
    expect(steps(full)).toEqual({
      'install backend': 'ran: no earlier success recorded',
      'install frontend': 'ran: no earlier success recorded',
      'build frontend': 'ran: no earlier success recorded',
    });
    const unchanged = await project.deploy('unchanged redeploy');
    expectOk(unchanged);
    expect(steps(unchanged)).toEqual({ 'install backend': 'skipped', 'install frontend': 'skipped', 'build frontend': 'skipped' });
    await expectServing(project);
    // The deferred record of the Next.js build was committed, and no backup of .next is left.
    expect(await fsp.readFile(path.join(project.root, '.deploygen/staging/steps/frontend.build'), 'utf8')).toMatch(SHA256);
    expect(existsSync(path.join(project.root, '.deploygen/staging/steps/frontend.build.new'))).toBe(false);
    expect(existsSync(path.join(project.root, 'web/.next.deploygen-previous'))).toBe(false);
    console.log(`[e2e] full deploy ${full.ms} ms, unchanged redeploy ${unchanged.ms} ms (node ${process.version})`);
    expect(unchanged.ms).toBeLessThan(full.ms / 2);
  }, 600_000);
});
