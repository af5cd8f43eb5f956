// The tiny project (fixtures/tiny, set up by test/e2e/tiny.ts) as a host has it, with a test's
// own env file, or none.
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setupTiny } from "../e2e/tiny.js";

export async function tinyProject(options: { envFile?: string | null } = {}) {
  const { root, ports } = await setupTiny();
  const envFile = path.join(root, ".env.staging");
  if (options.envFile === null) await rm(envFile);
  else if (options.envFile !== undefined) await writeFile(envFile, options.envFile, { mode: 0o600 });
  return { root, port: ports[0]!, script: (name: string) => path.join(root, "deploy", "scripts", name) };
}
