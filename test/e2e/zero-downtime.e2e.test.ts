// A redeploy under load. An app in PM2 cluster mode (node, instances: 2) is
// reloaded worker by worker (PM2 brings a new worker up before the old one goes) and never stopped
// first, so no request fails; a single fork-mode app is restarted, and the longest time in which no
// request succeeded is reported (not asserted: it depends on the machine). fixtures/tiny, with a
// second app of the same code in fork mode.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { startLoad } from '../bench/load.mjs';
import { pm2List } from './harness.js';
import { describeRun } from './project.js';
import { setupTiny, withSecondApp } from './tiny.js';

describe('redeploy under load', () => {
  test('cluster mode (instances: 2): no failed request; fork mode: the gap is reported', async () => {
    const project = await setupTiny({
      ports: 2,
      editManifest: (yaml, ports) => withSecondApp(yaml, 'solo', ports[1]!).replace(/^( {2}web:\n)/m, '$1    instances: 2\n'),
    });
    const [clusterPort, forkPort] = project.ports;
    const first = await project.deploy();
    expect(first.code, describeRun(first)).toBe(0);
    const before = await pm2List(project.env);
    const cluster = before.filter((p) => p.name === 'tiny-staging-web');
    expect(cluster.map((p) => p.execMode)).toEqual(['cluster_mode', 'cluster_mode']);
    expect(before.filter((p) => p.name === 'tiny-staging-solo').map((p) => p.execMode)).toEqual(['fork_mode']);

    // A new version (the build runs again), deployed while both apps are under load.
    await fsp.appendFile(path.join(project.root, 'app/src/server.js'), '// version 2\n');
    const clusterLoad = startLoad(`http://127.0.0.1:${clusterPort}/`, { concurrency: 4, maxMs: 60_000 });
    const forkLoad = startLoad(`http://127.0.0.1:${forkPort}/`, { concurrency: 4, maxMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    const redeploy = await project.deploy();
    await new Promise((r) => setTimeout(r, 300));
    const [clusterReport, forkReport] = await Promise.all([clusterLoad.stop(), forkLoad.stop()]);
    expect(redeploy.code, describeRun(redeploy)).toBe(0);
    console.log(`[e2e] redeploy under load took ${redeploy.ms} ms (node ${process.version})`);
    console.log(`[e2e] cluster mode (2 workers): ${JSON.stringify(clusterReport)}`);
    console.log(`[e2e] fork mode: ${JSON.stringify(forkReport)}`);

    // Reloaded, not replaced: the unchanged definition never takes the delete-and-start path.
    expect(redeploy.stdout).not.toContain('starting it afresh');
    const after = await pm2List(project.env);
    const reloaded = after.filter((p) => p.name === 'tiny-staging-web');
    expect(reloaded.map((p) => p.execMode)).toEqual(['cluster_mode', 'cluster_mode']);
    expect(reloaded.map((p) => p.pm_id).sort()).toEqual(cluster.map((p) => p.pm_id).sort());
    for (const p of reloaded) expect(cluster.map((c) => c.pid)).not.toContain(p.pid);

    expect(clusterReport.requests).toBeGreaterThan(20);
    expect(clusterReport.failures, JSON.stringify(clusterReport.failuresByCode)).toBe(0);
    expect(forkReport.requests).toBeGreaterThan(0);
  }, 180_000);
});
