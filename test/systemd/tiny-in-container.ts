/**
 * fixtures/tiny placed in a booted container the way a host would have it: generated into a copy
 * under the shared folder (outside the container's /tmp), its env file made from the example with
 * a real value, built, and owned by the service user (`tiny`, the manifest's default).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { generateIn } from '../helpers/generate.js';
import type { Container } from './container.js';
import { TINY_FIXTURE } from '../e2e/tiny.js';

export const TINY_USER = 'tiny';
export const TINY_PORT = 18080;
export const TINY_APP = 'tiny-staging-web';

export interface TinyInContainer {
  /** Project root inside the container. */
  root: string;
  /** Project root on the host (the same folder, through the bind mount). */
  hostRoot: string;
  /** tiny-staging@<escaped root>.service */
  unit: string;
  /** tiny-staging-health@<escaped root>.timer */
  timer: string;
  /** The service user's PM2_HOME (PM2's default ~/.pm2). */
  pm2Home: string;
  /** Environment for pm2 run as the service user. */
  pm2Env: Record<string, string>;
}

/** Copies, generates, writes .env.staging, builds, chowns; `editManifest` runs before generating. */
export async function placeTiny(box: Container, opts: { folder?: string; editManifest?: (yaml: string) => string } = {}): Promise<TinyInContainer> {
  const folder = opts.folder ?? 'tiny';
  const hostRoot = path.join(box.hostShared, folder);
  await fsp.cp(TINY_FIXTURE, hostRoot, { recursive: true, filter: (from) => !/(^|\/)(deploy|logs|\.deploygen|\.env\.staging)$/.test(from) });
  if (opts.editManifest) {
    const manifest = path.join(hostRoot, 'deploygen.yaml');
    await fsp.writeFile(manifest, opts.editManifest(await fsp.readFile(manifest, 'utf8')));
  }
  await generateIn(hostRoot);
  const example = await fsp.readFile(path.join(hostRoot, '.env.staging.example'), 'utf8');
  await fsp.writeFile(path.join(hostRoot, '.env.staging'), example.replace(/^TINY_API_KEY=.*$/m, 'TINY_API_KEY=a-real-key-4711'), { mode: 0o600 });
  const root = `${box.guestShared}/${folder}`;
  if ((await box.exec(['getent', 'passwd', TINY_USER])).code !== 0) {
    await box.execOk(['useradd', '--system', '--create-home', '--home-dir', `/home/${TINY_USER}`, '--shell', '/bin/bash', TINY_USER]);
  }
  await box.execOk(['chown', '-R', `${TINY_USER}:`, root]);
  // The manifest's build, run by hand: these tests are about the unit, not the deploy script.
  await box.execOk(['sh', '-c', 'mkdir -p dist && cp src/server.js dist/server.js'], { user: TINY_USER, cwd: `${root}/app` });
  const instance = (await box.execOk(['systemd-escape', '--path', root])).stdout.trim();
  const pm2Home = `/home/${TINY_USER}/.pm2`;
  return {
    root,
    hostRoot,
    unit: `tiny-staging@${instance}.service`,
    timer: `tiny-staging-health@${instance}.timer`,
    pm2Home,
    pm2Env: { PM2_HOME: pm2Home, NO_COLOR: '1' },
  };
}

/** Polls GET url inside the container until it answers `status` (or the deadline passes). */
export async function waitForAnswer(box: Container, url: string, status = 200, timeoutMs = 30_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await box.httpGet(url, 2);
    if (answer.status === status || Date.now() >= deadline) return answer;
    await new Promise((r) => setTimeout(r, 200));
  }
}
