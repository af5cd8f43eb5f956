/**
 * Proves the e2e harness against real processes: PM2 daemons in throwaway PM2_HOMEs,
 * real ports, a foreign listener, a webhook receiver, and the prepared e2e fixture
 * (FastAPI under uvicorn + Next.js) running under PM2 from a hard-linked copy.
 */
import { existsSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  E2E_FIXTURE,
  PM2_BIN,
  buildOnce,
  cleanEnv,
  copyProject,
  findPm2Processes,
  freePort,
  freePorts,
  httpGet,
  httpPostJson,
  isAlive,
  isPortFree,
  killPm2,
  makePm2Home,
  parsePm2Jlist,
  pm2Env,
  pm2List,
  prepareE2eProject,
  run,
  runOk,
  startForeignServer,
  startWebhookReceiver,
  useProjectCopy,
  usePm2Home,
  waitFor,
  waitForHttp,
  writeEnvFile,
} from './harness.js';

const TINY_APP = `
const http = require('node:http');
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ app: 'tiny', pid: process.pid, mark: process.env.HARNESS_MARK ?? null }));
}).listen(port, '127.0.0.1');
`;

async function tinyAppDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-tiny-'));
  await fsp.writeFile(path.join(dir, 'app.cjs'), TINY_APP);
  return dir;
}

describe('ports', () => {
  test('freePort returns a bindable port; freePorts returns distinct ones', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(await isPortFree(port)).toBe(true);
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const p of ports) expect(await isPortFree(p)).toBe(true);
  });
});

describe('run', () => {
  test('returns code and output without throwing on failure', async () => {
    const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    expect(r.ms).toBeGreaterThanOrEqual(0);
    await expect(runOk('sh', ['-c', 'exit 4'])).rejects.toThrow(/code 4/);
  });

  test('reports a command that cannot start', async () => {
    const r = await run('/nonexistent/command-xyz');
    expect(r.code).toBeNull();
    expect(r.error?.message).toMatch(/ENOENT/);
  });

  test('passes cwd, env and stdin', async () => {
    const dir = os.tmpdir();
    const r = await run('sh', ['-c', 'pwd; echo "$FOO"; cat'], { cwd: dir, env: cleanEnv({ FOO: 'bar' }), input: 'in' });
    expect(r.stdout).toBe(`${await fsp.realpath(dir)}\nbar\nin`);
  });

  test('timeout kills the whole process group', async () => {
    const r = await run('sh', ['-c', 'sleep 60 & echo $!; wait'], { timeoutMs: 500 });
    expect(r.timedOut).toBe(true);
    const grandchild = Number(r.stdout.trim());
    expect(grandchild).toBeGreaterThan(0);
    await waitFor(() => !isAlive(grandchild), 5000, { what: 'grandchild sleep to die' });
  });

  test('returns soon after exit even if a grandchild keeps stdout open', async () => {
    const r = await run('sh', ['-c', 'sleep 3 & echo $!; echo started']);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(2500);
    const [pid, msg] = r.stdout.trim().split('\n');
    expect(msg).toBe('started');
    process.kill(Number(pid), 'SIGKILL');
  });
});

describe('environment', () => {
  test('cleanEnv drops runner and npm variables; pm2Env isolates PM2', () => {
    expect(process.env.VITEST).toBeDefined(); // we are under vitest: it must be stripped below
    const env = cleanEnv();
    for (const k of Object.keys(env)) expect(k).not.toMatch(/^(npm_|VITEST|PM2_)/i);
    expect(env.NODE_ENV).toBeUndefined();
    expect(env.TEST).toBeUndefined();
    const p = pm2Env('/tmp/some-home', { EXTRA: '1' });
    expect(p.PM2_HOME).toBe('/tmp/some-home');
    expect(p.NO_COLOR).toBe('1');
    expect(p.EXTRA).toBe('1');
    expect(p.PATH?.split(':')[0]).toBe(path.dirname(PM2_BIN));
    expect(existsSync(PM2_BIN)).toBe(true);
  });
});

