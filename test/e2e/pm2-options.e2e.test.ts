// The manifest's PM2 process options as real PM2 applies them: a generated ecosystem file is
// started with `pm2 start` directly (its own PM2_HOME per test), and PM2's behaviour is observed.
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { generateIn } from '../helpers/generate.js';
import { PM2_BIN, pm2List, run, runOk, usePm2Home, waitFor, type Pm2Handle } from './harness.js';

/** A project folder with the given manifest and app files, generated in place (removed when the test ends). */
async function project(manifest: string[], files: Record<string, string>): Promise<{ root: string; ecosystem: string }> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'dg-pm2-options-'));
  onTestFinished(() => fsp.rm(root, { recursive: true, force: true }));
  await fsp.writeFile(path.join(root, 'deploygen.yaml'), [...manifest, ''].join('\n'));
  for (const [name, text] of Object.entries(files)) await fsp.writeFile(path.join(root, name), text);
  const { outputDir } = await generateIn(root);
  return { root, ecosystem: path.join(outputDir, 'ecosystem.staging.config.js') };
}

/**
 * `pm2 start ECOSYSTEM` against the test's own daemon. PM2 checks memory limits every
 * PM2_WORKER_INTERVAL ms (30 s by default); the daemon started here reads it from this environment.
 */
async function pm2Start(pm2: Pm2Handle, ecosystem: string, root: string) {
  const env = { ...pm2.env, PM2_WORKER_INTERVAL: '500' };
  await runOk(PM2_BIN, ['start', ecosystem], { cwd: root, env, timeoutMs: 60_000 });
  return env;
}

const header = (app: string[]) => ['version: 1', 'project: opts', 'apps:', ...app, 'environments:', '  staging: {}'];

describe('PM2 options from the manifest, under real PM2', () => {
  it('maxMemory: PM2 restarts an app whose memory grows past the limit', async () => {
    const pm2 = await usePm2Home();
    // 200 MB filled (so really resident) against a 100 MB limit.
    const { root, ecosystem } = await project(header(['  hog:', '    runtime: node', '    script: hog.js', '    maxMemory: 100M']), {
      'hog.js': "const kept = Buffer.alloc(200 * 1024 * 1024, 1);\nsetInterval(() => kept[0]++, 1000);\n",
    });
    const env = await pm2Start(pm2, ecosystem, root);
    const restarted = await waitFor(
      async () => {
        const hog = (await pm2List(env)).find((p) => p.name === 'opts-staging-hog');
        return hog && hog.restarts >= 1 ? hog : undefined;
      },
      60_000,
      { what: 'PM2 to restart the app over its memory limit' },
    );
    expect(restarted.raw).toMatchObject({ pm2_env: { max_memory_restart: 100 * 1024 * 1024 } });
    const log = await fsp.readFile(path.join(pm2.home, 'pm2.log'), 'utf8');
    expect(log).toMatch(/restarted because it exceeds --max-memory-restart value/);
  });

  it('instances: max starts one cluster worker per CPU, as PM2 counts CPUs (os.cpus().length)', async () => {
    const pm2 = await usePm2Home();
    const { root, ecosystem } = await project(header(['  web:', '    runtime: node', '    script: idle.js', '    instances: max']), {
      'idle.js': 'setInterval(() => {}, 1000);\n',
    });
    const env = await pm2Start(pm2, ecosystem, root);
    const workers = (await pm2List(env)).filter((p) => p.name === 'opts-staging-web');
    // On this machine os.availableParallelism() equals os.cpus().length; PM2 counts the latter.
    expect(workers).toHaveLength(os.cpus().length);
    expect(workers.length).toBe(os.availableParallelism());
    for (const worker of workers) expect(worker.execMode).toBe('cluster_mode');
  });

  it("waitReady: pm2 start returns only after the app's process.send('ready'); nodeArgs reach node", async () => {
    const pm2 = await usePm2Home();
    const { root, ecosystem } = await project(
      header(['  slow:', '    runtime: node', '    script: slow.js', '    waitReady: true', '    nodeArgs: [--max-old-space-size=123]']),
      {
        // Writes its marker, then announces readiness, a second and a half after starting.
        'slow.js': [
          "const fs = require('node:fs');",
          'setTimeout(() => {',
          "  fs.writeFileSync('ready-sent', JSON.stringify(process.execArgv));",
          "  process.send('ready');",
          '}, 1500);',
          'setInterval(() => {}, 1000);',
          '',
        ].join('\n'),
      },
    );
    await pm2Start(pm2, ecosystem, root);
    // Order, not time: the marker is written just before the ready message PM2 waited for.
    const execArgv = JSON.parse(await fsp.readFile(path.join(root, 'ready-sent'), 'utf8')) as string[];
    expect(execArgv).toContain('--max-old-space-size=123');
  });

  it('cronRestart: PM2 restarts the app on its schedule (6 fields: every 2 seconds)', async () => {
    const pm2 = await usePm2Home();
    const { root, ecosystem } = await project(header(['  tick:', '    runtime: node', '    script: idle.js', '    cronRestart: "*/2 * * * * *"']), {
      'idle.js': 'setInterval(() => {}, 1000);\n',
    });
    const env = await pm2Start(pm2, ecosystem, root);
    // The schedule may already be restarting it when `pm2 start` returns: wait for it to be up first.
    const tick = async () => (await pm2List(env)).find((p) => p.name === 'opts-staging-tick');
    const first = await waitFor(async () => {
      const app = await tick();
      return app?.status === 'online' && app.pid ? app : undefined;
    }, 30_000, { what: 'the app online' });
    await waitFor(async () => ((await tick())?.pid ?? first.pid) !== first.pid, 30_000, {
      what: 'the scheduled restart (a new pid)',
    });
    const result = await run(PM2_BIN, ['describe', 'opts-staging-tick'], { env });
    expect(result.stdout).toContain('*/2 * * * * *');
  });
});
