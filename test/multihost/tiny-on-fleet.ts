// fixtures/tiny as a team would put it on a fleet: hosts and remote in its manifest, generated,
// committed and pushed to a bare repository the hosts read, and on each host what an operator
// prepares once (the deploy folder and the env file with its secrets). Shared by the multi-host tests.
import { spawnSync } from "node:child_process";
import { chownSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DEPLOY_UID, type Fleet, type Host } from "./hosts.js";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
export const PM2 = path.join(REPO_ROOT, "node_modules", ".bin", "pm2");
const CLI = path.join(REPO_ROOT, "bin", "deploygen.js");
export const PORT = 18080;
export const REMOTE_PATH = "/srv/tiny";

export const git = (cwd: string, ...args: string[]) => spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, encoding: "utf8" });
export const must = (result: ReturnType<typeof spawnSync>, what: string) => {
  if (result.status !== 0) throw new Error(`${what} failed (${result.status}):\n${String(result.stdout)}\n${String(result.stderr)}`);
  return String(result.stdout);
};

/** Sets up fixtures/tiny for `fleet` with `environmentLines` added to its staging environment; returns the local clone. */
export function pushTinyToFleet(fleet: Fleet, environmentLines: string): string {
  const dir = path.join(fleet.root, "work", "tiny");
  cpSync(path.join(REPO_ROOT, "fixtures", "tiny"), dir, { recursive: true });
  const repo = fleet.bareRepo("tiny");
  const manifest = path.join(dir, "deploygen.yaml");
  const hosts = fleet.hosts.map((host) => host.address).join(", ");
  writeFileSync(
    manifest,
    `${readFileSync(manifest, "utf8").trimEnd()}\n${environmentLines}    hosts: [${hosts}]\n    remote:\n      user: deploy\n      repo: ${repo}\n      ref: origin/main\n      path: ${REMOTE_PATH}\n      sshOptions: [${fleet.sshOptions.join(", ")}]\n`,
  );
  writeFileSync(path.join(dir, ".gitignore"), ".env.staging\nlogs/\n.deploygen/\n");
  must(spawnSync(process.execPath, [CLI, "generate", "-m", manifest], { encoding: "utf8" }), "deploygen generate");
  must(git(dir, "init", "-q", "--initial-branch=main"), "git init");
  must(git(dir, "add", "."), "git add");
  must(git(dir, "commit", "-q", "-m", "tiny v1"), "git commit");
  must(git(dir, "remote", "add", "origin", repo), "git remote add");
  must(git(dir, "push", "-q", "-u", "origin", "main"), "git push");
  for (const host of fleet.hosts) {
    const shared = host.onHost(`${REMOTE_PATH}/shared`);
    mkdirSync(shared, { recursive: true });
    writeFileSync(path.join(shared, ".env.staging"), "TINY_API_KEY=real-key\n", { mode: 0o600 });
    for (const owned of [host.onHost(REMOTE_PATH), shared, path.join(shared, ".env.staging")]) chownSync(owned, DEPLOY_UID, DEPLOY_UID);
  }
  return dir;
}

/** Rewrites the served text (and whatever `edit` does to the source), commits and pushes. */
export function commitTiny(dir: string, message: string, greeting: string, edit: (source: string) => string = (source) => source): void {
  const server = path.join(dir, "app", "src", "server.js");
  writeFileSync(server, edit(readFileSync(server, "utf8").replace(/res\.end\("tiny[^"]*\\n"\);/, `res.end("${greeting}\\n");`)));
  must(git(dir, "commit", "-q", "-am", message), "git commit");
  must(git(dir, "push", "-q"), "git push");
}

/** The commit pm2-deploy checked out on a host (read from this machine). */
export const checkedOut = (host: Host, ...revParse: string[]) =>
  must(git(host.onHost(`${REMOTE_PATH}/source`), "-c", "safe.directory=*", "rev-parse", ...revParse, "HEAD"), "git rev-parse").trim();