describe('http', () => {
  test('httpGet reports a refused connection as a value', async () => {
    const port = await freePort();
    const r = await httpGet(`http://127.0.0.1:${port}/`, 1000);
    expect(r).toMatchObject({ kind: 'error', code: 'ECONNREFUSED' });
  });

  test('waitForHttp gives up after its timeout with the last result', async () => {
    const port = await freePort();
    const t0 = Date.now();
    await expect(waitForHttp(`http://127.0.0.1:${port}/`, 400)).rejects.toThrow(/not ready after 400 ms; last: ECONNREFUSED/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('foreign server', () => {
  test('holds a port, answers, refuses a taken port, and frees it on stop', async () => {
    const port = await freePort();
    const foreign = await startForeignServer(port);
    try {
      expect(isAlive(foreign.pid)).toBe(true);
      expect(await isPortFree(port)).toBe(false);
      const r = await httpGet(foreign.url);
      expect(r).toMatchObject({ kind: 'response', status: 200, body: 'foreign\n' });
      await expect(startForeignServer(port)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await foreign.stop();
    }
    expect(isAlive(foreign.pid)).toBe(false);
    expect(await isPortFree(port)).toBe(true);
    await foreign.stop(); // idempotent
  });
});

describe('webhook receiver', () => {
  test('collects POSTed JSON bodies', async () => {
    const hook = await startWebhookReceiver();
    try {
      expect(hook.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/hook$/);
      const r = await httpPostJson(hook.url, { text: 'deploy failed', env: 'staging' });
      expect(r).toMatchObject({ kind: 'response', status: 200 });
      await httpGet(hook.url.replace('/hook', '/other'), 2000, { method: 'POST', body: 'not json' });
      const got = await hook.waitFor(2);
      expect(got[0]).toMatchObject({ method: 'POST', path: '/hook', body: { text: 'deploy failed', env: 'staging' } });
      expect(got[1]).toMatchObject({ path: '/other', raw: 'not json', body: undefined });
    } finally {
      await hook.close();
    }
    expect((await httpGet(hook.url, 1000)).kind).toBe('error');
  });
});

describe('pm2', () => {
  test('a daemon in a temp PM2_HOME runs an app, lists it, and killPm2 leaves nothing behind', async () => {
    const pm2Home = await makePm2Home();
    const dir = await tinyAppDir();
    try {
      const port = await freePort();
      const env = pm2Env(pm2Home, { PORT: String(port), HARNESS_MARK: 'm1' });
      expect(await pm2List(env)).toEqual([]); // no daemon yet, and listing must not spawn one
      expect(existsSync(path.join(pm2Home, 'pm2.pid'))).toBe(false);

      await runOk('pm2', ['start', 'app.cjs', '--name', 'harness-tiny', '--namespace', 'harness-ns'], {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      });
      const ok = await waitForHttp(`http://127.0.0.1:${port}/`, 20_000);
      expect(JSON.parse(ok.body)).toMatchObject({ app: 'tiny', mark: 'm1' });

      const list = await pm2List(env);
      expect(list).toHaveLength(1);
      const app = list[0]!;
      expect(app).toMatchObject({ name: 'harness-tiny', namespace: 'harness-ns', status: 'online', pm_id: 0 });
      expect(app.pid).toBe(JSON.parse(ok.body).pid);
      expect(app.env.PORT).toBe(String(port));
      expect(app.env.PM2_HOME).toBe(pm2Home);
      expect(app.cwd).toBe(dir);

      const daemonPid = Number(await fsp.readFile(path.join(pm2Home, 'pm2.pid'), 'utf8'));
      const owned = findPm2Processes(pm2Home);
      expect(owned).toContain(daemonPid);
      expect(owned).toContain(app.pid);

      const result = await killPm2(pm2Home);
      expect(result.pm2KillCode).toBe(0);
      expect(isAlive(daemonPid)).toBe(false);
      expect(isAlive(app.pid)).toBe(false);
      expect(findPm2Processes(pm2Home)).toEqual([]);
      expect(await isPortFree(port)).toBe(true);
    } finally {
      await killPm2(pm2Home);
      await fsp.rm(pm2Home, { recursive: true, force: true });
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  test('killPm2 SIGKILLs survivors that pm2 kill missed', async () => {
    const pm2Home = await makePm2Home();
    try {
      // A process carrying this PM2_HOME but not managed by any daemon (e.g. an orphaned child).
      const stray = await run('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], { env: pm2Env(pm2Home) });
      const pid = Number(stray.stdout.trim());
      expect(findPm2Processes(pm2Home)).toContain(pid);
      const r = await killPm2(pm2Home);
      expect(r.pm2KillCode).toBeNull(); // no daemon: pm2 kill not called
      expect(r.killed).toContain(pid);
      expect(isAlive(pid)).toBe(false);
    } finally {
      await fsp.rm(pm2Home, { recursive: true, force: true });
    }
  }, 30_000);

  let leakedHome = '';
  let leakedPids: number[] = [];
  test.fails('usePm2Home cleans up even when the test fails (this test fails on purpose)', async () => {
    const { home, env } = await usePm2Home();
    leakedHome = home;
    const dir = await tinyAppDir();
    const port = await freePort();
    await runOk('pm2', ['start', path.join(dir, 'app.cjs'), '--name', 'doomed'], {
      env: { ...env, PORT: String(port) },
      timeoutMs: 60_000,
    });
    await waitForHttp(`http://127.0.0.1:${port}/`, 20_000);
    leakedPids = findPm2Processes(home);
    expect(leakedPids.length).toBeGreaterThanOrEqual(2);
    await fsp.rm(dir, { recursive: true, force: true });
    throw new Error('deliberate failure');
  }, 90_000);

  test('... and after it no process of that PM2_HOME is alive', () => {
    expect(leakedHome).not.toBe('');
    expect(leakedPids.length).toBeGreaterThanOrEqual(2);
    for (const pid of leakedPids) expect(isAlive(pid)).toBe(false);
    expect(findPm2Processes(leakedHome)).toEqual([]);
  });
  afterAll(async () => {
    if (leakedHome) await fsp.rm(leakedHome, { recursive: true, force: true }); // kept because it "failed"
  });

  test('parsePm2Jlist tolerates log lines before the JSON', () => {
    const out = '[PM2] Spawning PM2 daemon with pm2_home=/x\n[PM2] PM2 Successfully daemonized\n' +
      JSON.stringify([{ name: 'a', pid: 12, pm_id: 0, pm2_env: { namespace: 'ns', status: 'online', env: { A: '1', N: 2 } } }]) + '\n';
    expect(parsePm2Jlist(out)).toMatchObject([{ name: 'a', namespace: 'ns', status: 'online', pid: 12, pm_id: 0, env: { A: '1' } }]);
    expect(parsePm2Jlist('[]\n')).toEqual([]);
    expect(() => parsePm2Jlist('[PM2] nothing here')).toThrow(/no JSON array/);
  });
});

describe('buildOnce', () => {
  test('builds once when called concurrently, and steals a lock left by a dead process', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-buildonce-'));
    try {
      let builds = 0;
      const builder = async (tmp: string): Promise<void> => {
        builds++;
        await new Promise((r) => setTimeout(r, 300));
        await fsp.writeFile(path.join(tmp, 'artifact'), 'x');
      };
      const results = await Promise.all([1, 2, 3].map(() => buildOnce(root, 'k1', builder, { pollMs: 50 })));
      expect(builds).toBe(1);
      expect(results.filter((r) => r.built)).toHaveLength(1);
      for (const r of results) expect(await fsp.readFile(path.join(r.dir, 'artifact'), 'utf8')).toBe('x');

      // A lock whose owner died (pid of a finished process) must not block forever.
      const dead = await run('sh', ['-c', 'echo $$']);
      await fsp.mkdir(path.join(root, 'k2.lock'));
      await fsp.writeFile(path.join(root, 'k2.lock', 'owner'), dead.stdout);
      await fsp.mkdir(path.join(root, `k2.build-${dead.stdout.trim()}-dead`));
      const r2 = await buildOnce(root, 'k2', builder, { pollMs: 50, timeoutMs: 5000 });
      expect(r2.built).toBe(true);
      expect((await fsp.readdir(root)).sort()).toEqual(['k1', 'k2']);
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});

describe('prepared e2e project', () => {
  test('copyProject without linkFrom skips heavy folders and local env files', async () => {
    const src = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-src-'));
    try {
      for (const d of ['web/node_modules/x', 'web/.next', 'backend/.venv/bin', 'logs', 'backend/e2eapp/__pycache__']) {
        await fsp.mkdir(path.join(src, d), { recursive: true });
      }
      await fsp.writeFile(path.join(src, 'deploygen.yaml'), 'version: 1\n');
      await fsp.writeFile(path.join(src, '.env.staging'), 'SECRET=1\n');
      await fsp.writeFile(path.join(src, '.env.staging.example'), 'SECRET=replace-me\n');
      await fsp.writeFile(path.join(src, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
      await fsp.symlink('/usr/bin/python3', path.join(src, 'backend/.venv/bin/python'));
      const copy = await useProjectCopy(src);
      const all = (await fsp.readdir(copy, { recursive: true })).map(String).sort();
      expect(all).toEqual(['.env.staging.example', 'backend', 'backend/e2eapp', 'deploygen.yaml', 'run.sh', 'web']);
      expect(statSync(path.join(copy, 'run.sh')).mode & 0o777).toBe(0o755);
      const withVenv = await useProjectCopy(src, { include: ['.venv'] });
      expect(await fsp.readlink(path.join(withVenv, 'backend/.venv/bin/python'))).toBe('/usr/bin/python3');
    } finally {
      await fsp.rm(src, { recursive: true, force: true });
    }
  });

  test('prepareE2eProject builds once; a linked copy runs backend and frontend under PM2', async () => {
    const prepared = await prepareE2eProject();
    expect(existsSync(path.join(prepared.dir, 'web/.next/BUILD_ID'))).toBe(true);
    expect(existsSync(path.join(prepared.dir, 'backend/.venv/bin/python'))).toBe(true);
    if (prepared.timings) console.log(`[harness] prepared e2e (${prepared.built ? 'built now' : 'cached'}):`, prepared.timings);
    expect(await prepareE2eProject()).toBe(await prepareE2eProject()); // memoised in-process

    const t0 = Date.now();
    const dir = await useProjectCopy(E2E_FIXTURE, { linkFrom: prepared.dir });
    const copyMs = Date.now() - t0;
    // node_modules is hard-linked (same inode), .venv and .next are real copies.
    const nextPkg = 'web/node_modules/next/package.json';
    expect(statSync(path.join(dir, nextPkg)).ino).toBe(statSync(path.join(prepared.dir, nextPkg)).ino);
    expect(statSync(path.join(dir, 'web/.next/BUILD_ID')).ino).not.toBe(statSync(path.join(prepared.dir, 'web/.next/BUILD_ID')).ino);
    expect(existsSync(path.join(dir, 'backend/.venv/bin/python'))).toBe(true);
    expect(existsSync(path.join(dir, '.env.staging'))).toBe(false);
    expect(existsSync(path.join(dir, 'deploygen.yaml'))).toBe(true);
    console.log(`[harness] linked copy in ${copyMs} ms`);
    await writeEnvFile(dir, '.env.staging', { E2E_API_KEY: 'k-123' });

    const { env } = await usePm2Home();
    const [backendPort, webPort] = (await freePorts(2)) as [number, number];
    await runOk(
      'pm2',
      ['start', '.venv/bin/python', '--name', 'e2e-backend', '--namespace', 'e2e', '--interpreter', 'none',
        '--kill-timeout', '5000', '--', '-m', 'uvicorn', 'e2eapp.server:app', '--host', '127.0.0.1', '--port', String(backendPort)],
      { cwd: path.join(dir, 'backend'), env: { ...env, PYTHONPATH: '.', E2EAPP_ENV: 'staging' }, timeoutMs: 60_000 },
    );
    await runOk(
      'pm2',
      ['start', 'node_modules/.bin/next', '--name', 'e2e-frontend', '--namespace', 'e2e', '--',
        'start', '-H', '127.0.0.1', '-p', String(webPort)],
      { cwd: path.join(dir, 'web'), env: { ...env, NODE_ENV: 'production', E2EAPP_ENV: 'staging' }, timeoutMs: 60_000 },
    );
    const health = await waitForHttp(`http://127.0.0.1:${backendPort}/health`, 60_000);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    const version = await httpGet(`http://127.0.0.1:${backendPort}/version`);
    expect(version.kind === 'response' && JSON.parse(version.body)).toMatchObject({ version: '1' });
    const names = await httpGet(`http://127.0.0.1:${backendPort}/env-names`);
    expect(names.kind).toBe('response');
    const nameList = JSON.parse(names.kind === 'response' ? names.body : '[]') as string[];
    expect(nameList).toContain('E2EAPP_ENV');
    expect(nameList).toEqual([...nameList].sort());
    expect(names.kind === 'response' && names.body).not.toContain('staging'); // names only, never values

    const page = await waitForHttp(`http://127.0.0.1:${webPort}/`, 60_000);
    expect(page.body).toContain('e2eapp web');
    expect(page.body).toMatch(/E2EAPP_ENV=(<!-- -->)?<span data-testid="e2eapp-env">staging<\/span>/);

    const apps = await pm2List(env);
    expect(apps.map((a) => `${a.namespace}/${a.name}/${a.status}`).sort()).toEqual([
      'e2e/e2e-backend/online',
      'e2e/e2e-frontend/online',
    ]);

    // Graceful stop: an in-flight /slow (2 s) completes while PM2 stops uvicorn with SIGINT.
    const slow = httpGet(`http://127.0.0.1:${backendPort}/slow`, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const stop = await run('pm2', ['stop', 'e2e-backend'], { env, timeoutMs: 30_000 });
    expect(stop.code).toBe(0);
    expect(await slow).toMatchObject({ kind: 'response', status: 200, body: '{"slow":true}' });
  }, 600_000);
});
