// The generated deploy script deploys a real FastAPI + Next.js project under a real PM2 daemon,
// redeploys it while it serves, leaves other projects' apps alone, keeps working after the project
// folder moved, and replaces apps that run from another checkout only when told to. Every test works
// in its own copy of fixtures/e2e (or fixtures/tiny), on free ports of 127.0.0.1, with its own
// PM2_HOME (killed at the end, pass or fail).
import { existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { freePort, httpGet, pm2List, run, runOk, waitForHttp, writeEnvFile } from './harness.js';
import {
  API_KEY,
  BACKEND,
  FRONTEND,
  NAMESPACE,
  appState,
  describeRun,
  expectOk,
  expectServing,
  longestOutageMs,
  pollUrls,
  projectAt,
  removeWhenDone,
  setupProject,
} from './project.js';
import { setupTiny } from './tiny.js';

const environOf = (pid: number): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
};

const jsonOf = async (url: string): Promise<unknown> => {
  const r = await httpGet(url);
  if (r.kind !== 'response' || r.status !== 200) throw new Error(`GET ${url}: ${r.kind === 'response' ? r.status : r.code}`);
  return JSON.parse(r.body) as unknown;
};

/** A small node server run by PM2 as another project's app ("other-app" in namespace "other"). */
async function startOtherProjectApp(env: NodeJS.ProcessEnv): Promise<{ port: number; dir: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-other-'));
  removeWhenDone(dir);
  await fsp.writeFile(
    path.join(dir, 'server.cjs'),
    "require('node:http').createServer((q, s) => s.end('other\\n')).listen(Number(process.env.PORT), '127.0.0.1');\n",
  );
  const port = await freePort();
  await runOk('pm2', ['start', 'server.cjs', '--name', 'other-app', '--namespace', 'other'], {
    cwd: dir,
    env: { ...env, PORT: String(port) },
    timeoutMs: 60_000,
  });
  await waitForHttp(`http://127.0.0.1:${port}/`, 20_000);
  return { port, dir };
}

