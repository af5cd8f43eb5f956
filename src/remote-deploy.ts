// Several hosts: what PM2's own `pm2 deploy` does on each host of an environment, resolved once.
// pm2-deploy clones the repository into <path>/source, links <path>/current to it, and runs each
// hook as `cd <path>/current; SHARED=<path>/shared <hook>` through the host's shell, unquoted.
// The hooks below are built only from validated values (remote-rules.ts) and never hold a quote,
// and every step is chained with && so that a failing step fails the host (a ";" would hide it).
import path from "node:path";
import type { Environment } from "./manifest/schema.js";
import { hostName } from "./manifest/remote-rules.js";

export interface ResolvedRemoteHost {
  host: string;
  /** SSH port, when not 22. */
  port?: number;
}

export interface ResolvedRemoteDeploy {
  /** In the order pm2 deploy visits them. */
  hosts: ResolvedRemoteHost[];
  user: string;
  repo: string;
  ref: string;
  /** Absolute folder on each host (checkout in <path>/source, <path>/current, <path>/shared). */
  path: string;
  sshOptions: string[];
  /** Where the env file with secrets lives on each host (absolute); linked into the checkout as envFile. */
  sharedEnvFile?: string;
  /** Checks that the host has what the deploy needs (runs before pm2 deploy's own setup). */
  preSetup: string;
  /** After the first clone: links the env file into the checkout and says when it is missing. */
  postSetup?: string;
  /** After each fetch: links the env file, refuses a host without one, runs the generated deploy script. */
  postDeploy: string;
}

/** The folder on each host that holds files kept across deploys (pm2-deploy's own "shared"). */
export function remoteSharedDir(remotePath: string): string {
  return `${remotePath}/shared`;
}

const TOOLS_CHECK =
  "command -v git >/dev/null && command -v node >/dev/null && command -v pm2 >/dev/null || (echo deploygen: this host needs git, node and pm2 on the PATH of a non-interactive SSH session >&2 && false)";

/** ln -sfn of the shared env file into the checkout (creating the env file's folder in the checkout first when it has one). */
function linkEnvFile(envFile: string, sharedEnvFile: string): string {
  const folder = path.posix.dirname(envFile);
  return `${folder === "." ? "" : `mkdir -p ${folder} && `}ln -sfn ${sharedEnvFile} ${envFile}`;
}

/**
 * The pm2 deploy settings of one environment, or undefined when it has no hosts.
 * `deployScript`: the generated deploy script's path relative to the project root (the checkout's root).
 */
export function resolveRemoteDeploy(environment: Environment, envFile: string | undefined, deployScript: string): ResolvedRemoteDeploy | undefined {
  const { hosts, remote } = environment;
  if (hosts === undefined || remote === undefined) return undefined;
  const shared = remoteSharedDir(remote.path);
  const sharedEnvFile = envFile === undefined ? undefined : `${shared}/${envFile}`;
  const runDeploy = `bash ${deployScript}`;
  return {
    hosts: hosts.map((entry) => (typeof entry === "string" || entry.port === undefined ? { host: hostName(entry) } : { host: entry.host, port: entry.port })),
    user: remote.user,
    repo: remote.repo,
    ref: remote.ref,
    path: remote.path,
    sshOptions: remote.sshOptions,
    preSetup: TOOLS_CHECK,
    ...(envFile !== undefined && sharedEnvFile !== undefined
      ? {
          sharedEnvFile,
          postSetup: `mkdir -p ${path.posix.dirname(sharedEnvFile)} && ${linkEnvFile(envFile, sharedEnvFile)} && (test -f ${envFile} || echo deploygen: no env file on this host yet: put it at ${sharedEnvFile} before the first deploy)`,
          postDeploy: `${linkEnvFile(envFile, sharedEnvFile)} && (test -f ${envFile} || (echo deploygen: the env file is missing on this host: put it at ${sharedEnvFile} >&2 && false)) && ${runDeploy}`,
        }
      : { postDeploy: runDeploy }),
  };
}
