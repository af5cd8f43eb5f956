// What PM2's `pm2 deploy` (pm2-deploy 1.0.x) can carry. It pipes each host's settings through
// `sh -c "echo '<JSON>' | deploy"`, reads every field back with `expr "$conf" : '.*"KEY":"\([^"]*\)"'`
// inside an unquoted `echo $(...)`, and sends commands built from them to ssh unquoted, where the
// host's shell runs them. So a value survives only if it has no `'` (ends the echo's quoting), no
// `"` (ends the value), no `\` (read without -r eats it), no whitespace (split and rejoined), no
// `*`, `?`, `[` (globbed on the machine that runs pm2 deploy), and nothing the host's shell acts
// on (`$`, backtick, `;`, `&`, `|`, `<`, `>`, `(`, `)`, `{`, `}`, `#`, `!`, `~` at a word's start).
// Each field below is held to an alphabet inside that set, chosen for what the field is.
import path from "node:path";
import type { Manifest, Environment } from "./schema.js";
import type { HostEntry } from "./remote-schema.js";
import type { Rule, RuleProblem } from "./rules.js";

/** Characters of a path that reaches a host's shell unquoted (remote.path, output, envFile). */
export const REMOTE_PATH_CHARS = "A-Za-z0-9._/@%+=:,-";
/** Characters of a git repository address (scp-like, URL or path); "~" is allowed, not first. */
export const REMOTE_REPO_CHARS = "A-Za-z0-9._/@%+=:,~-";
/** Characters of the value of an ssh -o option ("~" is expanded by ssh itself, for IdentityFile=~/...). */
export const SSH_OPTION_VALUE_CHARS = "A-Za-z0-9._/@%+=:,~-";
/** Characters of the branch in ref (origin/<branch>). */
export const BRANCH_CHARS = "A-Za-z0-9._/-";

