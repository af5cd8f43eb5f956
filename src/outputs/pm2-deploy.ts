// The `deploy.<env>` section of ecosystem.<env>.config.js, for PM2's own `pm2 deploy`.
// pm2-deploy reads each field back with `.*"KEY":"\([^"]*\)"` over the whole JSON text of one
// host's settings (the last match wins), so: every value is a string (a number such as a port
// would not be read at all), the keys come in a fixed order, and validation guarantees that no
// value holds a double quote, so no value can contain `"KEY":` text.
import type { ResolvedRemoteDeploy } from "../remote-deploy.js";

/** The keys pm2-deploy reads, in the order they are written. */
export const PM2_DEPLOY_KEYS = ["user", "host", "ref", "repo", "path", "ssh_options", "pre-setup", "post-setup", "post-deploy"] as const;

export type Pm2DeployHost = string | { host: string; port: string };

export interface Pm2DeploySection {
  user: string;
  /** A host with another SSH port is { host, port }: pm2-deploy then reads "port" from the one host it is deploying to. */
  host: Pm2DeployHost[];
  ref: string;
  repo: string;
  path: string;
  ssh_options: string[];
  "pre-setup": string;
  "post-setup"?: string;
  "post-deploy": string;
}

export function pm2DeploySection(remote: ResolvedRemoteDeploy): Pm2DeploySection {
  return {
    user: remote.user,
    host: remote.hosts.map((entry) => (entry.port === undefined ? entry.host : { host: entry.host, port: String(entry.port) })),
    ref: remote.ref,
    repo: remote.repo,
    path: remote.path,
    ssh_options: remote.sshOptions,
    "pre-setup": remote.preSetup,
    ...(remote.postSetup !== undefined ? { "post-setup": remote.postSetup } : {}),
    "post-deploy": remote.postDeploy,
  };
}
