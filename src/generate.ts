// The pure pipeline after loading: validate -> resolve -> render. Returns files in memory.
import type { LoadedManifest } from "./manifest/load.js";
import { validateManifest } from "./manifest/validate.js";
import { resolveProject, type ResolvedProject } from "./model.js";
import { createRenderer, type Renderer } from "./render.js";
import type { FileOutput } from "./outputs/types.js";
import { ecosystemOutputs, moduleMarkerOutput } from "./outputs/ecosystem.js";
import { systemdOutputs } from "./outputs/systemd.js";
import { logrotateOutputs } from "./outputs/logrotate.js";
import { scriptOutputs, sharedScriptOutputs } from "./outputs/scripts.js";
import { fleetLibraryOutputs, fleetOutputs } from "./outputs/fleet.js";
import { UserError } from "./errors.js";

export interface GenerationPlan {
  project: ResolvedProject;
  /** Output folder relative to the manifest's folder. */
  output: string;
  files: FileOutput[];
}

const BUILDERS = [ecosystemOutputs, systemdOutputs, scriptOutputs, fleetOutputs, logrotateOutputs];

export function planGeneration(loaded: LoadedManifest, options: { environments?: string[]; renderer?: Renderer } = {}): GenerationPlan {
  const manifest = validateManifest(loaded);
  const project = resolveProject(manifest, loaded.baseName);
  const wanted = options.environments;
  if (wanted) {
    const unknown = wanted.filter((name) => !project.environments.some((environment) => environment.name === name));
    if (unknown.length > 0)
      throw new UserError(`unknown environment ${unknown.join(", ")} in --env`, `use one of: ${project.environments.map((environment) => environment.name).join(", ")}`, 2);
  }
  const renderer = options.renderer ?? createRenderer();
  const environments = project.environments.filter((environment) => !wanted || wanted.includes(environment.name));
  const files = [...sharedScriptOutputs(project), ...fleetLibraryOutputs(project, environments), moduleMarkerOutput(project, renderer), ...environments.flatMap((environment) => BUILDERS.flatMap((build) => build(project, environment, renderer)))];
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { project, output: project.output, files };
}
