/**
 * fixtures/tiny (a node http server, built by copying a file) set up like a host would have it: a
 * fresh copy on free ports of 127.0.0.1, generated in place, with its env file and its own PM2_HOME
 * (killed when the test finishes). Fast: no downloads, no real build.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { expect } from 'vitest';
import { generateIn } from '../helpers/generate.js';
import { freePorts, run, usePm2Home, useProjectCopy, writeEnvFile, type Pm2Handle, type RunOptions, type RunResult } from './harness.js';

export const TINY_FIXTURE = path.resolve(import.meta.dirname, '..', '..', 'fixtures', 'tiny');

export interface TinyProject {
  root: string;
  /** The ports handed out (the first replaces the fixture's 18080). */
  ports: number[];
  pm2: Pm2Handle;
  env: NodeJS.ProcessEnv;
  /** bash deploy/scripts/deploy-staging.sh ARGS in the project root. */
  deploy(args?: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** The deploy's record of a step's last success (.deploygen/staging/steps/<app>.<step>). */
  stateFile(app: string, step: 'install' | 'build'): string;
  /** Rewrite deploygen.yaml and generate again. */
  editManifest(edit: (yaml: string) => string): Promise<void>;
}

export interface TinyOptions {
  /** How many free ports to hand out (default 1). */
  ports?: number;
  /** Edit the manifest (after the port is replaced) before the first generate. */
  editManifest?: (yaml: string, ports: number[]) => string;
}

export async function setupTiny(opts: TinyOptions = {}): Promise<TinyProject> {
  const root = await useProjectCopy(TINY_FIXTURE, { prefix: 'dg-tiny-' });
  const ports = await freePorts(opts.ports ?? 1);
  const manifest = path.join(root, 'deploygen.yaml');
  const original = await fsp.readFile(manifest, 'utf8');
  expect(original).toMatch(/^ {4}port: 18080$/m);
  let yaml = original.replace(/^ {4}port: 18080$/m, `    port: ${ports[0]}`);
  if (opts.editManifest) yaml = opts.editManifest(yaml, ports);
  await fsp.writeFile(manifest, yaml);
  await generateIn(root);
  await writeEnvFile(root, '.env.staging', { TINY_API_KEY: 'real-key' });
  const pm2 = await usePm2Home();
  return {
    root,
    ports,
    pm2,
    env: pm2.env,
    deploy: (args = [], o = {}) =>
      run('bash', [path.join(root, 'deploy', 'scripts', 'deploy-staging.sh'), ...args], { cwd: root, env: pm2.env, timeoutMs: 120_000, ...o }),
    stateFile: (app, step) => path.join(root, '.deploygen', 'staging', 'steps', `${app}.${step}`),
    async editManifest(edit) {
      await fsp.writeFile(manifest, edit(await fsp.readFile(manifest, 'utf8')));
      await generateIn(root);
    },
  };
}

/** The app block of fixtures/tiny's manifest as a second app `name` on `port` (fork mode). */
export function withSecondApp(yaml: string, name: string, port: number): string {
  const block = /^ {2}web:\n((?: {4}.*\n)+)/m.exec(yaml);
  expect(block, 'fixtures/tiny has an app "web"').not.toBeNull();
  const body = block![1]!.replace(/^ {4}port: \d+$/m, `    port: ${port}`);
  return yaml.replace(block![0], `${block![0]}  ${name}:\n${body}`);
}
