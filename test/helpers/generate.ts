// Test helpers: generate a fixture in memory or into a fresh copy on disk.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadManifest, findManifest } from "../../src/manifest/load.js";
import { planGeneration, type GenerationPlan } from "../../src/generate.js";
import { writeOutputs } from "../../src/write.js";
import { copyProject } from "../e2e/harness.js";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const FIXTURES = path.join(REPO_ROOT, "fixtures");
export const CLI = path.join(REPO_ROOT, "bin", "deploygen.js");

export async function planFixture(name: string): Promise<GenerationPlan> {
  const dir = path.join(FIXTURES, name);
  return planGeneration(await loadManifest(findManifest(dir), dir));
}

/** Copies a fixture (what git would hold, no earlier output) into a fresh temp folder and generates there. */
export async function generateFixtureCopy(name: string, prefix = "deploygen-test-"): Promise<{ root: string; plan: GenerationPlan; outputDir: string }> {
  const root = await copyProject(path.join(FIXTURES, name), { prefix, exclude: ["deploy"] });
  return { root, ...(await generateIn(root)) };
}

export const SNAPSHOT_FIXTURES = ["codeframe", "node-api", "python-api"] as const;

/** Generates in place for a project folder (already copied), like `deploygen generate` run there. */
export async function generateIn(root: string): Promise<{ plan: GenerationPlan; outputDir: string }> {
  const loaded = await loadManifest(findManifest(root), root);
  const plan = planGeneration(loaded);
  const outputDir = path.join(root, plan.output);
  await writeOutputs(outputDir, plan.files);
  return { plan, outputDir };
}