describe('deploy-staging.sh under a real PM2', () => {
  test('1. fresh host: installs, builds, verifies, starts both apps and returns once both answer', async () => {
    const project = await setupProject({ fresh: true });
    for (const dir of ['backend/.venv', 'web/node_modules', 'web/.next', 'logs']) {
      expect(existsSync(path.join(project.root, dir)), dir).toBe(false);
    }

    const r = await project.deploy('1. fresh host (npm ci + next build + venv)');
    expectOk(r);
    // It returned only once both apps answer: one request each, no waiting.
    const health = await httpGet(project.backendUrl('/health'));
    expect(health).toMatchObject({ kind: 'response', status: 200, body: '{"status":"ok"}' });
    const page = await httpGet(project.webUrl('/'));
    expect(page).toMatchObject({ kind: 'response', status: 200 });
    expect(page.kind === 'response' && page.body).toContain('e2eapp web');
    expect(page.kind === 'response' && page.body).toMatch(/E2EAPP_ENV=(<!-- -->)?<span data-testid="e2eapp-env">staging<\/span>/);

    // Every step ran, in order, and the artifacts exist.
    const sections = [...r.stdout.matchAll(/^==> (\S+)/gm)].map((m) => m[1]);
    expect(sections).toEqual(['Pre-flight:', 'Install', 'Build', 'Verify', 'Start', 'Deployed']);
    // The start waited for each app's health URL, and said when each answered.
    expect(r.stdout).toMatch(new RegExp(`^ {4}ok ${BACKEND} answers ${project.backendUrl('/health')} \\(\\d+\\.\\ds\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ {4}ok ${FRONTEND} answers ${project.webUrl('/')} \\(\\d+\\.\\ds\\)$`, 'm'));
    for (const file of ['backend/.venv/bin/python', 'web/node_modules/.bin/next', 'web/.next/BUILD_ID', 'logs']) {
      expect(existsSync(path.join(project.root, file)), file).toBe(true);
    }
    expect(existsSync(path.join(project.root, 'web/.next.deploygen-previous'))).toBe(false);

    // PM2 holds exactly this project's two apps, in its namespace.
    const all = await pm2List(project.env);
    expect(all.map((a) => `${a.namespace}/${a.name}/${a.status}`).sort()).toEqual([
      `${NAMESPACE}/${BACKEND}/online`,
      `${NAMESPACE}/${FRONTEND}/online`,
    ]);
    const frontend = all.find((a) => a.name === FRONTEND)!;
    const backend = all.find((a) => a.name === BACKEND)!;

    // The frontend runs `next start` (not dev) with NODE_ENV=production.
    expect(frontend.execPath).toBe(path.join(project.root, 'web/node_modules/.bin/next'));
    expect(frontend.args.slice(0, 1)).toEqual(['start']);
    expect(frontend.args).toEqual(['start', '-H', '127.0.0.1', '-p', String(project.webPort)]);
    expect(frontend.env.NODE_ENV).toBe('production');
    expect(environOf(frontend.pid).NODE_ENV).toBe('production');
    expect(frontend.cwd).toBe(path.join(project.root, 'web'));

    // The backend sees the required key from .env.staging (names only come back, never values).
    const names = (await jsonOf(project.backendUrl('/env-names'))) as string[];
    expect(names).toEqual(expect.arrayContaining(['E2E_API_KEY', 'E2EAPP_ENV', 'PORT', 'HOST', 'PYTHONPATH']));
    expect(environOf(backend.pid).E2E_API_KEY).toBe(API_KEY);
    expect(backend.cwd).toBe(path.join(project.root, 'backend'));
    expect(backend.execPath).toBe(path.join(project.root, 'backend/.venv/bin/python'));
  }, 300_000);

  test('2. redeploy while the apps run: succeeds, the new version serves, the apps keep answering', async () => {
    const project = await setupProject({ envVars: { E2E_API_KEY: API_KEY, E2E_OLD_TOKEN: 'revoked' } });
    // The running version (already installed and built, as after an earlier deploy).
    const first = await project.runScript('start');
    console.log(`[e2e] 2. running version: start-staging.sh took ${first.ms} ms`);
    expectOk(first);
    await expectServing(project);
    const before = (await jsonOf(project.backendUrl('/version'))) as { version: string; pid: number };
    expect(before.version).toBe('1');

    expect(environOf(before.pid).E2E_OLD_TOKEN).toBe('revoked');
    // The new version: new code, a rotated key, and a key removed from the env file.
    await fsp.writeFile(path.join(project.root, 'backend/VERSION'), '2\n');
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: 'rotated-key' });
    const poller = pollUrls([project.backendUrl('/health'), project.webUrl('/')], 100);
    const r = await project.deploy('2. redeploy with the apps running');
    const samples = await poller.stop();
    expectOk(r);
    // Right after the deploy returns, both answer, and the backend runs the new version.
    await expectServing(project, 1000);
    const after = (await jsonOf(project.backendUrl('/version'))) as { version: string; pid: number };
    expect(after.version).toBe('2');
    expect(after.pid).not.toBe(before.pid);
    for (const app of await project.apps()) {
      const env = environOf(app.pid);
      expect(env.E2E_API_KEY, app.name).toBe('rotated-key');
      expect(env, app.name).not.toHaveProperty('E2E_OLD_TOKEN'); // PM2's reload alone would keep it
    }
    expect(await jsonOf(project.backendUrl('/env-names'))).not.toContain('E2E_OLD_TOKEN');

    const failures = samples.filter((s) => !s.ok);
    const backendGap = longestOutageMs(samples, project.backendUrl('/health'));
    const webGap = longestOutageMs(samples, project.webUrl('/'));
    console.log(
      `[e2e] 2. during the redeploy: ${samples.length} probes, ${failures.length} failed; ` +
        `longest outage backend ${backendGap} ms, frontend ${webGap} ms`,
    );
    // The apps answered all through install, build and verify; only the restart at the end may drop
    // probes (fork mode, and a removed variable makes PM2 start both apps afresh). How long that
    // takes depends on the machine: it is measured by `npm run bench -- --deploy`, not asserted;
    // asserted is where the failures fall: in one window in the last part of the run, none during
    // the install/build/verify steps that take most of it.
    expect(samples.length).toBeGreaterThan(50);
    const window = failures.length > 0 ? failures[failures.length - 1]!.at - failures[0]!.at : 0;
    console.log(`[e2e] 2. failed probes: ${failures.length} in a window of ${window} ms, the first at +${failures.length > 0 ? failures[0]!.at - samples[0]!.at : 0} ms of ${r.ms} ms`);
    if (failures.length > 0) {
      expect(failures[0]!.at - samples[0]!.at).toBeGreaterThan(r.ms / 2);
      expect(window).toBeLessThan(r.ms / 4);
      expect(Math.max(backendGap, webGap)).toBeLessThan(r.ms / 4);
    }
  }, 300_000);

  test("6. another project's PM2 app in the same PM2_HOME stays online through deploy, stop and health-check", async () => {
    const project = await setupProject();
    const other = await startOtherProjectApp(project.env);
    const otherState = async () => {
      const app = (await pm2List(project.env)).find((a) => a.name === 'other-app');
      const answer = await httpGet(`http://127.0.0.1:${other.port}/`);
      return { status: app?.status, pid: app?.pid, restarts: app?.restarts, namespace: app?.namespace, answers: answer.kind === 'response' && answer.body === 'other\n' };
    };
    const initial = await otherState();
    expect(initial).toMatchObject({ status: 'online', namespace: 'other', answers: true });

    expectOk(await project.deploy('6. deploy next to another project'));
    await expectServing(project);
    expect(await otherState()).toEqual(initial);

    expectOk(await project.runScript('stop'));
    expect(Object.values(await appState(project)).map((a) => a.status)).toEqual(['stopped', 'stopped']);
    expect(await otherState()).toEqual(initial);

    const hc = await project.runScript('health-check');
    expectOk(hc);
    await expectServing(project);
    expect(await otherState()).toEqual(initial);
  }, 300_000);

  test('7. the project moved to another folder after generation deploys without regenerating, also while it runs', async () => {
    const project = await setupProject();
    const generated = await fsp.readFile(path.join(project.root, 'deploy/scripts/deploy-staging.sh'), 'utf8');
    const parent = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-moved-'));
    removeWhenDone(parent);
    const move = async (from: string, to: string) => {
      await fsp.mkdir(path.dirname(to), { recursive: true });
      const mv = await run('mv', [from, to]);
      expect(mv.code, describeRun(mv)).toBe(0);
      expect(existsSync(from)).toBe(false);
      return projectAt(to, project);
    };
    const expectRunsFrom = async (p: typeof project, version: string) => {
      await expectServing(p, 1000);
      const v = await httpGet(p.backendUrl('/version'));
      expect(v.kind === 'response' && JSON.parse(v.body)).toMatchObject({ version });
      const apps = await p.apps();
      expect(apps.map((a) => `${a.name}/${a.status}`)).toEqual([`${BACKEND}/online`, `${FRONTEND}/online`]);
      expect(apps.map((a) => a.cwd)).toEqual([path.join(p.root, 'backend'), path.join(p.root, 'web')]);
      expect(apps.map((a) => a.execPath)).toEqual([path.join(p.root, 'backend/.venv/bin/python'), path.join(p.root, 'web/node_modules/.bin/next')]);
      for (const a of apps) {
        expect(a.outLog).toBe(path.join(p.root, 'logs', `${a.name}.out.log`));
        expect(a.errLog).toBe(path.join(p.root, 'logs', `${a.name}.err.log`));
      }
    };

    // Moved after generation, before the first deploy (a folder name with a space, too).
    const moved = await move(project.root, path.join(parent, 'srv with space', 'e2eapp'));
    const r = await moved.deploy('7. deploy after moving the project');
    expectOk(r);
    await expectRunsFrom(moved, '1');
    expect(await fsp.readFile(path.join(moved.root, 'deploy/scripts/deploy-staging.sh'), 'utf8')).toBe(generated);
    expect(r.stdout).toContain(moved.root);
    expect(r.stdout + r.stderr).not.toContain(project.root);

    // Moved again while its apps run: the redeploy starts them from the new folder (PM2's reload
    // alone would keep the old folder and log paths), and they serve the new version.
    const again = await move(moved.root, path.join(parent, 'release-2'));
    await fsp.writeFile(path.join(again.root, 'backend/VERSION'), 'moved\n');
    const r2 = await again.deploy('7. redeploy after moving the running project');
    expectOk(r2);
    expect(r2.stdout).toContain(`${BACKEND} runs with settings a reload cannot change`);
    await expectRunsFrom(again, 'moved');
  }, 300_000);
});

