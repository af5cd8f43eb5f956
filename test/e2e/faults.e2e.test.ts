// The generated scripts under faults, with real processes: a graceful stop, a health check that
// heals one app and alerts once per transition, deploys refused before anything restarts, an app
// that crashes at start, and one run per environment at a time. Each test has its own copy of
// fixtures/e2e (or fixtures/tiny), free ports and its own PM2_HOME.
import { existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { findProcessesWithEnv, freePort, httpGet, isAlive, run, startForeignServer, startWebhookReceiver, waitFor, writeEnvFile, type RunResult } from './harness.js';
import { generateIn } from '../helpers/generate.js';
import { setupTiny } from './tiny.js';
import {
  API_KEY,
  BACKEND,
  FRONTEND,
  NAMESPACE,
  PROJECT,
  appState,
  describeRun,
  expectOk,
  expectServing,
  setupProject,
  type E2eProject,
} from './project.js';

const ok = (r: RunResult): void => expect(r.code, describeRun(r)).toBe(0);

async function start(project: E2eProject, label: string): Promise<void> {
  const r = await project.runScript('start');
  console.log(`[e2e] ${label}: start-staging.sh took ${r.ms} ms (exit ${r.code})`);
  expectOk(r);
  await expectServing(project);
}

describe('stop-staging.sh', () => {
  test('3. graceful stop: a /slow request in flight when stop runs completes with 200', async () => {
    const project = await setupProject();
    await start(project, '3. start');
    const slow = httpGet(project.backendUrl('/slow'), 15_000);
    await new Promise((r) => setTimeout(r, 300)); // the request is in the app now
    const stop = await project.runScript('stop');
    expectOk(stop);
    expect(await slow).toMatchObject({ kind: 'response', status: 200, body: '{"slow":true}' });
    expect(stop.stdout).toContain(`stopped ${BACKEND}`);
    expect(stop.stdout).toContain(`stopped ${FRONTEND}`);
    expect(Object.values(await appState(project)).map((a) => a.status)).toEqual(['stopped', 'stopped']);
    expect((await httpGet(project.backendUrl('/health'), 1000)).kind).toBe('error');
    // The stop waited for the request rather than killing it: it took about as long as /slow did.
    expect(stop.ms).toBeGreaterThan(1000);
  }, 120_000);
});

describe('health-check-staging.sh', () => {
  test('4. the backend is killed: the health check restarts only that app and returns once it answers', async () => {
    const project = await setupProject();
    await start(project, '4. start');
    const before = await appState(project);
    const backendPid = before[BACKEND]!.pid;

    // (a) The backend's process is killed outright. PM2 may already be reviving it; either way
    // the health check returns only once the backend answers, and touches nothing else.
    process.kill(backendPid, 'SIGKILL');
    await waitFor(() => !isAlive(backendPid), 5000, { what: 'the backend to die' });
    const killed = await project.runScript('health-check');
    console.log(`[e2e] 4a. health check after SIGKILL took ${killed.ms} ms`);
    expectOk(killed);
    expect(await httpGet(project.backendUrl('/health'), 1000)).toMatchObject({ kind: 'response', status: 200 });
    let after = await appState(project);
    expect(after[BACKEND]!.pid).not.toBe(backendPid);
    expect(after[FRONTEND]).toEqual(before[FRONTEND]);

    // (b) The backend's process hangs (alive for PM2, dead for clients): only the health check can
    // notice. It restarts that app only, then polls until it answers.
    const hungPid = after[BACKEND]!.pid;
    const hungRestarts = after[BACKEND]!.restarts;
    process.kill(hungPid, 'SIGSTOP');
    try {
      expect((await httpGet(project.backendUrl('/health'), 1000)).kind).toBe('error');
      const hung = await project.runScript('health-check');
      console.log(`[e2e] 4b. health check of a hung backend took ${hung.ms} ms`);
      expectOk(hung);
      expect(hung.stderr).toContain(`warning: ${BACKEND} does not answer ${project.backendUrl('/health')}: restarting ${BACKEND} only\n`);
      expect(hung.stdout).toMatch(new RegExp(`ok ${BACKEND} answers .* \\(\\d+\\.\\ds\\)`));
      expect(hung.stdout).toContain(`ok ${FRONTEND} is healthy`);
      expect(await httpGet(project.backendUrl('/health'), 1000)).toMatchObject({ kind: 'response', status: 200 });
      after = await appState(project);
      expect(after[BACKEND]!.pid).not.toBe(hungPid);
      expect(after[BACKEND]!.restarts).toBe(hungRestarts + 1);
      expect(after[FRONTEND]).toEqual(before[FRONTEND]);
    } finally {
      if (isAlive(hungPid)) process.kill(hungPid, 'SIGCONT');
    }

    // (c) The backend is gone from PM2 altogether (deleted, or the daemon was restarted by another
    // project without it): a restart cannot help, the health check starts it from the ecosystem file.
    const gone = await run('pm2', ['delete', BACKEND], { env: project.env, timeoutMs: 60_000 });
    expect(gone.code, describeRun(gone)).toBe(0);
    const missing = await project.runScript('health-check');
    console.log(`[e2e] 4c. health check of a backend missing from PM2 took ${missing.ms} ms`);
    expectOk(missing);
    expect(missing.stderr).toContain(`warning: ${BACKEND} is missing from PM2: restarting ${BACKEND} only\n`);
    expect(missing.ms).toBeLessThan(30_000);
    expect(await httpGet(project.backendUrl('/health'), 1000)).toMatchObject({ kind: 'response', status: 200 });
    after = await appState(project);
    expect(after[BACKEND]!.status).toBe('online');
    expect(after[FRONTEND]).toEqual(before[FRONTEND]);

    // Polling, not sleeping: the generated script never sleeps a whole second or more.
    const script = await fsp.readFile(project.script('health-check'), 'utf8');
    const lib = await fsp.readFile(path.join(project.root, 'deploy/scripts/deploygen-lib.sh'), 'utf8');
    expect(lib).toMatch(/\bsleep 0\.25\b/);
    for (const text of [script, lib]) {
      for (const m of text.matchAll(/\bsleep\s+([0-9.]+)/g)) expect(Number(m[1])).toBeLessThan(1);
    }
  }, 180_000);

  test('alerting: the webhook gets a JSON POST on failure and on recovery, and nothing while healthy', async () => {
    const hook = await startWebhookReceiver();
    try {
      const project = await setupProject({
        editManifest: (yaml) => yaml.replace(/^( {4}requiredEnv: .*)$/m, '$1\n    alerts: { webhookEnv: E2E_ALERT_WEBHOOK }'),
        envVars: { E2E_API_KEY: API_KEY, E2E_ALERT_WEBHOOK: hook.url },
      });
      const config = await fsp.readFile(path.join(project.root, 'deploy/scripts/config-staging.sh'), 'utf8');
      expect(config).toContain("DG_ALERT_WEBHOOK_ENV='E2E_ALERT_WEBHOOK'");
      await start(project, 'alerting: start');

      const healthy = await project.runScript('health-check');
      expectOk(healthy);
      await new Promise((r) => setTimeout(r, 300));
      expect(hook.received).toEqual([]);

      // The backend goes down (stopped in PM2); the health check alerts, restarts it, alerts again:
      // once per transition, named by the manifest's app key.
      const down = await run('pm2', ['stop', BACKEND], { env: project.env, timeoutMs: 60_000 });
      expect(down.code, describeRun(down)).toBe(0);
      expect((await httpGet(project.backendUrl('/health'), 1000)).kind).toBe('error');
      const r = await project.runScript('health-check');
      expectOk(r);
      expect(r.stderr).toContain(`warning: ${BACKEND} is stopped: restarting ${BACKEND} only\n`);
      const got = await hook.waitFor(2);
      expect(got).toHaveLength(2);
      for (const req of got) {
        expect(req.method).toBe('POST');
        expect(req.headers['content-type']).toBe('application/json');
        expect(req.body).toMatchObject({ project: PROJECT, environment: 'staging', app: 'backend' });
        expect(typeof (req.body as { time: unknown }).time).toBe('string');
        expect(typeof (req.body as { detail: unknown }).detail).toBe('string');
        expect(req.raw).not.toContain(API_KEY);
      }
      expect((got[0]!.body as { event: string }).event).toBe('down');
      expect((got[1]!.body as { event: string }).event).toBe('up');
      expect(got[0]!.at).toBeLessThanOrEqual(got[1]!.at);
      await expectServing(project);
      expect(await fsp.readFile(path.join(project.root, '.deploygen/staging/health/backend'), 'utf8')).toBe('up\n');
      // Healthy again: no further alert.
      expectOk(await project.runScript('health-check'));
      await new Promise((r) => setTimeout(r, 300));
      expect(hook.received).toHaveLength(2);

      // A webhook that cannot be reached costs a warning, never the health check itself.
      await hook.close();
      expectOk(await run('pm2', ['stop', BACKEND], { env: project.env, timeoutMs: 60_000 }));
      const unreachable = await project.runScript('health-check');
      expectOk(unreachable);
      expect(unreachable.stderr).toMatch(/warning: the down alert for backend could not be sent \(.+\); the next check tries again/);
      // The receiver never heard of the failure, so it is told of no recovery either.
      expect(unreachable.stderr).not.toContain('the up alert for backend');
      expect(await fsp.readFile(path.join(project.root, '.deploygen/staging/health/backend'), 'utf8')).toBe('up\n');
      await expectServing(project);
    } finally {
      await hook.close();
    }
  }, 180_000);
});

describe('deploy-staging.sh refuses bad input and leaves the running version serving', () => {
  test('5. env file missing, key empty, key equal to the example, foreign port, failing build, failing verify', async () => {
    const project = await setupProject();
    expectOk(await project.deploy('5. deploy the version that must keep serving'));
    await expectServing(project);
    const running = await appState(project);
    expect(Object.keys(running)).toEqual([BACKEND, FRONTEND]);
    const buildId = await fsp.readFile(path.join(project.root, 'web/.next/BUILD_ID'), 'utf8');
    const envFile = path.join(project.root, '.env.staging');
    const manifest = path.join(project.root, 'deploygen.yaml');
    const goodManifest = await fsp.readFile(manifest, 'utf8');

    /** Deploy, expect a refusal with `message` and a `fix:` line, and the running version untouched. */
    const refused = async (label: string, message: string | RegExp, fix: string | RegExp): Promise<string> => {
      const r = await project.deploy(`5. ${label}`);
      const why = `${label}\n${describeRun(r)}`;
      expect(r.code, why).not.toBe(0);
      expect(r.timedOut, why).toBe(false);
      const errorLine = r.stderr.split('\n').find((l) => l.startsWith('error: ')) ?? '';
      const fixLine = r.stderr.split('\n').find((l) => l.startsWith('fix: ')) ?? '';
      if (typeof message === 'string') expect(errorLine, why).toContain(message);
      else expect(errorLine, why).toMatch(message);
      if (typeof fix === 'string') expect(fixLine, why).toContain(fix);
      else expect(fixLine, why).toMatch(fix);
      expect(await appState(project), `${label}: nothing restarted`).toEqual(running);
      await expectServing(project, 1000);
      expect(await fsp.readFile(path.join(project.root, 'web/.next/BUILD_ID'), 'utf8'), `${label}: build output kept`).toBe(buildId);
      expect(existsSync(path.join(project.root, 'web/.next.deploygen-previous')), label).toBe(false);
      return r.stdout;
    };

    // Env file missing.
    await fsp.rename(envFile, `${envFile}.away`);
    await refused('env file missing', `error: ${envFile} is missing`, `create it from its example (cp ${path.join(project.root, '.env.staging.example')} ${envFile})`);
    await fsp.rename(`${envFile}.away`, envFile);

    // Required key empty.
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: '' });
    await refused('required key empty', `${envFile}: E2E_API_KEY is empty`, `set E2E_API_KEY=<the real value> in ${envFile}`);

    // Required key still equal to the example's value.
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: 'replace-me' });
    await refused(
      'required key equal to the example',
      `${envFile}: E2E_API_KEY still has the example's placeholder value from ${path.join(project.root, '.env.staging.example')}`,
      `set E2E_API_KEY=<the real value> in ${envFile}`,
    );
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: API_KEY });

    // A port held by a foreign process: the backend moves to a port something else listens on.
    const taken = await freePort();
    const foreign = await startForeignServer(taken);
    try {
      await fsp.writeFile(manifest, goodManifest.replace(`port: ${project.backendPort}`, `port: ${taken}`));
      await generateIn(project.root);
      await refused(
        'port held by a foreign process',
        `port ${taken} (for backend) is already in use by PID ${foreign.pid} (`,
        'stop that process, or give backend another port in the manifest and regenerate',
      );
    } finally {
      await foreign.stop();
      await fsp.writeFile(manifest, goodManifest);
      await generateIn(project.root);
    }

    // A failing build: the previous .next is put back, so the running frontend keeps its files.
    const page = path.join(project.root, 'web/app/page.jsx');
    const goodPage = await fsp.readFile(page, 'utf8');
    await fsp.writeFile(page, `${goodPage}\nexport const broken = ;\n`);
    await refused('failing build', /^error: build frontend \(in web\) failed \(exit \d+\); nothing was restarted: the running version keeps serving$/, 'fix the build error above');
    await fsp.writeFile(page, goodPage);

    // A verify command that fails (the backend package no longer imports).
    const server = path.join(project.root, 'backend/e2eapp/server.py');
    const goodServer = await fsp.readFile(server, 'utf8');
    await fsp.writeFile(server, `${goodServer}\nraise RuntimeError("broken on purpose")\n`);
    await refused('failing verify command', /^error: verify backend failed \(exit \d+\); nothing was restarted: the running version keeps serving$/, 'fix what the verify command of backend reports');
    await fsp.writeFile(server, goodServer);

    expect((await project.apps()).map((a) => `${a.namespace}/${a.name}/${a.status}`)).toEqual([
      `${NAMESPACE}/${BACKEND}/online`,
      `${NAMESPACE}/${FRONTEND}/online`,
    ]);
  }, 300_000);
});

