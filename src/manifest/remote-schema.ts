// Per-environment fields for several hosts: where PM2's own `pm2 deploy` (pm2-deploy) reaches
// (hosts) and what it fetches there (remote). Shapes only: which characters each value may hold
// is checked by the rules in remote-rules.ts, which know why (pm2-deploy's quoting) and say how
// to fix it.
import * as z from "zod/mini";

function described<T extends z.ZodMiniType>(schema: T, description: string): T {
  const copy = schema.clone() as T;
  z.globalRegistry.add(copy, { description });
  return copy;
}

const sshPort = z.number().check(z.int(), z.gte(1), z.lte(65535));

export const HostSchema = described(
  z.union([
    z.string(),
    z.strictObject({
      host: described(z.string(), "Host name or IP address that SSH connects to."),
      port: described(z.optional(sshPort), "SSH port of this host (default 22)."),
    }),
  ]),
  'A host name or IP address, or { host, port } for a host whose SSH listens on another port.',
);

export const HostsSchema = described(
  z.array(HostSchema),
  "Hosts that `pm2 deploy <ecosystem file> <environment> setup|update` reaches over SSH, one after another, in this order; the run stops at the first host that fails. Needs remote.",
);

export const RemoteSchema = described(
  z.strictObject({
    user: described(z.string(), "SSH user on every host (owns the checkout and the PM2 daemon there), for example deploy."),
    repo: described(z.string(), "Git repository each host clones and fetches, for example git@example.com:acme/shop.git; the hosts need read access."),
    ref: described(
      z._default(z.string(), "origin/main"),
      "Remote branch deployed, as origin/<branch> (pm2-deploy resets the checkout to it after each fetch; a local branch name would never move).",
    ),
    path: described(z.string(), "Absolute folder on each host: pm2-deploy clones into <path>/source, links <path>/current to it and keeps shared files (the env file) in <path>/shared."),
    sshOptions: described(
      z._default(z.array(z.string()), []),
      "ssh -o options as Name=value, for example StrictHostKeyChecking=accept-new or ConnectTimeout=10.",
    ),
  }),
  "Repository and folder that `pm2 deploy` uses on every host of this environment.",
);

export type HostEntry = z.output<typeof HostSchema>;
export type Remote = z.output<typeof RemoteSchema>;