export const HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$/;
export const USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;
export const REPO_PATTERN = new RegExp(`^[A-Za-z0-9._/@%+=:,-][${REMOTE_REPO_CHARS}]*$`);
export const REF_PATTERN = /^origin\/[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?(?:\/[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?)*$/;
export const REMOTE_PATH_PATTERN = new RegExp(`^/[${REMOTE_PATH_CHARS}]+$`);
export const SSH_OPTION_PATTERN = new RegExp(`^[A-Za-z][A-Za-z0-9]*=[${SSH_OPTION_VALUE_CHARS}]+$`);
/** output and envFile, when pm2 deploy's hooks name them. */
export const HOOK_PATH_PATTERN = new RegExp(`^[A-Za-z0-9._@%+=:,][${REMOTE_PATH_CHARS}]*$`);

const HOW =
  "pm2 deploy pipes its settings through echo '...', reads them back with a regular expression that stops at a double quote, and hands them to the host's shell unquoted";

/** The characters of value outside the class `chars` (a regex character-class body), shown for a message. */
function offending(value: string, chars: string): string {
  const outside = new RegExp(`[^${chars}]`, "gu");
  const found = [...new Set(value.match(outside) ?? [])];
  return found.map((char) => (/\s/.test(char) ? JSON.stringify(char).slice(1, -1).replace(/^ $/, "a space") : `"${char}"`)).join(", ");
}

export function hostName(entry: HostEntry): string {
  return typeof entry === "string" ? entry : entry.host;
}

function hostProblems(entry: HostEntry, at: (string | number)[]): RuleProblem[] {
  const name = hostName(entry);
  const nameAt = typeof entry === "string" ? at : [...at, "host"];
  if (name === "localhost")
    return [{ path: nameAt, message: "pm2 deploy runs every command for a host named localhost on this machine, as the local user, without SSH", fix: "write 127.0.0.1 to deploy to this machine over SSH as remote.user" }];
  if (!HOST_PATTERN.test(name))
    return [{ path: nameAt, message: `"${name}" is not a host name or IP address (letters, digits, "." and "-", not starting or ending with "-"; or an IPv6 address)`, fix: "write the host name or address alone (the port goes in { host, port }, the user in remote.user)" }];
  return [];
}

function remoteProblems(environment: Environment, at: (string | number)[]): RuleProblem[] {
  const remote = environment.remote;
  if (!remote) return [];
  const problems: RuleProblem[] = [];
  const refuse = (field: (string | number)[], message: string, fix: string) => problems.push({ path: [...at, "remote", ...field], message, fix });
  if (!USER_PATTERN.test(remote.user))
    refuse(["user"], `user "${remote.user}" is not a login name: lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32 characters`, "write the SSH user's login name, for example deploy");
  if (!REPO_PATTERN.test(remote.repo))
    refuse(
      ["repo"],
      remote.repo === "" ? "repo is empty" : /^[-~]/.test(remote.repo) ? `repo "${remote.repo}" starts with "${remote.repo[0]}", which git or the host's shell would take for something else` : `repo contains ${offending(remote.repo, REMOTE_REPO_CHARS)}; ${HOW}`,
      `write the address with letters, digits and ${[..."._/@%+=:,~-"].join(" ")} only (for example git@example.com:acme/shop.git or https://example.com/acme/shop.git; percent-encode other characters in a URL)`,
    );
  if (!REF_PATTERN.test(remote.ref) || remote.ref.includes("..") || remote.ref.endsWith(".lock"))
    refuse(
      ["ref"],
      remote.ref.startsWith("origin/")
        ? `ref "${remote.ref}" is not a branch name pm2 deploy can carry (letters, digits, ".", "_", "-" and "/" between parts)`
        : `ref "${remote.ref}" is not origin/<branch>: pm2 deploy clones the branch after the first "/", then resets the checkout to ref after each fetch, and only origin/<branch> moves with a fetch`,
      `write the branch as origin/<branch>, for example origin/main`,
    );
  const normalized = path.posix.normalize(remote.path);
  if (!REMOTE_PATH_PATTERN.test(remote.path))
    refuse(
      ["path"],
      remote.path.startsWith("/") ? `path contains ${offending(remote.path, REMOTE_PATH_CHARS)}; ${HOW}` : `path "${remote.path}" is not absolute; pm2 deploy resolves a relative path on the machine that runs it, not on the host`,
      `write an absolute folder with letters, digits and ${[..."._/@%+=:,-"].join(" ")} only, for example /srv/${"app"}`,
    );
  else if (normalized !== remote.path || remote.path === "/" || remote.path.endsWith("/"))
    refuse(["path"], `path "${remote.path}" is not a plain absolute folder (it has "//", "." or ".." parts, a trailing "/", or is "/")`, `write it as ${normalized === "/" ? "a folder of its own, for example /srv/app" : normalized.replace(/\/+$/, "")}`);
  remote.sshOptions.forEach((option, index) => {
    if (!SSH_OPTION_PATTERN.test(option))
      refuse(
        ["sshOptions", index],
        /^[A-Za-z][A-Za-z0-9]*=/.test(option) ? `the value of ${option.split("=")[0]} contains ${offending(option.slice(option.indexOf("=") + 1), SSH_OPTION_VALUE_CHARS)}; ${HOW}` : `"${option}" is not an ssh option written as Name=value`,
        "write one option per item as Name=value without spaces, for example StrictHostKeyChecking=accept-new",
      );
  });
  return problems;
}

/** hosts and remote go together: one without the other generates nothing pm2 deploy can run. */
export const remoteNeedsHosts: Rule = (manifest: Manifest) =>
  Object.entries(manifest.environments).flatMap(([envName, environment]): RuleProblem[] => {
    const at = ["environments", envName];
    if (environment.hosts !== undefined && environment.remote === undefined)
      return [{ path: [...at, "hosts"], message: "hosts needs remote (the user, repository and folder pm2 deploy uses on them)", fix: "add remote: { user: deploy, repo: <git address>, path: /srv/<project> }" }];
    if (environment.remote !== undefined && (environment.hosts === undefined || environment.hosts.length === 0))
      return [{ path: [...at, environment.hosts === undefined ? "remote" : "hosts"], message: "remote is set but there are no hosts to deploy to", fix: "list the hosts, for example hosts: [app1.example.com]" }];
    return [];
  });

/** Every value that reaches pm2 deploy's configuration or hooks holds only characters it carries unchanged. */
export const pm2DeployCarriesRemote: Rule = (manifest: Manifest) => {
  const problems: RuleProblem[] = [];
  const withHosts = Object.entries(manifest.environments).filter(([, environment]) => environment.hosts !== undefined);
  for (const [envName, environment] of withHosts) {
    const at = ["environments", envName];
    const seen = new Map<string, number>();
    environment.hosts!.forEach((entry, index) => {
      problems.push(...hostProblems(entry, [...at, "hosts", index]));
      const key = `${hostName(entry)}:${typeof entry === "string" ? 22 : entry.port ?? 22}`;
      const first = seen.get(key);
      if (first !== undefined)
        problems.push({ path: [...at, "hosts", index], message: `${hostName(entry)} is listed twice (also item ${first}); pm2 deploy would deploy to it twice`, fix: "remove one of them" });
      else seen.set(key, index);
    });
    problems.push(...remoteProblems(environment, at));
    if (environment.envFile !== undefined && !HOOK_PATH_PATTERN.test(environment.envFile))
      problems.push({ path: [...at, "envFile"], message: `envFile is named in pm2 deploy's hooks on every host, and contains ${offending(environment.envFile, REMOTE_PATH_CHARS) || 'a leading "-"'}; ${HOW}`, fix: `rename the env file with letters, digits and ${[..."._/@%+=:,-"].join(" ")} only, for example .env.${envName}` });
  }
  if (withHosts.length > 0 && !HOOK_PATH_PATTERN.test(manifest.output))
    problems.push({ path: ["output"], message: `output is part of pm2 deploy's post-deploy command (bash <output>/scripts/deploy-<env>.sh), and contains ${offending(manifest.output, REMOTE_PATH_CHARS) || 'a leading "-"'}; ${HOW}`, fix: "use a folder name with letters, digits and ._-/ only, for example deploy" });
  return problems;
};
