// Issue 3, items 3, 4 and 5, and alerting: the generated scripts under faults, with real
// processes. Each test has its own copy of fixtures/e2e, free ports and its own PM2_HOME.
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { freePort, httpGet, isAlive, run, startForeignServer, startWebhookReceiver, waitFor, writeEnvFile } from './harness.js';
import { generateIn } from '../helpers/generate.js';
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
      expect(hung.stderr).toContain(`${BACKEND} does not answer ${project.backendUrl('/health')}: restarting ${BACKEND} only`);
      expect(hung.stdout).toMatch(new RegExp(`ok ${BACKEND} answers .* \\(\\d+\\.\\ds\\)`));
      expect(hung.stdout).toContain(`ok ${FRONTEND} answers`);
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
    expect(missing.ms).toBeLessThan(30_000);
    expect(await httpGet(project.backendUrl('/health'), 1000)).toMatchObject({ kind: 'response', status: 200 });
    after = await appState(project);
    expect(after[BACKEND]!.status).toBe('online');
    expect(after[FRONTEND]).toEqual(before[FRONTEND]);

    // Polling, not sleeping: the generated script never sleeps a whole second or more.
    const script = await fsp.readFile(project.script('health-check'), 'utf8');
    const lib = await fsp.readFile(path.join(project.root, 'deploy/scripts/deploygen-lib.sh'), 'utf8');
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
      const script = await fsp.readFile(project.script('health-check'), 'utf8');
      expect(script).toContain("'E2E_ALERT_WEBHOOK'");
      await start(project, 'alerting: start');

      const healthy = await project.runScript('health-check');
      expectOk(healthy);
      await new Promise((r) => setTimeout(r, 300));
      expect(hook.received).toEqual([]);

      // The backend goes down (stopped in PM2); the health check alerts, restarts it, alerts again.
      const down = await run('pm2', ['stop', BACKEND], { env: project.env, timeoutMs: 60_000 });
      expect(down.code, describeRun(down)).toBe(0);
      expect((await httpGet(project.backendUrl('/health'), 1000)).kind).toBe('error');
      const r = await project.runScript('health-check');
      expectOk(r);
      const got = await hook.waitFor(2);
      expect(got).toHaveLength(2);
      for (const req of got) {
        expect(req.method).toBe('POST');
        expect(req.headers['content-type']).toBe('application/json');
        expect(req.body).toMatchObject({ project: PROJECT, environment: 'staging', app: BACKEND });
        expect(typeof (req.body as { time: unknown }).time).toBe('string');
        expect(req.raw).not.toContain(API_KEY);
      }
      expect((got[0]!.body as { event: string }).event).toBe('failure');
      expect((got[1]!.body as { event: string }).event).toBe('recovery');
      expect(got[0]!.at).toBeLessThanOrEqual(got[1]!.at);
      await expectServing(project);

      // A webhook that cannot be reached costs a warning, never the health check itself.
      await hook.close();
      expectOk(await run('pm2', ['stop', BACKEND], { env: project.env, timeoutMs: 60_000 }));
      const unreachable = await project.runScript('health-check');
      expectOk(unreachable);
      expect(unreachable.stderr).toContain(`could not POST the failure alert for ${BACKEND}`);
      expect(unreachable.stderr).toContain(`could not POST the recovery alert for ${BACKEND}`);
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
    await refused('env file missing', `env file ${envFile} is missing`, `cp ${path.join(project.root, '.env.staging.example')} ${envFile}`);
    await fsp.rename(`${envFile}.away`, envFile);

    // Required key empty.
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: '' });
    await refused('required key empty', `required key(s) not set in ${envFile}: E2E_API_KEY`, `add E2E_API_KEY=<value>`);

    // Required key still equal to the example's value.
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: 'replace-me' });
    await refused('required key equal to the example', `still have the example's placeholder value: E2E_API_KEY`, 'replace the value of E2E_API_KEY');
    await writeEnvFile(project.root, '.env.staging', { E2E_API_KEY: API_KEY });

    // A port held by a foreign process: the backend moves to a port something else listens on.
    const taken = await freePort();
    const foreign = await startForeignServer(taken);
    try {
      await fsp.writeFile(manifest, goodManifest.replace(`port: ${project.backendPort}`, `port: ${taken}`));
      await generateIn(project.root);
      await refused(
        'port held by a foreign process',
        `port ${taken} (for ${BACKEND}) is already in use by PID ${foreign.pid}`,
        `stop that process, or give ${BACKEND} another port`,
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
    await refused('failing build', /^error: build frontend \(in web\) failed \(exit \d+\); nothing was restarted/, 'fix the build error above');
    await fsp.writeFile(page, goodPage);

    // A verify command that fails (the backend package no longer imports).
    const server = path.join(project.root, 'backend/e2eapp/server.py');
    const goodServer = await fsp.readFile(server, 'utf8');
    await fsp.writeFile(server, `${goodServer}\nraise RuntimeError("broken on purpose")\n`);
    await refused('failing verify command', /^error: verify backend failed \(exit \d+\); nothing was restarted/, 'fix what the verify command of backend reports');
    await fsp.writeFile(server, goodServer);

    expect((await project.apps()).map((a) => `${a.namespace}/${a.name}/${a.status}`)).toEqual([
      `${NAMESPACE}/${BACKEND}/online`,
      `${NAMESPACE}/${FRONTEND}/online`,
    ]);
  }, 300_000);
});
