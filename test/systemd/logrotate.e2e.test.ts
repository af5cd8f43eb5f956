// Log rotation under a real systemd: an app started by the generated unit writes numbered lines
// through PM2 without pause; the generated logrotate configuration, installed for the project
// root, is forced twice; every number is then found exactly once across the rotated and current
// files, and the app goes on writing to the emptied file.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { waitFor } from '../e2e/harness.js';
import { useContainer } from './container.js';
import { instantiateLogrotate } from './logrotate-install.js';
import { placeTiny, TINY_USER } from './tiny-in-container.js';

const box = useContainer();

/** A second app of fixtures/tiny: writes "line N", a few per millisecond, until stopped. */
const COUNTER_SOURCE = `let n = 0;
setInterval(() => { for (let k = 0; k < 5; k++) process.stdout.write('line ' + ++n + '\\n'); }, 1);
process.on('SIGINT', () => process.exit(0));
`;
const COUNTER_APP = 'tiny-staging-counter';
const withCounter = (yaml: string): string =>
  yaml.replace(/^apps:\n/m, 'apps:\n  counter:\n    runtime: node\n    cwd: app\n    script: counter.js\n    stopTimeoutSeconds: 5\n');

test('logrotate -f twice on a log PM2 is writing to loses no line, and PM2 writes on to the emptied file', async () => {
  await box.ready;
  const tiny = await placeTiny(box, { editManifest: withCounter });
  await fsp.writeFile(path.join(tiny.hostRoot, 'app', 'counter.js'), COUNTER_SOURCE);
  await box.execOk(['chown', `${TINY_USER}:`, `${tiny.root}/app/counter.js`]);
  const generated = await fsp.readFile(path.join(tiny.hostRoot, 'deploy', 'logrotate', 'tiny-staging.conf'), 'utf8');
  await fsp.writeFile(path.join(box.hostShared, 'tiny-staging.logrotate'), instantiateLogrotate(generated, tiny.root));
  await box.execOk(['install', '-m', '0644', `${box.guestShared}/tiny-staging.logrotate`, '/etc/logrotate.d/tiny-staging']);
  // PM2 started by the service user from the generated ecosystem file (unit.e2e.test.ts covers
  // starting through the unit; this test is about rotation).
  await box.execOk(['pm2', 'start', 'deploy/ecosystem.staging.config.js', '--only', COUNTER_APP], { user: TINY_USER, cwd: tiny.root, env: tiny.pm2Env });

  const logs = path.join(tiny.hostRoot, 'logs');
  const current = path.join(logs, 'tiny-staging-counter.out.log');
  const sizeOf = async (file: string) => (await fsp.stat(file).catch(() => undefined))?.size ?? 0;
  await waitFor(async () => (await sizeOf(current)) > 10_000, 20_000, { what: 'the counter to write to its log' });

  for (const round of [1, 2]) {
    const rotate = await box.exec(['logrotate', '-f', '/etc/logrotate.d/tiny-staging']);
    expect(rotate.code, `logrotate round ${round}: ${rotate.stdout}${rotate.stderr}`).toBe(0);
    // Copied and emptied; PM2 (resumed) writes on at its start.
    await waitFor(async () => (await sizeOf(current)) > 10_000, 20_000, { what: `PM2 to write to the emptied log after rotation ${round}` });
  }
  await box.execOk(['pm2', 'stop', COUNTER_APP], { user: TINY_USER, env: tiny.pm2Env });
  await box.execOk(['pm2', 'kill'], { user: TINY_USER, env: tiny.pm2Env });

  const files = (await fsp.readdir(logs)).filter((f) => f.startsWith('tiny-staging-counter.out.log')).sort();
  expect(files).toEqual(['tiny-staging-counter.out.log', 'tiny-staging-counter.out.log.1.gz', 'tiny-staging-counter.out.log.2.gz']);
  const texts = await Promise.all(
    files.map(async (f) => (await box.execOk(['zcat', '-f', `${tiny.root}/logs/${f}`], { user: TINY_USER })).stdout),
  );
  const ranges = texts.map((text, i) => {
    const numbers = [...text.matchAll(/line (\d+)$/gm)].map((m) => Number(m[1]));
    return `${files[i]}: ${numbers[0]}..${numbers[numbers.length - 1]} (${numbers.length})`;
  });
  console.log(`[logrotate] ${ranges.join('; ')}`);
  const seen = new Map<number, number>();
  for (const text of texts) {
    for (const match of text.matchAll(/line (\d+)$/gm)) {
      const n = Number(match[1]);
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
  }
  const highest = Math.max(...seen.keys());
  const missing: number[] = [];
  const repeated: number[] = [];
  for (let n = 1; n <= highest; n++) {
    const count = seen.get(n) ?? 0;
    if (count === 0) missing.push(n);
    if (count > 1) repeated.push(n);
  }
  console.log(`[logrotate] ${highest} lines across ${files.join(', ')}: ${missing.length} missing, ${repeated.length} repeated`);
  expect({ missing: missing.slice(0, 20), repeated: repeated.slice(0, 20) }).toEqual({ missing: [], repeated: [] });
  // Each file holds a part: the newest one was written after the second rotation.
  for (const text of texts) expect(text).toMatch(/line \d+$/m);
}, 120_000);
