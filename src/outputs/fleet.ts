// Several hosts: `fleet-<env>.sh deploy|setup|rollback [COMMIT]|status` for an environment with
// hosts, run on the machine that deploys. It runs PM2's own `pm2 deploy` (one host after another)
// and reads the truth of each host from its releases over SSH. Its logic is the fixed file
// deploygen-fleet.sh (emitted once a project has an environment with hosts); its data is the
// fleet block of config-<env>.sh (fleetView).
import path from "node:path";
import { readFileSync } from "node:fs";
import type { OutputBuilder, FileOutput } from "./types.js";
import type { ResolvedProject, ResolvedEnvironment } from "../model.js";
import { TEMPLATES_DIR } from "../render.js";
import { commentHeader } from "./header.js";
import { SCRIPTS_DIR, SCRIPTS_FLEET_LIBRARY } from "../names.js";

/** The fleet data of config-<env>.sh, or null for an environment without hosts. */
export function fleetView(project: ResolvedProject, environment: ResolvedEnvironment) {
  const remote = environment.remote;
  if (remote === undefined) return null;
  return {
    hosts: remote.hosts.map((entry) => entry.host),
    ports: remote.hosts.flatMap((entry) => (entry.port === undefined ? [] : [{ host: entry.host, port: String(entry.port) }])),
    user: remote.user,
    path: remote.path,
    ref: remote.ref,
    sshOptions: remote.sshOptions,
    /** The scripts' folder relative to the checkout's root, on every host. */
    scripts: path.posix.join(project.output, SCRIPTS_DIR),
  };
}

/** deploygen-fleet.sh, when at least one of the environments generated has hosts. */
export function fleetLibraryOutputs(project: ResolvedProject, environments: ResolvedEnvironment[]): FileOutput[] {
  if (!environments.some((environment) => environment.remote !== undefined)) return [];
  const text = readFileSync(path.join(TEMPLATES_DIR, "scripts", "deploygen-fleet.sh"), "utf8");
  return [{ path: SCRIPTS_FLEET_LIBRARY, mode: 0o755, content: `# shellcheck shell=bash\n${commentHeader(project, "#")}\n${text}` }];
}

export const fleetOutputs: OutputBuilder = (project, environment, renderer) => {
  if (environment.remote === undefined) return [];
  const label = `${project.project} (${environment.name})`;
  return [
    {
      path: environment.files.fleet,
      mode: 0o755,
      content: renderer.render("scripts/command.sh", {
        header: commentHeader(project, "#"),
        description: `Every host of ${label} through pm2 deploy: deploy, setup, rollback [COMMIT] (all hosts to one commit), status (--help).`,
        environment: environment.name,
        configName: path.posix.basename(environment.files.config),
        functionName: "dg_fleet",
      }),
    },
  ];
};
