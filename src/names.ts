// Every name deploygen derives, in one place: rules (which check that names fit and differ), the
// resolver (which hands them to templates) and import (which tells users what their apps are now
// called) all build them here, so that a name cannot be spelt two ways.

/** Folder of the apps' log files, relative to the project root. */
export const LOGS_DIR = "logs";
/** Folder of the generated scripts, relative to the output folder. */
export const SCRIPTS_DIR = "scripts";
/** The scripts' shared function library, relative to the output folder. */
export const SCRIPTS_LIBRARY = `${SCRIPTS_DIR}/deploygen-lib.sh`;
/** The Node.js helper of the scripts (env files, PM2's process list, ports), relative to the output folder. */
export const SCRIPTS_HELPER = `${SCRIPTS_DIR}/deploygen-helper.cjs`;
/** The fleet commands (several hosts: deploy, rollback, status over SSH), relative to the output folder; only with hosts. */
export const SCRIPTS_FLEET_LIBRARY = `${SCRIPTS_DIR}/deploygen-fleet.sh`;

/** The PM2 namespace of one environment, also the prefix of its systemd units: `<project>-<env>`. */
export function namespaceName(project: string, env: string): string {
  return `${project}-${env}`;
}

/** The PM2 name of one app in one environment: `<project>-<env>-<app>`. */
export function pm2AppName(project: string, env: string, app: string): string {
  return `${namespaceName(project, env)}-${app}`;
}

/**
 * A project variable such as CODEFRAME_ROOT or CODEFRAME_ENV: the project name in capitals with
 * "_" for anything a variable name cannot hold (a valid project name only has dashes there).
 */
export function projectEnvVar(project: string, suffix: string): string {
  return `${project.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_${suffix}`;
}

/** The variable that overrides the project root the generated files find from their location. */
export const projectRootVar = (project: string) => projectEnvVar(project, "ROOT");
/** Where the deployment's name goes (NODE_ENV only takes development, production or test). */
export const projectEnvNameVar = (project: string) => projectEnvVar(project, "ENV");

/** Log files of one PM2 app, relative to the project root. */
export function appLogFiles(pm2Name: string): { out: string; err: string } {
  return { out: `${LOGS_DIR}/${pm2Name}.out.log`, err: `${LOGS_DIR}/${pm2Name}.err.log` };
}

/** systemd unit names of one environment (templates: the instance is the escaped project root). */
export function unitNames(project: string, env: string) {
  const prefix = namespaceName(project, env);
  return {
    unitPrefix: prefix,
    unitTemplate: `${prefix}@.service`,
    healthUnitPrefix: `${prefix}-health`,
    healthUnitTemplate: `${prefix}-health@.service`,
    healthTimerTemplate: `${prefix}-health@.timer`,
  };
}

/** Paths of generated files, relative to the output folder. */
export interface EnvironmentFiles {
  ecosystem: string;
  unit: string;
  healthUnit: string;
  healthTimer: string;
  deploy: string;
  start: string;
  stop: string;
  healthCheck: string;
  installSystemd: string;
  rollback: string;
  /** Several hosts: deploy, rollback and status of every host (only for an environment with hosts). */
  fleet: string;
  /** The environment's data, sourced by its scripts. */
  config: string;
  /** logrotate configuration of <root>/logs; install-systemd puts the root in and installs it into /etc/logrotate.d. */
  logrotate: string;
}

/** The files generated for one environment, relative to the output folder. */
export function environmentFiles(env: string, project: string): EnvironmentFiles {
  const units = unitNames(project, env);
  return {
    ecosystem: `ecosystem.${env}.config.js`,
    unit: `systemd/${units.unitTemplate}`,
    healthUnit: `systemd/${units.healthUnitTemplate}`,
    healthTimer: `systemd/${units.healthTimerTemplate}`,
    deploy: `${SCRIPTS_DIR}/deploy-${env}.sh`,
    start: `${SCRIPTS_DIR}/start-${env}.sh`,
    stop: `${SCRIPTS_DIR}/stop-${env}.sh`,
    healthCheck: `${SCRIPTS_DIR}/health-check-${env}.sh`,
    installSystemd: `${SCRIPTS_DIR}/install-systemd-${env}.sh`,
    rollback: `${SCRIPTS_DIR}/rollback-${env}.sh`,
    fleet: `${SCRIPTS_DIR}/fleet-${env}.sh`,
    config: `${SCRIPTS_DIR}/config-${env}.sh`,
    logrotate: `logrotate/${project}-${env}.conf`,
  };
}

/** The deploy's state folder of one environment, relative to the project root (never generated, never committed). */
export function environmentStateDir(env: string): string {
  return `.deploygen/${env}`;
}

// Turning free-form names (folder names, PM2 app names, Procfile process types) into names
// deploygen accepts: lower-case letters, digits and single dashes, starting with a letter.
export function normaliseName(value: string): string {
  let name = value
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (name !== "" && !/^[a-z]/.test(name)) name = `app-${name}`;
  return name.slice(0, 40).replace(/-+$/, "");
}
