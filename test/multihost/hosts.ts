/**
 * A fleet of simulated hosts on this machine, reached over real SSH (docs in
 * /work/shared/notes/multi-host.md): a bridge in 10.77.0.0/24 and per host a network namespace, a
 * PID-1-like process with its own mount namespace (own /home, /srv, /tmp, /etc/ssh, /run and its
 * own view of /etc/passwd, /etc/shadow, /etc/group holding the `deploy` user, so no user is ever
 * added to this machine), Debian's sshd (key-only, AllowUsers deploy) and PM2/Node on the PATH.
 * A local bare git repository is visible to every host. Nothing is mocked.
 *
 *   const fleet = await startFleet({ hosts: 2 });          // root only; see canStartFleet()
 *   fleet.hosts[0].sh('pm2 ls')                             // a command as deploy@h1, over SSH
 *   fleet.hosts[0].http(port, '/health')                    // HTTP from inside h1's namespace
 *   fleet.stopSshd(fleet.hosts[1])                          // make a host unreachable
 *   await fleet.teardown()                                  // always: afterAll and process exit
 *
 * Everything a fleet creates carries its id (names, folders), so teardown and leftovers() find it.
 */
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export const SUBNET_PREFIX = "10.77.0";
const BRIDGE_ADDRESS = `${SUBNET_PREFIX}.1`;
/** uid/gid of `deploy` inside the hosts' own /etc/passwd (never in this machine's). */
export const DEPLOY_UID = 47_001;
const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
/** Hosts bind their own /tmp: the fleet's files live elsewhere so that every host sees the bare repo. */
const FLEET_PARENT = "/var/tmp";
/** One fleet at a time (the subnet is fixed): held by the process that runs it, as its pid. */
const SUBNET_LOCK = path.join(FLEET_PARENT, "deploygen-fleet-subnet.lock");
/** How long startFleet waits for another test file's fleet to be torn down (test files run two at a time). */
export const FLEET_START_TIMEOUT_MS = 15 * 60_000;

export interface Host {
  /** h1, h2...: the host name and the namespace suffix. */
  name: string;
  address: string;
  netns: string;
  /** This host's /srv, /home... as seen from this machine. */
  dir: string;
  /** Global pid of the unshare process that holds the host's namespaces. */
  pid: number;
  /** A shell command on the host as deploy, over SSH. */
  ssh(command: string, timeoutMs?: number): SpawnSyncReturns<string>;
  /** GET http://127.0.0.1:<port><urlPath> from inside the host's network namespace; null when nothing answers. */
  http(port: number, urlPath: string): { status: number; body: string } | null;
  /** A path on the host (for example /srv/tiny/source) as seen from this machine. */
  onHost(hostPath: string): string;
}

export interface Fleet {
  id: string;
  root: string;
  hosts: Host[];
  /** Private key that the hosts' deploy user accepts. */
  clientKey: string;
  /** ssh -o options for `remote.sshOptions` (no host key prompts, the client key, short timeouts). */
  sshOptions: string[];
  /** Environment for a local `pm2 deploy`: its own PM2_HOME, USER (pm2-deploy's log file name) and the PATH. */
  localEnv: NodeJS.ProcessEnv;
  /** Create a bare repository that every host can read; returns its path. */
  bareRepo(name: string): string;
  stopSshd(host: Host): void;
  teardown(): Promise<void>;
}

/** Why a fleet cannot start here, or null (root, ip, unshare, sshd). */
export function whyNoFleet(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network and mount namespaces)";
  for (const tool of ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/sbin/ip", "/usr/bin/unshare", "/usr/bin/git", "/usr/bin/curl"])
    if (!existsSync(tool)) return `${tool} is missing (apt-get install openssh-server openssh-client iproute2 git curl)`;
  return null;
}

