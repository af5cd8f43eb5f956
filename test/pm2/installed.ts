import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Reads `lib/API/schema.json` of the pm2 package installed next to deploygen (a
 * devDependency: only tests and maintenance call this). The file is read from disk
 * rather than `require`d because PM2's Config.js mutates its cached copy (it rewrites
 * every `alias` into a list that includes the camelCase alias).
 */
export async function loadInstalledPm2OptionSchema(): Promise<{ raw: unknown; version: string }> {
  const require = createRequire(import.meta.url);
  let packageJsonPath: string;
  try {
    packageJsonPath = require.resolve('pm2/package.json');
  } catch (error) {
    throw new Error(`cannot find the pm2 package (a devDependency of deploygen): ${(error as Error).message}`);
  }
  const packageJson: unknown = JSON.parse(await readFile(packageJsonPath, 'utf8'));
  const version =
    typeof packageJson === 'object' && packageJson !== null && 'version' in packageJson ? packageJson.version : undefined;
  if (typeof version !== 'string') throw new Error(`${packageJsonPath}: no version`);
  const schemaPath = path.join(path.dirname(packageJsonPath), 'lib', 'API', 'schema.json');
  const raw: unknown = JSON.parse(await readFile(schemaPath, 'utf8'));
  return { raw, version };
}