describe('another checkout of the same project and environment', () => {
  test('its running apps are replaced only with --takeover, and the refusal leaves them serving', async () => {
    const project = await setupTiny();
    expectOk(await project.deploy());
    const url = `http://127.0.0.1:${project.ports[0]}/health`;
    const parent = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-checkout-'));
    removeWhenDone(parent);
    const other = path.join(parent, 'checkout-2');
    expectOk(await run('cp', ['-a', project.root, other]));
    const deployOther = (args: string[] = []) =>
      run('bash', [path.join(other, 'deploy/scripts/deploy-staging.sh'), ...args], { cwd: other, env: project.env, timeoutMs: 120_000 });
    const running = (await pm2List(project.env)).map((p) => ({ pid: p.pid, cwd: p.cwd }));
    expect(running).toEqual([{ pid: expect.any(Number), cwd: path.join(project.root, 'app') }]);

    const refused = await deployOther();
    expect(refused.code, describeRun(refused)).toBe(1);
    expect(refused.stderr).toContain(`error: tiny-staging-web already runs from another checkout: ${path.join(project.root, 'app')}\n`);
    expect(refused.stderr).toContain('fix: stop it there (its stop script), or pass --takeover to replace it with this checkout\'s');
    expect((await pm2List(project.env)).map((p) => ({ pid: p.pid, cwd: p.cwd }))).toEqual(running);
    expect(await httpGet(url)).toMatchObject({ kind: 'response', status: 200 });

    const taken = await deployOther(['--takeover']);
    expectOk(taken);
    expect(taken.stderr).toContain(`warning: tiny-staging-web runs from ${path.join(project.root, 'app')}: taking it over (--takeover)`);
    expect(taken.stdout).toContain('tiny-staging-web runs with settings a reload cannot change: starting it afresh');
    const now = await pm2List(project.env);
    expect(now.map((p) => p.cwd)).toEqual([path.join(other, 'app')]);
    expect(now.map((p) => p.pid)).not.toContain(running[0]!.pid);
    expect(await httpGet(url)).toMatchObject({ kind: 'response', status: 200 });
  }, 180_000);
});
