/**
 * What install-systemd does with the generated logrotate file, for tests: put the project root
 * in place of the placeholder, refusing a root logrotate's quoted glob paths cannot carry (the
 * rule in the template's header).
 */
import { LOGROTATE_UNSAFE_PATH, ROOT_PLACEHOLDER } from '../../src/outputs/logrotate.js';

export function instantiateLogrotate(content: string, root: string): string {
  if (!root.startsWith('/') || root.endsWith('/')) throw new Error(`the project root ${JSON.stringify(root)} must be absolute, without a trailing "/"`);
  if (LOGROTATE_UNSAFE_PATH.test(root)) throw new Error(`the project root ${JSON.stringify(root)} contains a character logrotate paths cannot carry`);
  return content.split(ROOT_PLACEHOLDER).join(root);
}
