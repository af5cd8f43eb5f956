/**
 * fixtures/e2e (FastAPI + Next.js) placed in a booted container the way a host would have it: the
 * e2e suite's prepared tree (Next.js built, node_modules installed: prepareE2eProject) copied into
 * the shared folder (outside the container's /tmp), generated there, its env file written, owned by
 * the service user `e2eapp`. The container has no network: the frontend's install and build steps
 * become checks of what the prepared tree brings, the backend's venv is made by the deploy.
 */
import { execFileSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { E2E_FIXTURE, prepareE2eProject } from '../e2e/harness.js';
import { generateIn } from '../helpers/generate.js';
import type { Container } from './container.js';

export const E2E_USER = 'e2eapp';
export const E2E_BACKEND_PORT = 14200;
export const E2E_FRONTEND_PORT = 14100;
export const E2E_NAMESPACE = 'e2eapp-staging';

export interface E2eInContainer {
  root: string;
  hostRoot: string;
  unit: string;
  timer: string;
  healthUnit: string;
  pm2Home: string;
  pm2Env: Record<string, string>;
}

/** The manifest for a host without network, with `extraEnvironmentLines` added to staging. */
export function offlineManifest(yaml: string, extraEnvironmentLines: string[] = []): string {
  const edited = yaml
    .replace('install: [npm ci --no-audit --no-fund --prefer-offline]', 'install: ["test -d node_modules/next"]')
    .replace('build: [npm run build]', 'build: ["test -f .next/BUILD_ID"]')
    .replace(/^( {4}env: \{ E2EAPP_ENV: staging \}\n)/m, `$1${extraEnvironmentLines.map((line) => `    ${line}\n`).join('')}`);
  if (!edited.includes('test -f .next/BUILD_ID')) throw new Error('fixtures/e2e/deploygen.yaml changed: update offlineManifest');
  return edited;
}

export async function placeE2e(
  box: Container,
  opts: { folder?: string; environmentLines?: string[]; envFileLines?: string[] } = {},
): Promise<E2eInContainer> {
  const prepared = await prepareE2eProject();
  const folder = opts.folder ?? 'e2e';
  const hostRoot = path.join(box.hostShared, folder);
  const skip = /(^|\/)(node_modules|\.next|\.venv|logs|\.deploygen|__pycache__|deploy|\.env\.staging)$/;
  await fsp.cp(E2E_FIXTURE, hostRoot, { recursive: true, filter: (from) => !skip.test(from) });
  const manifest = path.join(hostRoot, 'deploygen.yaml');
  await fsp.writeFile(manifest, offlineManifest(await fsp.readFile(manifest, 'utf8'), opts.environmentLines));
  await generateIn(hostRoot);
  await fsp.writeFile(path.join(hostRoot, '.env.staging'), ['E2E_API_KEY=a-real-key-4711', ...(opts.envFileLines ?? []), ''].join('\n'), { mode: 0o600 });
  // The build output is the service user's (Next.js writes its cache); node_modules is only read:
  // hard links into the prepared tree, left owned by root (no chown writes through to the cache).
  await fsp.cp(path.join(prepared.dir, 'web', '.next'), path.join(hostRoot, 'web', '.next'), { recursive: true, verbatimSymlinks: true });
  const root = `${box.guestShared}/${folder}`;
  if ((await box.exec(['getent', 'passwd', E2E_USER])).code !== 0) {
    await box.execOk(['useradd', '--system', '--create-home', '--home-dir', `/home/${E2E_USER}`, '--shell', '/bin/bash', E2E_USER]);
  }
  await box.execOk(['chown', '-R', `${E2E_USER}:`, root]);
  execFileSync('cp', ['-al', path.join(prepared.dir, 'web', 'node_modules'), path.join(hostRoot, 'web', 'node_modules')]);
  const instance = (await box.execOk(['systemd-escape', '--path', root])).stdout.trim();
  const pm2Home = `/home/${E2E_USER}/.pm2`;
  return {
    root,
    hostRoot,
    unit: `e2eapp-staging@${instance}.service`,
    timer: `e2eapp-staging-health@${instance}.timer`,
    healthUnit: `e2eapp-staging-health@${instance}.service`,
    pm2Home,
    pm2Env: { PM2_HOME: pm2Home, NO_COLOR: '1' },
  };
}