describe('deploy-staging.sh in place, when the new version crashes at start', () => {
  test('it stops watching at the crash loop, says the namespace is down, and prints the app log', async () => {
    const project = await setupTiny();
    ok(await project.deploy());
    const server = path.join(project.root, 'app/src/server.js');
    await fsp.appendFile(server, "\nthrow new Error('broken at start on purpose');\n");
    const r = await project.deploy();
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.timedOut).toBe(false);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    // The watch names the reason (a crash loop, or no process left), then the script says what it means.
    expect(errors[0], describeRun(r)).toMatch(/^error: tiny-staging-web (crashes at start \(PM2 restarted it, \d+\.\ds after the start\)|is not running \(\d+\.\ds after the start\))$/);
    expect(errors).toContain('error: tiny-staging-web does not run: tiny-staging is DOWN (a deploy in place has no automatic rollback)');
    expect(r.stderr).toContain(`--- last lines of ${path.join(project.root, 'logs/tiny-staging-web.err.log')} ---`);
    expect(r.stderr).toContain('broken at start on purpose');
    expect(r.stderr).toMatch(/^fix: fix the app \(its log is above\), then deploy again; releases: \{ keep: 5 \} in the manifest gives automatic rollback$/m);
    // Nothing of the failed run is recorded as a success: the fixed version builds again.
    await fsp.writeFile(server, (await fsp.readFile(server, 'utf8')).replace("\nthrow new Error('broken at start on purpose');\n", ''));
    const fixed = await project.deploy();
    ok(fixed);
    expect(fixed.stdout).toContain('build web (in app): ');
    expect(await httpGet(`http://127.0.0.1:${project.ports[0]}/health`)).toMatchObject({ kind: 'response', status: 200 });
  }, 120_000);
});