const sh = (command: string, args: string[], input?: string) => execFileSync(command, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
const quiet = (command: string, args: string[]) => spawnSync(command, args, { encoding: "utf8" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the subnet lock, waiting while a live process holds it; a dead holder's lock is taken over. */
async function lockSubnet(waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      writeFileSync(SUBNET_LOCK, String(process.pid), { flag: "wx" });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number(readFileSync(SUBNET_LOCK, "utf8") || "0");
    if (holder > 0 && !alive(holder)) {
      rmSync(SUBNET_LOCK, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another fleet (pid ${holder}) still holds ${SUBNET_LOCK} after ${waitMs / 1000}s`);
    await sleep(500);
  }
}

function unlockSubnet(): void {
  if (existsSync(SUBNET_LOCK) && readFileSync(SUBNET_LOCK, "utf8") === String(process.pid)) rmSync(SUBNET_LOCK, { force: true });
}

/** Global pids of the children of pid. */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function descendants(pid: number): number[] {
  const direct = childrenOf(pid);
  return [...direct, ...direct.flatMap(descendants)];
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

const HOST_INIT = `#!/bin/bash
# PID 1 of a simulated host: its own hostname, folders, users and sshd.
set -euo pipefail
dir=$1 name=$2 repo=$3
hostname "$name"
# The repository (PM2 and Node's modules) where every host sees it, whatever /tmp the host has.
mount --bind "$repo" "$dir/repo"
for folder in etc/ssh srv home; do mount --bind "$dir/$folder" "/$folder"; done
for file in passwd shadow group; do mount --bind "$dir/etc/$file" "/etc/$file"; done
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd
mount --bind "$dir/tmp" /tmp
/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config 2>>"$dir/sshd.log" &
# Reap orphans (the PM2 daemon started over SSH outlives its session) until killed.
while true; do wait || true; sleep 1; done
`;

function hostFiles(dir: string, name: string, address: string, clientPublicKey: string): void {
  for (const folder of ["etc/ssh", "srv", "home/deploy/.ssh", "tmp", "run", "repo"]) mkdirSync(path.join(dir, folder), { recursive: true });
  chmodSync(path.join(dir, "tmp"), 0o1777);
  sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.join(dir, "etc/ssh/ssh_host_ed25519_key")]);
  const pathVar = [path.dirname(process.execPath), path.join(dir, "repo", "node_modules", ".bin"), "/usr/local/bin", "/usr/bin", "/bin"].join(":");
  writeFileSync(
    path.join(dir, "etc/ssh/sshd_config"),
    [
      `ListenAddress ${address}`,
      "Port 22",
      "HostKey /etc/ssh/ssh_host_ed25519_key",
      "PidFile /run/sshd.pid",
      "UsePAM no",
      "PermitRootLogin no",
      "AllowUsers deploy",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "AuthorizedKeysFile .ssh/authorized_keys",
      "StrictModes yes",
      `SetEnv PATH=${pathVar}`,
      "",
    ].join("\n"),
  );
  // The host's own user database: this machine's, plus deploy (a non-locked "*" password: with
  // UsePAM no, sshd refuses a locked "!" account even for key logins).
  const etc = path.join(dir, "etc");
  writeFileSync(path.join(etc, "passwd"), `${readFileSync("/etc/passwd", "utf8")}deploy:x:${DEPLOY_UID}:${DEPLOY_UID}:deploy:/home/deploy:/bin/bash\n`);
  writeFileSync(path.join(etc, "shadow"), `${readFileSync("/etc/shadow", "utf8")}deploy:*:19000:0:99999:7:::\n`, { mode: 0o640 });
  writeFileSync(path.join(etc, "group"), `${readFileSync("/etc/group", "utf8")}deploy:x:${DEPLOY_UID}:\n`);
  writeFileSync(path.join(dir, "home/deploy/.ssh/authorized_keys"), clientPublicKey, { mode: 0o600 });
  // git refuses a repository owned by another user ("dubious ownership"): the bare repo is root's.
  writeFileSync(path.join(dir, "home/deploy/.gitconfig"), "[safe]\n\tdirectory = *\n[user]\n\tname = deploy\n\temail = deploy@localhost\n");
  for (const own of ["home/deploy", "home/deploy/.ssh", "home/deploy/.ssh/authorized_keys", "home/deploy/.gitconfig"]) chownSync(path.join(dir, own), DEPLOY_UID, DEPLOY_UID);
  chmodSync(path.join(dir, "home/deploy/.ssh"), 0o700);
}

/** Leftovers of fleet `id` on this machine (namespaces, links, processes, mounts, files): empty after teardown. */
export function leftovers(id: string): string[] {
  const found: string[] = [];
  const netns = quiet("ip", ["netns", "list"]).stdout;
  for (const line of netns.split("\n")) if (line.includes(id)) found.push(`netns ${line.split(" ")[0]}`);
  const links = quiet("ip", ["-o", "link", "show"]).stdout;
  for (const line of links.split("\n")) if (line.includes(id.slice(0, 8))) found.push(`link ${line.split(":")[1]?.trim()}`);
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) if (line.includes(id)) found.push(`mount ${line}`);
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const environ = readFileSync(`/proc/${entry}/environ`, "utf8");
      if (cmdline.includes(id) || environ.includes(id)) found.push(`process ${entry} ${cmdline.replace(/\0/g, " ").trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  if (readFileSync("/etc/passwd", "utf8").split("\n").some((line) => line.startsWith("deploy:") && line.includes(String(DEPLOY_UID)))) found.push("user deploy in /etc/passwd");
  if (existsSync(path.join(FLEET_PARENT, id))) found.push(`folder ${path.join(FLEET_PARENT, id)}`);
  if (existsSync(`/tmp/pm2-deploy-${id}.log`)) found.push(`file /tmp/pm2-deploy-${id}.log`);
  return found;
}

/** Removes everything of fleet `id`; safe to call twice and from a process exit handler (synchronous). */
function teardownSync(id: string, root: string, hostPids: number[], bridge: string, netnsNames: string[], localPm2Home: string): void {
  // The local PM2 daemon that `pm2 deploy` started.
  spawnSync(path.join(REPO_ROOT, "node_modules", ".bin", "pm2"), ["kill"], { env: { ...process.env, PM2_HOME: localPm2Home }, timeout: 15_000 });
  // Killing a host's unshare process kills its PID 1 (--kill-child), and with it every process of
  // the host's PID namespace (sshd, the PM2 daemon, the apps); its mounts go with its mount namespace.
  for (const pid of hostPids) {
    for (const child of descendants(pid)) {
      try {
        process.kill(child, "SIGKILL");
      } catch {
        // already gone
      }
    }
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const name of netnsNames) quiet("ip", ["netns", "del", name]);
  quiet("ip", ["link", "del", bridge]);
  // Processes that carry the fleet id in their environment (local PM2 daemon, pm2 deploy's ssh).
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").includes(id) && Number(entry) !== process.pid) process.kill(Number(entry), "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  rmSync(root, { recursive: true, force: true });
  rmSync(`/tmp/pm2-deploy-${id}.log`, { force: true });
  unlockSubnet();
}

export async function startFleet(opts: { hosts: number; waitMs?: number }): Promise<Fleet> {
  const why = whyNoFleet();
  if (why) throw new Error(`cannot start a fleet: ${why}`);
  await lockSubnet(opts.waitMs ?? FLEET_START_TIMEOUT_MS - 60_000);
  if (quiet("ip", ["-o", "addr", "show"]).stdout.includes(`${BRIDGE_ADDRESS}/`)) {
    unlockSubnet();
    throw new Error(`${BRIDGE_ADDRESS} is already in use on this machine (another fleet still running?)`);
  }
  const id = `dgmh${randomBytes(3).toString("hex")}`;
  const root = path.join(FLEET_PARENT, id);
  const bridge = `${id.slice(0, 10)}br`;
  const netnsNames: string[] = [];
  const hostPids: number[] = [];
  const localPm2Home = path.join(root, "local-pm2");
  let done = false;
  const onExit = () => {
    if (!done) teardownSync(id, root, hostPids, bridge, netnsNames, localPm2Home);
  };
  process.on("exit", onExit);
  const teardown = async () => {
    if (done) return;
    teardownSync(id, root, hostPids, bridge, netnsNames, localPm2Home);
    // A killed PID 1 takes a moment to take its namespace down.
    for (let tries = 0; tries < 50 && leftovers(id).length > 0; tries++) await sleep(100);
    done = true;
    process.off("exit", onExit);
  };
  try {
    mkdirSync(root, { recursive: true, mode: 0o755 });
    mkdirSync(localPm2Home);
    const clientKey = path.join(root, "client_key");
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `client-${id}`, "-f", clientKey]);
    const clientPublicKey = readFileSync(`${clientKey}.pub`, "utf8");
    writeFileSync(path.join(root, "host-init.sh"), HOST_INIT, { mode: 0o755 });
    sh("ip", ["link", "add", bridge, "type", "bridge"]);
    sh("ip", ["addr", "add", `${BRIDGE_ADDRESS}/24`, "dev", bridge]);
    sh("ip", ["link", "set", bridge, "up"]);
    const hosts: Host[] = [];
    for (let index = 1; index <= opts.hosts; index++) {
      const name = `h${index}`;
      const netns = `${id}-${name}`;
      const address = `${SUBNET_PREFIX}.${index + 1}`;
      const dir = path.join(root, name);
      hostFiles(dir, name, address, clientPublicKey);
      sh("ip", ["netns", "add", netns]);
      netnsNames.push(netns);
      const outside = `${id.slice(0, 8)}v${index}`;
      sh("ip", ["link", "add", outside, "type", "veth", "peer", "name", `${outside}p`]);
      sh("ip", ["link", "set", outside, "master", bridge, "up"]);
      sh("ip", ["link", "set", `${outside}p`, "netns", netns]);
      sh("ip", ["-n", netns, "link", "set", `${outside}p`, "name", "eth0"]);
      sh("ip", ["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
      sh("ip", ["-n", netns, "link", "set", "eth0", "up"]);
      sh("ip", ["-n", netns, "link", "set", "lo", "up"]);
      // detached: a session of its own (setsid); ip netns exec execs unshare in place, so child.pid is unshare's.
      const child = spawn(
        "ip",
        ["netns", "exec", netns, "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private", "/bin/bash", path.join(root, "host-init.sh"), dir, name, REPO_ROOT],
        { stdio: "ignore", detached: true, env: { ...process.env, DEPLOYGEN_FLEET: id } },
      );
      child.unref();
      hostPids.push(child.pid!);
      const host: Host = {
        name,
        address,
        netns,
        dir,
        pid: child.pid!,
        ssh: (command, timeoutMs = 60_000) =>
          spawnSync("ssh", [...sshArgs(clientKey), `deploy@${address}`, command], { encoding: "utf8", timeout: timeoutMs }),
        http(port, urlPath) {
          const result = quiet("ip", ["netns", "exec", netns, "curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", `http://127.0.0.1:${port}${urlPath}`]);
          if (result.status !== 0) return null;
          const cut = result.stdout.lastIndexOf("\n");
          return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) };
        },
        onHost: (hostPath) => path.join(dir, hostPath.replace(/^\//, "")),
      };
      hosts.push(host);
    }
    for (const host of hosts) await waitForSsh(host);
    return {
      id,
      root,
      hosts,
      clientKey,
      sshOptions: sshArgs(clientKey).filter((arg) => arg !== "-o"),
      localEnv: { ...process.env, PM2_HOME: localPm2Home, USER: id, DEPLOYGEN_FLEET: id, NO_COLOR: "1" },
      bareRepo(name) {
        const repo = path.join(root, "git", `${name}.git`);
        sh("git", ["init", "-q", "--bare", "--initial-branch=main", repo]);
        return repo;
      },
      stopSshd(host) {
        for (const pid of descendants(host.pid)) if (commOf(pid) === "sshd") process.kill(pid, "SIGKILL");
      },
      teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

function sshArgs(clientKey: string): string[] {
  return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", `IdentityFile=${clientKey}`];
}

async function waitForSsh(host: Host): Promise<void> {
  let last = "";
  for (let tries = 0; tries < 100; tries++) {
    const result = host.ssh("true", 10_000);
    if (result.status === 0) return;
    last = result.stderr;
    await sleep(100);
  }
  throw new Error(`sshd on ${host.name} (${host.address}) does not answer: ${last}`);
}
