/**
 * The sudoers rule docs/runbook.md tells an operator to write, run as written: the block after
 * the "sudoers rule: tested as written" marker, with only its first line (the names) replaced.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { REPO_ROOT } from '../e2e/harness.js';
import type { Container } from './container.js';

const MARKER = '<!-- sudoers rule: tested as written -->';

export async function runbookSudoersBlock(): Promise<string> {
  const runbook = await fsp.readFile(path.join(REPO_ROOT, 'docs', 'runbook.md'), 'utf8');
  const after = runbook.slice(runbook.indexOf(MARKER));
  const block = /```sh\n([\s\S]*?)\n\s*```/.exec(after)?.[1];
  if (runbook.indexOf(MARKER) < 0 || block === undefined) throw new Error(`docs/runbook.md has no sh block after ${MARKER}`);
  return block.replace(/^ {3}/gm, '');
}

/** Runs the runbook's block as root inside the container for these names; returns its output. */
export async function grantDeployRights(box: Container, names: { envName: string; user: string; root: string }): Promise<string> {
  const block = await runbookSudoersBlock();
  const [first, ...rest] = block.split('\n');
  if (!/^env_name=\S+ user=\S+ root=\S+$/.test(first ?? '')) throw new Error(`the runbook's sudoers block starts with ${first}`);
  const script = [`env_name=${names.envName} user=${names.user} root=${names.root}`, ...rest].join('\n');
  const result = await box.execOk(['bash', '-euo', 'pipefail', '-c', script]);
  return result.stdout + result.stderr;
}