describe('one deploy, start or stop per environment at a time', () => {
  test('a second run waits for the lock (or fails at once with --no-wait), the health check skips its turn', async () => {
    // The build waits for a file, so that the first deploy holds the lock as long as the test needs.
    const project = await setupTiny({ editManifest: (yaml) => yaml.replace('"cp src/server.js dist/server.js"]', '"cp src/server.js dist/server.js", "until test -e ../GO; do sleep 0.1; done"]') });
    const go = path.join(project.root, 'GO');
    await fsp.writeFile(go, '');
    ok(await project.deploy());
    await fsp.rm(go);
    await fsp.appendFile(path.join(project.root, 'app/src/server.js'), '// version 2\n');
    const lockInfo = path.join(project.root, '.deploygen/staging/lock.info');

    const first = project.deploy();
    const holder = await waitFor(async () => (existsSync(lockInfo) ? await fsp.readFile(lockInfo, 'utf8') : ''), 60_000, { what: 'the first deploy to take the lock' });
    expect(holder).toMatch(/^pid \d+ \(deploy-staging\.sh deploy\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/);

    const refused = await project.deploy(['--no-wait']);
    expect(refused.code, describeRun(refused)).toBe(1);
    expect(refused.stderr).toContain(`error: another run still holds the lock of tiny-staging: ${holder.trim()}`);
    expect(refused.stderr).toContain('fix: wait for it to finish (or stop it), then run again');
    const stop = await run('bash', [path.join(project.root, 'deploy/scripts/stop-staging.sh'), '--no-wait'], { cwd: project.root, env: project.env });
    expect(stop.code, describeRun(stop)).toBe(1);
    expect(stop.stderr).toContain('error: another run still holds the lock of tiny-staging');
    const health = await run('bash', [path.join(project.root, 'deploy/scripts/health-check-staging.sh')], { cwd: project.root, env: project.env });
    expect(health.code, describeRun(health)).toBe(0);
    expect(health.stdout).toContain('ok a deploy, start or stop of tiny-staging is running: not checking now');

    // A run without --no-wait waits, saying for whom, and goes on once the first is done.
    const second = project.deploy([], { env: { ...project.env, DG_LOCK_WAIT: '120' } });
    const waiting = () =>
      findProcessesWithEnv('PM2_HOME', project.pm2.home).some((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('flock\x00-w\x00120\x00');
        } catch {
          return false;
        }
      });
    await waitFor(waiting, 60_000, { what: 'the second deploy to wait for the lock' });
    await fsp.writeFile(go, '');
    ok(await first);
    const waited = await second;
    ok(waited);
    expect(waited.stdout).toContain(`another run holds the lock of tiny-staging: ${holder.trim()}; waiting up to 120s`);
    expect(existsSync(lockInfo)).toBe(false);
    expect(await httpGet(`http://127.0.0.1:${project.ports[0]}/`)).toMatchObject({ kind: 'response', status: 200 });
  }, 180_000);
});
