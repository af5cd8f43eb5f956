# Everything the generated scripts do; sourced by config-<environment>.sh, which holds the data of
# one environment (DG_* variables and the manifest's install/build/verify commands as functions).
# Nothing here is project data: the same file serves every project and environment.

# ----- output ---------------------------------------------------------------------------------
# Colours only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb.
if [[ -t 1 && -t 2 && -z ${NO_COLOR-} && ${TERM-} != dumb ]]; then
  DG_RED=$'\033[0;31m' DG_GREEN=$'\033[0;32m' DG_YELLOW=$'\033[0;33m' DG_BLUE=$'\033[0;34m' DG_BOLD=$'\033[1m' DG_RESET=$'\033[0m'
else
  DG_RED='' DG_GREEN='' DG_YELLOW='' DG_BLUE='' DG_BOLD='' DG_RESET=''
fi
dg_section() { printf '%s==> %s%s\n' "$DG_BOLD$DG_BLUE" "$1" "$DG_RESET"; }
dg_info() { printf '    %s\n' "$1"; }
dg_ok() { printf '    %sok%s %s\n' "$DG_GREEN" "$DG_RESET" "$1"; }
dg_warn() { printf '%swarning:%s %s\n' "$DG_YELLOW" "$DG_RESET" "$1" >&2; }
# dg_die MESSAGE [FIX]: the message, the action that fixes it, exit 1 (the EXIT trap cleans up).
dg_die() {
  printf '%serror:%s %s\n' "$DG_RED" "$DG_RESET" "$1" >&2
  if [[ -n ${2-} ]]; then printf '%sfix:%s %s\n' "$DG_BOLD" "$DG_RESET" "$2" >&2; fi
  exit 1
}
dg_on_error() { printf '%serror:%s %s failed at line %s (exit %s)\n' "$DG_RED" "$DG_RESET" "${BASH_SOURCE[1]##*/}" "$1" "$2" >&2; }
trap 'dg_on_error "$LINENO" "$?"' ERR
# dg_show KEY VALUE: a dry run's "KEY<TAB>VALUE" line, or with DG_PRINT_VALUES=1 a NUL-terminated
# "KEY=VALUE" record (indent dropped) that keeps every byte of VALUE.
dg_show() {
  if ((DG_PRINT_VALUES == 1)); then printf '%s=%s\0' "${1#"${1%%[! ]*}"}" "$2"; else printf '%s\t%s\n' "$1" "$2"; fi
}
dg_elapsed_since() {
  local tenths=$(((${EPOCHREALTIME/[.,]/} - ${1/[.,]/}) / 100000))
  printf '%d.%ds' $((tenths / 10)) $((tenths % 10))
}
dg_need() { command -v "$1" >/dev/null 2>&1 || dg_die "$1 is not installed (or not on PATH: $PATH)" "$2"; }

# ----- set-up ---------------------------------------------------------------------------------
# dg_setup COMMAND: the root (from the scripts' location unless <P>_ROOT says otherwise), the state
# folder, PM2_HOME (environment, else the manifest's pm2Home, else ~/.pm2 of the service user).
dg_setup() {
  DG_COMMAND=$1 DG_DIRECT=0 DG_NO_WAIT=0 DG_FORCE=0 DG_DRY_RUN=0 DG_PRINT_VALUES=0 DG_TAKEOVER=0
  ROOT=${!DG_ROOT_VAR:-$(cd -- "$DG_SCRIPT_DIR/$DG_ROOT_FROM_SCRIPTS" && pwd -P)}
  export "$DG_ROOT_VAR=$ROOT"
  DG_STATE=$ROOT/.deploygen/$DG_ENV DG_LOGS=$ROOT/logs
  DG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/deploygen.XXXXXX")
  trap dg_on_exit EXIT
  trap 'dg_interrupted INT' INT
  trap 'dg_interrupted TERM' TERM
  trap 'dg_interrupted HUP' HUP
  if [[ -z ${PM2_HOME-} ]]; then
    case $DG_PM2_HOME_KIND in
      project) PM2_HOME=$ROOT/$DG_PM2_HOME ;;
      absolute) PM2_HOME=$DG_PM2_HOME ;;
      *) PM2_HOME=$(getent passwd "$DG_USER" | cut -d: -f6 || true) && PM2_HOME=${PM2_HOME:-${HOME:?HOME is not set}}/.pm2 ;;
    esac
  fi
  export PM2_HOME
  local me
  me=$(id -un 2>/dev/null || echo '?')
  if [[ $me != "$DG_USER" && $me != root ]] && getent passwd "$DG_USER" >/dev/null 2>&1; then
    dg_warn "running as $me, but the service user is $DG_USER; run as $DG_USER (sudo -u $DG_USER ...) so everyone talks to one PM2 daemon"
  fi
}

# dg_options USAGE ALLOWED ARG...: sets DG_<OPTION>=1 for each allowed --option; DG_ARGS: the rest.
dg_options() {
  local usage=$1 allowed=" $2 --help " arg name
  shift 2
  DG_ARGS=()
  for arg in "$@"; do
    case $arg in
      -h | --help) printf 'Usage: %s %s\n' "${0##*/}" "$usage"; exit 0 ;;
      --print-values) DG_DRY_RUN=1 DG_PRINT_VALUES=1 ;;
      --*)
        [[ $allowed == *" $arg "* ]] || dg_die "unknown option: $arg" "run ${0##*/} --help"
        name=${arg#--} name=${name//-/_}
        printf -v "DG_${name^^}" 1
        ;;
      *) DG_ARGS+=("$arg") ;;
    esac
  done
}

# ----- cleaning up, interruptions, the lock ----------------------------------------------------
# DG_CLEANUPS: functions the EXIT trap runs, last added first, however the run ends.
DG_CLEANUPS=()
dg_on_exit() {
  local rc=$? i
  trap - ERR INT TERM HUP
  for ((i = ${#DG_CLEANUPS[@]} - 1; i >= 0; i--)); do "${DG_CLEANUPS[i]}" || true; done
  local jobs
  mapfile -t jobs < <(jobs -p)
  ((${#jobs[@]} == 0)) || kill -- "${jobs[@]}" 2>/dev/null || true
  rm -rf -- "$DG_TMP"
  exit "$rc"
}
dg_interrupted() {
  trap - INT TERM HUP
  dg_warn "interrupted by SIG$1: undoing what this run started"
  exit 130
}

# dg_lock [--skip]: one deploy, start, stop or rollback per environment and checkout at a time.
# Waits up to DG_LOCK_WAIT seconds (default 300; --no-wait: none), printing who holds the lock;
# --skip: returns 1 at once instead.
dg_lock() {
  mkdir -p -- "$DG_STATE" 2>/dev/null || dg_die "cannot create $DG_STATE" "make $ROOT writable by $(id -un) (the service user is $DG_USER)"
  exec {DG_LOCK_FD}>>"$DG_STATE/lock"
  if ! flock -n "$DG_LOCK_FD"; then
    local holder wait=${DG_LOCK_WAIT:-300}
    holder=$(cat -- "$DG_STATE/lock.info" 2>/dev/null || echo 'unknown')
    ((DG_NO_WAIT == 1)) && wait=0
    [[ ${1-} != --skip ]] || return 1
    if [[ -n ${DG_DELEGATED-} && $holder == "pid $DG_DELEGATED "* ]]; then return 0; fi
    dg_info "another run holds the lock of $DG_NAMESPACE: $holder; waiting up to ${wait}s"
    flock -w "$wait" "$DG_LOCK_FD" || dg_die "another run still holds the lock of $DG_NAMESPACE: $holder" "wait for it to finish (or stop it), then run again"
  fi
  printf 'pid %s (%s %s) since %s\n' "$$" "${0##*/}" "$DG_COMMAND" "$(date '+%F %T')" >"$DG_STATE/lock.info"
  DG_CLEANUPS+=(dg_unlock)
}
dg_unlock() { rm -f -- "$DG_STATE/lock.info"; }

# ----- tools and PM2 --------------------------------------------------------------------------
dg_tools() {
  dg_need node "install Node.js 20.12 or later for the service user"
  dg_need curl "install curl (apt-get install curl): the health checks use it"
  dg_need flock "install util-linux (flock)"
  if [[ -n ${PM2_BIN-} ]]; then DG_PM2=$PM2_BIN
  elif command -v pm2 >/dev/null 2>&1; then DG_PM2=$(command -v pm2)
  elif [[ -x $ROOT/node_modules/.bin/pm2 ]]; then DG_PM2=$ROOT/node_modules/.bin/pm2
  else dg_die "pm2 is not installed (not on PATH, not in $ROOT/node_modules/.bin)" "install it for the service user: npm install -g pm2 (or set PM2_BIN to its path)"
  fi
}
dg_helper() { node "$DG_SCRIPT_DIR/deploygen-helper.cjs" "$@"; }

# dg_pm2 ARG...: every PM2 call has a deadline (DG_PM2_TIMEOUT seconds). The first call that may
# spawn the daemon holds a lock in PM2_HOME, so two runs never start two daemons for one PM2_HOME.
dg_pm2() {
  # A daemon this call starts must not inherit the environment's lock: it would hold it for good.
  if [[ -n ${DG_LOCK_FD-} ]]; then dg_pm2_run "$@" {DG_LOCK_FD}>&-; else dg_pm2_run "$@"; fi
}
dg_pm2_run() {
  local deadline=${DG_PM2_TIMEOUT:-$((DG_MAX_HEALTH_TIMEOUT + 60))}
  if dg_daemon_pid >/dev/null; then timeout -k 5 "$deadline" "$DG_PM2" "$@"; return; fi
  mkdir -p -- "$PM2_HOME"
  flock -o -w "$deadline" "$PM2_HOME/deploygen-spawn.lock" timeout -k 5 "$deadline" "$DG_PM2" "$@"
}
dg_daemon_pid() {
  local pid=''
  # PM2 writes its pid files without a final newline: read fails but sets pid.
  { { read -r pid <"$PM2_HOME/pm2.pid" || [[ -n $pid ]]; } && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid"; } 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# dg_snapshot: one look at PM2 per run (`pm2 jlist` costs a Node start-up and PM2's load):
# DG_PROCESSES holds one line per process: name, namespace, status, pid, exec_mode, cwd. No daemon
# is started for it. dg_snapshot again after a change.
dg_snapshot() {
  : >"$DG_TMP/jlist"
  DG_PROCESSES=''
  dg_daemon_pid >/dev/null || return 0
  dg_pm2 jlist >"$DG_TMP/jlist" 2>/dev/null || dg_die "pm2 jlist failed (PM2_HOME=$PM2_HOME)" "run pm2 jlist to see why (pm2 kill restarts a stuck daemon)"
  DG_PROCESSES=$(dg_helper pm2-list "$DG_TMP/jlist")
}
dg_processes_of() { awk -F '\t' -v "$1=$2" '($1 == name || name == "") && ($2 == ns || ns == "")' <<<"$DG_PROCESSES" | sort; }

# dg_check_takeover: apps of these names that run from another checkout are not ours to replace
# (from a folder that is gone, the checkout moved: they are).
dg_check_takeover() {
  local name cwd
  while IFS=$'\t' read -r name _ _ _ _ cwd; do
    [[ -n $name && -n ${DG_APP_OF_PM2[$name]-} ]] || continue
    [[ $cwd == "$ROOT" || $cwd == "$ROOT"/* || ! -e $cwd ]] && continue
    ((DG_TAKEOVER == 1)) && { dg_warn "$name runs from $cwd: taking it over (--takeover)"; continue; }
    dg_die "$name already runs from another checkout: $cwd" "stop it there (its stop script), or pass --takeover to replace it with this checkout's"
  done < <(dg_processes_of ns "$DG_NAMESPACE")
}

# ----- pre-flight -----------------------------------------------------------------------------
dg_preflight() {
  dg_section "Pre-flight: $DG_PROJECT ($DG_ENV) in $ROOT"
  dg_tools
  DG_NODE_VERSION=$(node --version)
  dg_ok "tools: node $DG_NODE_VERSION, pm2 at $DG_PM2, PM2_HOME=$PM2_HOME"
  if [[ -n $DG_ENV_FILE ]]; then
    dg_helper_checked env-check "$ROOT/$DG_ENV_FILE" "${DG_EXAMPLE_FILE:+$ROOT/$DG_EXAMPLE_FILE}" "${DG_REQUIRED_ENV[@]}"
    dg_ok "env file $DG_ENV_FILE sets every required key"
  fi
  local dir free
  for dir in "$DG_LOGS" "$DG_STATE"; do
    { mkdir -p -- "$dir" 2>/dev/null && [[ -w $dir ]]; } || dg_die "$dir is not writable by $(id -un)" "sudo chown -R $DG_USER $dir (the apps' logs and the deploy's state live there)"
  done
  free=$(df -Pk -- "$DG_STATE" | awk 'NR == 2 { print int($4 / 1024) }')
  ((free >= DG_MIN_FREE_MB)) || dg_die "only ${free} MB free on the disk of $DG_STATE (at least $DG_MIN_FREE_MB MB needed)" "free disk space (old logs in $DG_LOGS, old releases), or lower minFreeDiskMB in the manifest"
  dg_ok "writable logs and state folders, ${free} MB free"
  dg_snapshot
  dg_check_takeover
  local app
  for app in "${DG_APPS[@]}"; do [[ -z ${DG_PORT[$app]-} ]] || dg_check_port "$app"; done
  dg_check_units
}

# dg_helper_checked COMMAND ARG...: runs the Node helper and turns its diagnostics into ours.
# Every error and warning is printed with the fix that follows it (env-check names each bad key).
dg_helper_checked() {
  local kind text status=0 errors=0
  dg_helper "$@" 2>"$DG_TMP/helper.err" || status=$?
  while IFS=$'\t' read -r kind text; do
    case $kind in
      warning) dg_warn "$text" ;;
      error) printf '%serror:%s %s\n' "$DG_RED" "$DG_RESET" "$text" >&2 && errors=$((errors + 1)) ;;
      fix) printf '%sfix:%s %s\n' "$DG_BOLD" "$DG_RESET" "$text" >&2 ;;
      *) [[ -z $kind ]] || printf '%s\n' "$kind${text:+	$text}" >&2 ;;
    esac
  done <"$DG_TMP/helper.err"
  ((status == 0 && errors == 0)) || { ((errors > 0)) || dg_die "node deploygen-helper.cjs $1 failed (exit $status)"; exit 1; }
}

# dg_check_port APP: the port is free, or held by this app's own processes (or their children).
dg_check_port() {
  local app=$1 port=${DG_PORT[$1]} ours=() pid command
  mapfile -t ours < <(dg_processes_of name "${DG_PM2_NAME[$app]}" | awk -F '\t' '$3 == "online" { print $4 }')
  while IFS=$'\t' read -r pid command; do
    [[ $pid == '?' ]] && command='an unidentified process' || command="PID $pid ($command)"
    dg_die "port $port (for $app) is already in use by $command" "stop that process, or give $app another port in the manifest and regenerate"
  done < <(dg_helper port-owners "$port" "${ours[@]}" "$(dg_daemon_pid || true)")
  dg_ok "port $port is free or held by $app itself"
}

# ----- systemd --------------------------------------------------------------------------------
# dg_unit_instance [PREFIX] [SUFFIX]: the unit instance of this checkout (PREFIX@<escaped root>.SUFFIX).
dg_unit_instance() { printf '%s@%s.%s' "${1:-$DG_UNIT_PREFIX}" "$(systemd-escape --path -- "$ROOT")" "${2:-service}"; }
dg_unit_installed() {
  command -v systemctl >/dev/null 2>&1 && command -v systemd-escape >/dev/null 2>&1 && [[ -d /run/systemd/system ]] || return 1
  [[ -f /etc/systemd/system/${DG_UNIT_FILES[0]##*/} ]] && systemctl is-enabled --quiet -- "$(dg_unit_instance)" 2>/dev/null
}
dg_systemctl() { if ((EUID == 0)); then systemctl "$@"; else sudo -n systemctl "$@"; fi; }

# dg_check_units: after the manifest changed and the files were regenerated, the installed units
# are old copies until install-systemd runs again: say what differs and what to run.
dg_check_units() {
  [[ -d /etc/systemd/system && -f /etc/systemd/system/${DG_UNIT_FILES[0]##*/} ]] || return 0
  local file installed stale=0
  for file in "${DG_UNIT_FILES[@]}"; do
    installed=/etc/systemd/system/${file##*/}
    if ! cmp -s -- "$DG_SCRIPT_DIR/$file" "$installed"; then
      stale=1
      dg_warn "the installed $installed differs from the generated $file:"
      diff -u -- "$installed" "$DG_SCRIPT_DIR/$file" | sed -n '3,$p' | head -20 >&2 || true
    fi
  done
  ((stale == 0)) || dg_warn "apply it: sudo $DG_SCRIPT_DIR/${DG_SCRIPTS[install-systemd]}"
}

# dg_daemon_under_unit: with the unit installed, PM2's daemon must live in the unit's cgroup (not in
# an SSH session that ends). When it does not run there, the unit is (re)started first.
dg_daemon_under_unit() {
  ((DG_DIRECT == 0)) && dg_unit_installed || return 0
  local pid unit
  unit=$(dg_unit_instance)
  pid=$(dg_daemon_pid || true)
  [[ -n $pid ]] && grep -qF -- "$unit" "/proc/$pid/cgroup" 2>/dev/null && return 0
  dg_info "PM2's daemon does not run under $unit: restarting the unit first"
  printf 'pid %s delegated\n' "$$" >>"$DG_STATE/lock.info"
  dg_systemctl restart -- "$unit" || dg_die "systemctl restart $unit failed" "journalctl -u '$unit' -n 50 shows why"
  dg_snapshot
  pid=$(dg_daemon_pid || true)
  [[ -z $pid ]] || grep -qF -- "$unit" "/proc/$pid/cgroup" 2>/dev/null ||
    dg_warn "PM2's daemon (PM2_HOME=$PM2_HOME) runs other projects' apps, so it stays where it was started, outside $unit; give $DG_ENV a pm2Home of its own in the manifest for the unit to own its daemon"
}

# ----- releases -------------------------------------------------------------------------------
# Releases: .deploygen/<env>/releases/<id> (immutable copies of the checkout); "current" is a
# relative symlink to the live one, switched atomically; PM2's apps run under the stable "current".
dg_current() { local target; target=$(readlink -- "$DG_STATE/current" 2>/dev/null) && printf '%s\n' "${target##*/}"; }
dg_releases() { find "$DG_STATE/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | LC_ALL=C sort; }
dg_switch() {
  ln -sfn -- "releases/$1" "$DG_STATE/current.new" && mv -fT -- "$DG_STATE/current.new" "$DG_STATE/current"
}
# The release a rollback goes to: the newest good one older than the live one.
dg_previous() {
  local current id previous=''
  current=$(dg_current) || return 1
  while IFS= read -r id; do
    [[ $id < "$current" && ! -e $DG_STATE/releases/$id/.deploygen-release/failed ]] && previous=$id
  done < <(dg_releases)
  [[ -n $previous ]] && printf '%s\n' "$previous"
}
# dg_release_of_commit COMMIT: this host's newest good release of a git commit (ids end in -<commit10>).
dg_release_of_commit() {
  local id found=''
  while IFS= read -r id; do
    [[ ${id: -11} == -"${1:0:10}"* && ! -e $DG_STATE/releases/$id/.deploygen-release/failed ]] && found=$id
  done < <(dg_releases)
  [[ -n $found ]] && printf '%s\n' "$found"
}

# dg_source_files: NUL-terminated project files a release copies (git's tracked and untracked but
# not ignored files in a checkout), never .git, dependencies, build outputs, env files or logs.
dg_source_files() {
  (
    cd -- "$ROOT"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git ls-files -z --cached --others --exclude-standard
    else
      find . -mindepth 1 \( -name .git -o -name .deploygen -o -path ./logs -o -name node_modules -o -name .venv -o -name __pycache__ \) -prune -o \( -type f -o -type l \) -printf '%P\0'
    fi
  ) | dg_helper release-files "$ROOT" "$DG_EXCLUDE"
}

# dg_new_release LIVE: copies the source into a new release folder (removed again if the run fails
# before it goes live) and links the shared paths; sets DG_RELEASE and DG_RELEASE_DIR. Returns 1,
# making none, when the source is byte for byte that of the live release (and no --force).
dg_new_release() {
  local commit stamp n=1 hash
  hash=$(dg_source_hash)
  if ((DG_FORCE == 0)) && dg_unchanged_since "$1" "$hash"; then
    dg_ok "the checkout is unchanged since release $1: reloading it"
    return 1
  fi
  commit=$(git -C "$ROOT" rev-parse --short=10 HEAD 2>/dev/null || true)
  [[ -z $commit ]] || git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
  stamp=$(date -u '+%Y%m%d-%H%M%S')
  DG_RELEASE=$stamp${commit:+-$commit}
  while [[ -e $DG_STATE/releases/$DG_RELEASE ]]; do DG_RELEASE=$stamp-$((++n))${commit:+-$commit}; done
  DG_RELEASE_DIR=$DG_STATE/releases/$DG_RELEASE
  mkdir -p -- "$DG_RELEASE_DIR/.deploygen-release"
  DG_CLEANUPS+=(dg_discard_release)
  tar -C "$ROOT" --null --no-recursion -T "$DG_TMP/files" -cf - | tar -C "$DG_RELEASE_DIR" -xf - ||
    dg_die "copying the project into $DG_RELEASE_DIR failed (see above)" "free disk space or fix the permissions named above, then deploy again"
  local path up
  for path in "${DG_SHARED[@]}"; do
    mkdir -p -- "$ROOT/$path"
    rm -rf -- "${DG_RELEASE_DIR:?}/$path"
    mkdir -p -- "$(dirname -- "$DG_RELEASE_DIR/$path")"
    up=$(dg_helper relative "$(dirname -- "$DG_RELEASE_DIR/$path")" "$ROOT/$path")
    ln -s -- "$up" "$DG_RELEASE_DIR/$path"
  done
  printf '%s\n' "$hash" >"$DG_RELEASE_DIR/.deploygen-release/source"
  dg_ok "release $DG_RELEASE: $(tr -cd '\0' <"$DG_TMP/files" | wc -c) files copied"
}
# dg_source_hash: the files a release copies listed in $DG_TMP/files; prints the hash of their content.
dg_source_hash() {
  dg_source_files >"$DG_TMP/files"
  (cd -- "$ROOT" && xargs -0r sha256sum -- <"$DG_TMP/files" | sha256sum | cut -d ' ' -f 1)
}
dg_unchanged_since() { [[ -n $1 && $2 == "$(cat -- "$DG_STATE/releases/$1/.deploygen-release/source" 2>/dev/null)" ]]; }
dg_discard_release() {
  [[ -n ${DG_RELEASE_DIR-} && -d $DG_RELEASE_DIR && $(dg_current) != "$DG_RELEASE" ]] || return 0
  rm -rf -- "$DG_RELEASE_DIR"
  dg_info "removed the unfinished release $DG_RELEASE"
}

# dg_prune: keeps DG_RELEASES_KEEP releases, never the live one or the rollback target.
dg_prune() {
  local current previous id count
  current=$(dg_current) previous=$(dg_previous || true)
  count=$(dg_releases | wc -l)
  while IFS= read -r id && ((count > DG_RELEASES_KEEP)); do
    [[ $id == "$current" || $id == "$previous" ]] && continue
    rm -rf -- "${DG_STATE:?}/releases/$id" && count=$((count - 1)) && dg_info "removed old release $id"
  done < <(dg_releases)
}

# ----- install, build, verify -----------------------------------------------------------------
# An install or build whose inputs (commands, Node version, dependency files; for a build, its
# input files) hash as they did after its last success is not redone. In a release, the previous
# release's dependencies (or build outputs) are hard-linked instead: no bytes copied.
dg_hash() {
  local dir=$1 kind=$2 app=$3 excludes=''
  [[ $kind == install ]] || excludes=${DG_OUTPUTS_OF[$app.build]-}
  (cd -- "$dir" && { printf '%s\n%s\n' "$DG_NODE_VERSION" "$kind"; declare -f "dg_${kind}_${app//-/_}"; dg_helper input-files "$kind" "$excludes" "${DG_BUILD_INPUTS[$app]-}" | LC_ALL=C sort -zu | xargs -0r sha256sum --; dg_outputs_present "$kind" "$app"; } | sha256sum | cut -d ' ' -f 1) 2>/dev/null
}
# In place, which of the step's outputs exist is an input too: the hash recorded after a success
# names those the step left (an install that makes no node_modules is not "missing" it), and one
# deleted since makes the step run again. (A release starts without them: it reuses or rebuilds.)
dg_outputs_present() {
  local path
  ((DG_RELEASES_KEEP == 0)) || return 0
  while IFS= read -r path; do [[ ! -e $path ]] || printf 'output %s\n' "$path"; done < <(dg_paths "${DG_OUTPUTS_OF[$2.$1]-}")
}
# dg_paths LIST: the lines of a newline-separated list of paths (the config's lists), one per line.
dg_paths() { [[ -z $1 ]] || printf '%s\n' "$1"; }

# dg_run_step LABEL FUNCTION DIR FIX [WHY]: runs FUNCTION in DIR in a subshell with errexit on.
dg_run_step() {
  local started=$EPOCHREALTIME rc=0
  dg_info "$1${5:+: $5}"
  (set -euo pipefail && cd -- "$3" && "$2") {DG_LOCK_FD}>&- || rc=$?
  ((rc == 0)) || dg_die "$1 failed (exit $rc); $DG_STILL_SERVING" "$4"
  dg_ok "$1 ($(dg_elapsed_since "$started"))"
}

# dg_step KIND APP BASE PREVIOUS: install or build APP in BASE (the release, or the root in place).
# PREVIOUS: the previous release's folder to reuse from, or empty.
dg_step() {
  local kind=$1 app=$2 base=$3 previous=$4 dir record hash old='' why='' path outputs=()
  dir=$base/${DG_CWD[$app]} record=$DG_STEPS/$app.$kind
  declare -F "dg_${kind}_${app//-/_}" >/dev/null || return 0
  mapfile -t outputs < <(dg_paths "${DG_OUTPUTS_OF[$app.$kind]-}")
  hash=$(dg_hash "$dir" "$kind" "$app") || hash=''
  [[ -f $record ]] && old=$(<"$record")
  if ((DG_FORCE == 1)); then why='--force'
  elif [[ -z $old ]]; then why='no earlier success recorded'
  elif [[ -z $hash || $hash != "$old" ]]; then why='inputs changed'
  elif [[ -n $previous ]]; then
    ((${#outputs[@]} > 0)) || why='nothing to reuse (no outputs declared)'
    for path in "${outputs[@]}"; do [[ -e $previous/${DG_CWD[$app]}/$path ]] || why='outputs missing in the previous release'; done
  fi
  if [[ -z $why && -n $previous ]]; then
    for path in "${outputs[@]}"; do mkdir -p -- "$(dirname -- "$dir/$path")" && cp -al -- "$previous/${DG_CWD[$app]}/$path" "$dir/$path"; done
    [[ $kind == build ]] || dg_relocate_venv "$previous/${DG_CWD[$app]}" "$dir"
    dg_ok "reused the $kind of $app from release ${previous##*/}: inputs unchanged"
    return 0
  fi
  [[ -n $why ]] || { dg_ok "skipped $kind $app: inputs unchanged"; return 0; }
  rm -f -- "$record"
  dg_run_step "$kind $app (in ${DG_CWD[$app]})" "dg_${kind}_${app//-/_}" "$dir" "fix the $kind error above (or the $kind commands of $app in the manifest), then deploy again" "$why"
  # Hashed again: what the step wrote into its own inputs (a dist/ among the build inputs) is
  # unchanged next time.
  hash=$(dg_hash "$dir" "$kind" "$app") || hash=''
  [[ -z $hash ]] || { printf '%s\n' "$hash" >"$record.new" && DG_PENDING+=("$record"); }
}
# A virtualenv names its own folder in its scripts: after hard-linking one into another release,
# rewrite those (as new files: the previous release's stay as they were).
dg_relocate_venv() {
  local from=$1/.venv to=$2/.venv file
  [[ -f $to/pyvenv.cfg ]] || return 0
  grep -lIF -- "$from" "$to"/bin/* 2>/dev/null | while IFS= read -r file; do
    sed "s|$from|$to|g" -- "$file" >"$file.new" && chmod --reference="$file" -- "$file.new" && mv -f -- "$file.new" "$file"
  done
}
dg_verify() {
  local app=$1 base=$2 path
  while IFS= read -r path; do
    [[ -e $base/${DG_CWD[$app]}/$path ]] || dg_die "$app: ${DG_CWD[$app]}/$path is missing after install and build; $DG_STILL_SERVING" "check the install and build steps of $app in the manifest (run them by hand in ${DG_CWD[$app]} to see why $path is not produced)"
  done < <(dg_paths "${DG_VERIFY_FILES[$app]-}")
  if declare -F "dg_verify_${app//-/_}" >/dev/null; then
    dg_run_step "verify $app" "dg_verify_${app//-/_}" "$base/${DG_CWD[$app]}" "fix what the verify command of $app reports (usually a missing dependency: check the install step), then deploy again (with --force to redo install and build)"
  fi
}
# In place, a build writes where the running app reads: its outputs are copied aside (a real copy:
# a build may rewrite files in place, which would change hard links too) and put back if the build
# fails or is interrupted, so no half-written artifact is ever left.
dg_keep_outputs() {
  local app path
  DG_KEPT=()
  for app in "${DG_APPS[@]}"; do
    while IFS= read -r path; do
      path=$ROOT/${DG_CWD[$app]}/$path
      rm -rf -- "$path.deploygen-previous"
      [[ ! -e $path ]] || cp -a --reflink=auto -- "$path" "$path.deploygen-previous"
      DG_KEPT+=("$path")
    done < <(dg_paths "${DG_OUTPUTS_OF[$app.build]-}")
  done
  DG_CLEANUPS+=(dg_restore_outputs)
}
dg_restore_outputs() {
  local path
  for path in "${DG_KEPT[@]}"; do
    if ((DG_LIVE == 1)); then rm -rf -- "$path.deploygen-previous"; continue; fi
    rm -rf -- "$path"
    [[ ! -e $path.deploygen-previous ]] || { mv -- "$path.deploygen-previous" "$path" && dg_info "put the previous ${path#"$ROOT"/} back"; }
  done
}
dg_commit_steps() {
  local record
  for record in "${DG_PENDING[@]}"; do mv -f -- "$record.new" "$record"; done
  DG_PENDING=()
}

# ----- start, watch, health -------------------------------------------------------------------
dg_probe() { curl --silent --fail --output /dev/null --connect-timeout 1 --max-time 5 -- "$1" 2>/dev/null; }

# dg_apply ECOSYSTEM: starts or reloads the namespace from ECOSYSTEM (apps whose folder, program,
# mode or variables a reload cannot change are started afresh; apps gone from the manifest are
# removed), then dg_watch. PM2 runs in the background meanwhile, so a crash loop is seen while a
# reload still waits for it. Uses the run's snapshot of PM2's process list (dg_snapshot).
dg_apply() {
  local ecosystem=$1 name pm2_pid rc=0
  mkdir -p -- "$DG_LOGS"
  if [[ -s $DG_TMP/jlist ]]; then
    while IFS= read -r name; do
      dg_info "$name runs with settings a reload cannot change: starting it afresh"
      dg_pm2 delete "$name" >/dev/null
    done < <(dg_helper pm2-changed "$DG_TMP/jlist" "$ecosystem" "$DG_NAMESPACE")
    while IFS=$'\t' read -r name _; do
      [[ -n $name && -z ${DG_APP_OF_PM2[$name]-} ]] || continue
      dg_info "removing $name (no longer in the manifest)"
      dg_pm2 delete "$name" >/dev/null
    done < <(dg_processes_of ns "$DG_NAMESPACE")
  fi
  dg_daemon_pid >/dev/null || dg_pm2 ping >/dev/null
  rm -rf -- "$DG_TMP/exceptions" && mkdir -- "$DG_TMP/exceptions"
  # Node itself in the background (so kill reaches it), without the environment's lock.
  node "$DG_SCRIPT_DIR/deploygen-helper.cjs" pm2-exceptions "$DG_PM2" "$DG_NAMESPACE" "$DG_TMP/exceptions" 2>/dev/null {DG_LOCK_FD}>&- &
  DG_LISTENER=$!
  dg_pm2 startOrReload "$ecosystem" --update-env >"$DG_TMP/pm2.out" 2>&1 &
  pm2_pid=$!
  dg_watch "$pm2_pid" || rc=$?
  kill -- "$DG_LISTENER" 2>/dev/null || true
  if dg_running "$pm2_pid"; then kill -- "$pm2_pid" 2>/dev/null || true; fi
  wait "$pm2_pid" 2>/dev/null || { ((rc != 0)) || { cat -- "$DG_TMP/pm2.out" >&2; DG_FAILED_WHY="pm2 startOrReload failed"; rc=1; }; }
  return "$rc"
}

# dg_watch PM2_PID: polls every 0.25 s until every app answers its health URL. Fails early on a
# crash loop (a process of the app replaced twice, or none alive for a second once PM2 is done)
# and at an app's health timeout. Sets DG_FAILED_APP and DG_FAILED_WHY.
dg_watch() {
  local pm2_pid=${1:-0} started=$EPOCHREALTIME app name file pid pending=("${DG_APPS[@]}") waiting elapsed alive
  local -A seen=() changes=() dead=()
  while ((${#pending[@]} > 0)); do
    waiting=()
    for app in "${pending[@]}"; do
      name=${DG_PM2_NAME[$app]}
      elapsed=$(((${EPOCHREALTIME/[.,]/} - ${started/[.,]/}) / 1000))
      if [[ -n ${DG_HEALTH_URL[$app]-} ]] && ! dg_running "$pm2_pid" && dg_probe "${DG_HEALTH_URL[$app]}"; then
        dg_ok "$name answers ${DG_HEALTH_URL[$app]} ($(dg_elapsed_since "$started"))"
        continue
      fi
      alive=0
      for file in "$PM2_HOME/pids/$name-"*.pid; do
        # A file PM2 removes between the glob and the read is skipped ($(<file) would end the script).
        pid=''
        { { read -r pid <"$file" || [[ -n $pid ]]; } && [[ $pid =~ ^[0-9]+$ ]]; } 2>/dev/null || continue
        kill -0 "$pid" 2>/dev/null && alive=1
        # Counted per worker (pid file): a reload replaces each worker once, a crash loop one twice.
        if [[ -n ${seen[$file]-} && ${seen[$file]} != "$pid" ]]; then
          changes[$file]=$((${changes[$file]-0} + 1))
          ((changes[$file] <= ${changes[$app]-0})) || changes[$app]=${changes[$file]}
        fi
        seen[$file]=$pid
      done
      if ((alive == 0)) && ! dg_running "$pm2_pid"; then dead[$app]=$((${dead[$app]-0} + 1)); else dead[$app]=0; fi
      # In cluster mode PM2 may keep a dying worker's pid file; the exception it caught is the sign.
      [[ ! -s ${DG_TMP-}/exceptions/$name ]] || changes[$app]=$((${changes[$app]-0} + 2))
      if ((${changes[$app]-0} >= 2 || ${dead[$app]} >= 4)); then
        DG_FAILED_APP=$app DG_FAILED_WHY="$name crashes at start (PM2 restarted it, $(dg_elapsed_since "$started") after the start)"
        ((${dead[$app]} < 4)) || DG_FAILED_WHY="$name is not running ($(dg_elapsed_since "$started") after the start)"
        return 1
      fi
      if [[ -z ${DG_HEALTH_URL[$app]-} ]]; then
        if ! dg_running "$pm2_pid" && ((alive == 1 && elapsed >= 2000)); then
          dg_ok "$name is online"
          continue
        fi
      elif ((elapsed >= ${DG_HEALTH_TIMEOUT[$app]} * 1000)); then
        DG_FAILED_APP=$app DG_FAILED_WHY="$name did not answer ${DG_HEALTH_URL[$app]} within ${DG_HEALTH_TIMEOUT[$app]}s"
        return 1
      fi
      waiting+=("$app")
    done
    pending=("${waiting[@]}")
    ((${#pending[@]} == 0)) || sleep 0.25
  done
}
dg_running() { (($1 > 0)) && kill -0 "$1" 2>/dev/null; }
# dg_failure_report: the failed app's reason and the last lines of its own error log.
dg_failure_report() {
  local name=${DG_PM2_NAME[$DG_FAILED_APP]} log tries=8
  log=$DG_LOGS/$name.err.log
  printf '%serror:%s %s\n' "$DG_RED" "$DG_RESET" "$DG_FAILED_WHY" >&2
  # PM2 may still be writing what the app printed as it died; in cluster mode an exception that
  # kills a worker reaches only PM2's event bus.
  while [[ ! -s $log && ! -s $DG_TMP/exceptions/$name ]] && ((tries-- > 0)); do sleep 0.25; done
  [[ -s $log ]] || log=$DG_TMP/exceptions/$name
  if [[ -s $log ]]; then
    printf -- '--- last lines of %s ---\n' "${log/#$DG_TMP\/exceptions\//exceptions PM2 caught in }" >&2
    tail -n 15 -- "$log" >&2
  else
    printf -- '--- %s is empty; PM2 said: ---\n' "$log" >&2
    { grep -h '^\[PM2' -- "$DG_TMP/pm2.out"; tail -n 15 -- "$PM2_HOME/pm2.log"; } >&2 2>/dev/null || true
  fi
}

# ----- the commands ---------------------------------------------------------------------------
# The ecosystem file of the live version: the release's own copy, so a rollback gets its settings.
dg_ecosystem() {
  if ((DG_RELEASES_KEEP > 0)); then printf '%s/%s\n' "$DG_STATE/current" "$DG_ECOSYSTEM"; else printf '%s/%s\n' "$ROOT" "$DG_ECOSYSTEM"; fi
}

dg_deploy() {
  dg_setup deploy
  DG_LIST=0
  dg_options "[--force] [--dry-run] [--print-values] [--no-wait] [--takeover] [--direct] [--list]
  --force         run every install and build, even those whose inputs are unchanged
  --dry-run       print every step with its resolved values and change nothing
  --print-values  the same values as NUL-terminated KEY=VALUE records (byte-exact, for tools)
  --no-wait       fail at once when another run holds the environment's lock
  --takeover      replace apps of the same names that run from another checkout
  --direct        call PM2 even where the systemd unit is installed
  --list          list the releases, the live one marked" "--force --dry-run --no-wait --takeover --direct --list" "$@"
  ((DG_LIST == 0)) || { dg_list; return 0; }
  ((DG_DRY_RUN == 0)) || { dg_dry_run; return 0; }
  local started=$EPOCHREALTIME previous='' base=$ROOT app
  dg_lock
  dg_preflight
  DG_STEPS=$DG_STATE/steps DG_PENDING=() DG_LIVE=0
  mkdir -p -- "$DG_STEPS"
  if ((DG_RELEASES_KEEP > 0)); then
    previous=$(dg_current || true)
    DG_STILL_SERVING="nothing was switched: release ${previous:-none} keeps serving"
    dg_section "Release"
    if dg_new_release "$previous"; then base=$DG_RELEASE_DIR; else base=''; fi
  else
    DG_STILL_SERVING="nothing was restarted: the running version keeps serving"
    dg_keep_outputs
  fi
  if [[ -n $base ]]; then
    dg_section "Install"
    for app in "${DG_APPS[@]}"; do dg_step install "$app" "$base" "${previous:+$DG_STATE/releases/$previous}"; done
    dg_section "Build"
    for app in "${DG_APPS[@]}"; do dg_step build "$app" "$base" "${previous:+$DG_STATE/releases/$previous}"; done
    dg_section "Verify"
    for app in "${DG_APPS[@]}"; do dg_verify "$app" "$base"; done
  fi
  dg_daemon_under_unit
  dg_section "Start or reload namespace $DG_NAMESPACE"
  DG_LIVE=1
  if [[ -n ${DG_RELEASE-} ]]; then dg_switch "$DG_RELEASE"; DG_CLEANUPS+=(dg_undo_switch); dg_info "current -> $DG_RELEASE"; fi
  if ! dg_apply "$(dg_ecosystem)"; then
    dg_failure_report
    ((DG_RELEASES_KEEP > 0)) || dg_die "${DG_PM2_NAME[$DG_FAILED_APP]} does not run: $DG_NAMESPACE is DOWN (a deploy in place has no automatic rollback)" "fix the app (its log is above), then deploy again; releases: { keep: 5 } in the manifest gives automatic rollback"
    [[ -n ${DG_RELEASE-} ]] || dg_die "${DG_PM2_NAME[$DG_FAILED_APP]} of release $previous does not run: $DG_NAMESPACE is DOWN" "fix the app and deploy again, or ${DG_SCRIPTS[rollback]} to an earlier release"
    dg_rollback_to "$previous"
  fi
  dg_commit_steps
  # In place, the copies of the previous build outputs go now (the cleanups are reset below).
  ((DG_RELEASES_KEEP > 0)) || dg_restore_outputs
  DG_CLEANUPS=(dg_unlock)
  ((DG_RELEASES_KEEP == 0)) || { dg_prune; previous=" release $(dg_current)"; }
  dg_section "Deployed $DG_PROJECT ($DG_ENV)${previous} in $(dg_elapsed_since "$started")"
}
# An interrupted or failed run after the switch puts the previous release back.
dg_undo_switch() {
  [[ $(dg_current) == "$DG_RELEASE" ]] || return 0
  (dg_rollback_to "${previous-}") || true
}
# dg_rollback_to ID: after a failed switch to DG_RELEASE, makes ID live again and exits 1.
dg_rollback_to() {
  touch -- "$DG_RELEASE_DIR/.deploygen-release/failed"
  DG_CLEANUPS=(dg_unlock)
  if [[ -z $1 ]]; then
    rm -f -- "$DG_STATE/current"
    dg_pm2 delete "$DG_NAMESPACE" >/dev/null 2>&1 || true
    dg_die "release $DG_RELEASE failed and there is no earlier release: $DG_NAMESPACE is stopped" "fix the app (its log is above), then deploy again"
  fi
  dg_section "Rolling back to release $1"
  dg_switch "$1"
  # After an interruption no app has failed: every app is reloaded back.
  [[ -z ${DG_FAILED_APP-} ]] || dg_pm2 delete "${DG_PM2_NAME[$DG_FAILED_APP]}" >/dev/null 2>&1 || true
  dg_snapshot
  local why=${DG_FAILED_WHY:-the deploy was interrupted}
  dg_apply "$(dg_ecosystem)" || { dg_failure_report; dg_die "release $DG_RELEASE was rolled back, but release $1 does not come up either: $DG_NAMESPACE is DOWN" "read the logs above; deploy a fixed release, or rollback-$DG_ENV.sh ID to an older one"; }
  dg_die "release $DG_RELEASE was rolled back ($why); release $1 is serving" "fix the app (its log is above), then deploy again"
}

dg_list() {
  local id current marker
  current=$(dg_current || true)
  while IFS= read -r id; do
    marker='  '
    [[ $id == "$current" ]] && marker='* '
    [[ -e $DG_STATE/releases/$id/.deploygen-release/failed ]] && id+=' (failed, rolled back)'
    printf '%s%s\n' "$marker" "$id"
  done < <(dg_releases)
  [[ -n $current ]] || printf 'no release is live\n'
}

dg_dry_run() {
  ((DG_PRINT_VALUES == 1)) || dg_section "Dry run: $DG_PROJECT ($DG_ENV); nothing is changed"
  dg_show root "$ROOT"
  dg_show pm2_home "$PM2_HOME"
  dg_show ecosystem "$(dg_ecosystem)"
  dg_show namespace "$DG_NAMESPACE"
  [[ -z $DG_ENV_FILE ]] || dg_show env_file "$ROOT/$DG_ENV_FILE"
  [[ -z $DG_EXAMPLE_FILE ]] || dg_show example_file "$ROOT/$DG_EXAMPLE_FILE"
  local app key
  for key in "${DG_REQUIRED_ENV[@]}"; do dg_show required_env "$key"; done
  for app in "${DG_APPS[@]}"; do
    dg_show app "${DG_PM2_NAME[$app]}"
    dg_show '  cwd' "$ROOT/${DG_CWD[$app]}"
    [[ -z ${DG_PORT[$app]-} ]] || dg_show '  port' "${DG_PORT[$app]}"
    while IFS= read -r key; do dg_show '  verify_file' "$ROOT/${DG_CWD[$app]}/$key"; done < <(dg_paths "${DG_VERIFY_FILES[$app]-}")
    [[ -z ${DG_HEALTH_URL[$app]-} ]] || dg_show '  health' "${DG_HEALTH_URL[$app]} (timeout ${DG_HEALTH_TIMEOUT[$app]}s)"
    dg_show '  error_log' "$DG_LOGS/${DG_PM2_NAME[$app]}.err.log"
  done
  ((DG_PRINT_VALUES == 0)) || return 0
  local previous='' base=$ROOT
  DG_NODE_VERSION=$(node --version 2>/dev/null || true) DG_STEPS=$DG_STATE/steps
  if ((DG_RELEASES_KEEP > 0)); then
    previous=$(dg_current || true)
    if dg_unchanged_since "$previous" "$(dg_source_hash)"; then
      printf 'plan\twould make no release: the checkout is unchanged since release %s\n' "$previous"
      printf 'then\treload %s, watch for crash loops and wait for health\n' "$DG_NAMESPACE"
      return 0
    else
      printf 'plan\twould copy the checkout into a new release (live now: %s), keep %s releases\n' "${previous:-none}" "$DG_RELEASES_KEEP"
    fi
    base=${previous:+$DG_STATE/releases/$previous}
    base=${base:-$ROOT}
  fi
  local verb=skip
  [[ -z $previous ]] || verb="reuse from $previous the"
  for app in "${DG_APPS[@]}"; do
    for key in install build; do
      declare -F "dg_${key}_${app//-/_}" >/dev/null || continue
      # The reasons dg_step gives: --force runs everything, "skip" in place, "reuse" in a release.
      if ((DG_FORCE == 1)); then
        printf 'plan\twould run %s %s (--force)\n' "$key" "$app"
      elif [[ ! -f $DG_STATE/steps/$app.$key ]]; then
        printf 'plan\twould run %s %s (no earlier success recorded)\n' "$key" "$app"
      elif [[ $(dg_hash "$ROOT/${DG_CWD[$app]}" "$key" "$app") == "$(<"$DG_STATE/steps/$app.$key")" ]]; then
        printf 'plan\twould %s %s %s: inputs unchanged\n' "$verb" "$key" "$app"
      else
        printf 'plan\twould run %s %s (inputs changed)\n' "$key" "$app"
      fi
    done
  done
  printf 'then\tswitch, start or reload %s, watch for crash loops and wait for health\n' "$DG_NAMESPACE"
}

# dg_start: brings the live version up (through systemctl where the unit is installed) and waits.
dg_start() {
  dg_setup start
  dg_options "[--no-wait] [--direct]" "--no-wait --direct" "$@"
  if ((DG_DIRECT == 0)) && dg_unit_installed; then
    dg_check_units
    dg_section "Starting $DG_NAMESPACE through systemd"
    # An active unit (RemainAfterExit=) ignores "start": its ExecReload starts what is not running.
    dg_systemctl reload-or-restart -- "$(dg_unit_instance)"
    dg_ok "started $(dg_unit_instance)"
    return 0
  fi
  DG_DELEGATED=$(sed -n 's/^pid \([0-9]*\) delegated$/\1/p' "$DG_STATE/lock.info" 2>/dev/null | tail -n 1 || true)
  dg_lock
  dg_preflight
  if ((DG_RELEASES_KEEP > 0)) && ! dg_current >/dev/null; then
    dg_pm2 ping >/dev/null
    dg_ok "no release is deployed yet: PM2's daemon is up; run ${DG_SCRIPTS[deploy]}"
    return 0
  fi
  dg_section "Starting $DG_NAMESPACE in $ROOT"
  dg_apply "$(dg_ecosystem)" || { dg_failure_report; dg_die "$DG_NAMESPACE did not start: ${DG_PM2_NAME[$DG_FAILED_APP]} fails" "read its log above; fix it and deploy again (with releases: ${DG_SCRIPTS[rollback]-rollback} to an earlier one)"; }
  dg_section "Started $DG_NAMESPACE"
}

dg_stop() {
  dg_setup stop
  dg_options "[--no-wait] [--direct]" "--no-wait --direct" "$@"
  if ((DG_DIRECT == 0)) && dg_unit_installed; then
    dg_section "Stopping $DG_NAMESPACE through systemd"
    dg_systemctl stop -- "$(dg_unit_instance)"
    dg_ok "stopped $(dg_unit_instance)"
    return 0
  fi
  # `systemctl restart` from a deploy or rollback that holds the lock runs this first (ExecStop).
  DG_DELEGATED=$(sed -n 's/^pid \([0-9]*\) delegated$/\1/p' "$DG_STATE/lock.info" 2>/dev/null | tail -n 1 || true)
  dg_lock
  dg_tools
  [[ -z ${SERVICE_RESULT-} ]] || DG_CLEANUPS+=(dg_stop_idle_daemon)
  dg_snapshot
  [[ -n $DG_PROCESSES ]] || { dg_ok "PM2 is not running (PM2_HOME=$PM2_HOME): nothing to stop"; return 0; }
  dg_section "Stopping $DG_NAMESPACE (each app gets its kill_timeout to finish)"
  local name
  while IFS= read -r name; do
    dg_pm2 stop "$name" >/dev/null
    dg_ok "stopped $name"
  done < <(dg_processes_of ns "$DG_NAMESPACE" | awk -F '\t' '$3 != "stopped" { print $1 }' | sort -u)
}

# As the unit's ExecStop (systemd sets SERVICE_RESULT), the unit owns PM2's daemon: once this
# namespace is stopped, a daemon that runs no other namespace's apps is stopped too, leaving the
# unit's cgroup empty; one shared with other projects (the default ~/.pm2) keeps running for them.
dg_stop_idle_daemon() {
  dg_snapshot
  [[ -n $DG_PROCESSES ]] || { dg_daemon_pid >/dev/null || return 0; }
  if [[ -n $(awk -F '\t' -v ns="$DG_NAMESPACE" '$2 != ns' <<<"$DG_PROCESSES") ]]; then
    dg_info "PM2's daemon (PM2_HOME=$PM2_HOME) runs other namespaces' apps too: it keeps running"
    return 0
  fi
  dg_pm2 kill >/dev/null && dg_ok "stopped PM2's daemon (PM2_HOME=$PM2_HOME): it ran nothing else"
}

dg_rollback() {
  dg_setup rollback
  dg_options "[--no-wait] [--direct] [RELEASE | COMMIT]" "--no-wait --direct" "$@"
  ((DG_RELEASES_KEEP > 0)) || dg_die "$DG_ENV deploys in place: there are no releases to roll back to" "set releases: { keep: 5 } for $DG_ENV in the manifest and regenerate"
  dg_lock
  dg_preflight
  local target=${DG_ARGS[0]-} from
  from=$(dg_current || true)
  target=${target:-$(dg_previous || true)}
  [[ -z $target || -d $DG_STATE/releases/$target || ! $target =~ ^[0-9a-f]{4,40}$ ]] || target=$(dg_release_of_commit "$target" || echo "$target")
  [[ -n $target && -d $DG_STATE/releases/$target ]] || dg_die "no release ${target:-before $from} to roll back to" "list them with ${DG_SCRIPTS[deploy]} --list"
  [[ $target != "$from" ]] || { dg_ok "release $target is already serving: nothing to do"; return 0; }
  dg_section "Rolling back $DG_NAMESPACE from ${from:-none} to $target"
  dg_daemon_under_unit
  dg_switch "$target"
  dg_apply "$(dg_ecosystem)" || { dg_failure_report; dg_switch "$from"; dg_apply "$(dg_ecosystem)" || true; dg_die "release $target does not come up; ${from:-nothing} is live again" "pick another release (${DG_SCRIPTS[deploy]} --list)"; }
  dg_section "Release $target is serving (was ${from:-none})"
}

# ----- health check (the timer's job) ---------------------------------------------------------
# Alerts once when an app goes down and once when it recovers (state in .deploygen/<env>/health).
dg_alert() {
  local app=$1 event=$2 detail=$3 state=$DG_STATE/health/$1 url
  [[ $(cat -- "$state" 2>/dev/null || echo up) != "$event" ]] || return 0
  mkdir -p -- "$DG_STATE/health" && printf '%s\n' "$event" >"$state"
  [[ -n $DG_ALERT_WEBHOOK_ENV ]] || return 0
  url=$(dg_helper env-values "$ROOT/$DG_ENV_FILE" "$DG_ALERT_WEBHOOK_ENV" 2>/dev/null | tr -d '\0') && url=${url#*=}
  [[ -n $url ]] || { dg_warn "$DG_ALERT_WEBHOOK_ENV is not set in $DG_ENV_FILE: no alert sent"; return 0; }
  local why
  # A webhook that fails is said in the journal, and the state goes back so the next run sends again.
  why=$(dg_helper alert "$url" "$DG_PROJECT" "$DG_ENV" "$app" "$event" "$detail" 2>&1) && return 0
  dg_warn "the $event alert for $app could not be sent (${why#*$'\t'}); the next check tries again"
  if [[ $event == up ]]; then printf 'down\n' >"$state"; else printf 'up\n' >"$state"; fi
}
dg_health_check() {
  dg_setup health-check
  dg_options "[--direct]" "--direct" "$@"
  if dg_unit_installed && ! systemctl is-active --quiet -- "$(dg_unit_instance)"; then dg_ok "$(dg_unit_instance) is stopped: nothing to check"; return 0; fi
  dg_lock --skip || { dg_ok "a deploy, start or stop of $DG_NAMESPACE is running: not checking now"; return 0; }
  dg_tools
  dg_check_units
  dg_section "Health of $DG_NAMESPACE"
  local app failed=0
  if ! dg_daemon_pid >/dev/null; then
    dg_warn "PM2 is not running (PM2_HOME=$PM2_HOME): starting $DG_NAMESPACE and giving its apps their start-up time"
    dg_alert "$DG_NAMESPACE" down "PM2 daemon not running; starting the namespace"
    dg_snapshot
    if dg_apply "$(dg_ecosystem)"; then dg_alert "$DG_NAMESPACE" up "started again"; else dg_failure_report; failed=1; fi
  fi
  dg_snapshot
  for app in "${DG_APPS[@]}"; do
    local name=${DG_PM2_NAME[$app]} status
    status=$(dg_processes_of name "$name" | awk -F '\t' 'NR == 1 { print $3 }')
    if [[ $status == online ]] && { [[ -z ${DG_HEALTH_URL[$app]-} ]] || dg_probe "${DG_HEALTH_URL[$app]}"; }; then
      dg_ok "$name is healthy"
      dg_alert "$app" up "healthy again"
      continue
    fi
    if [[ $status == online ]]; then dg_warn "$name does not answer ${DG_HEALTH_URL[$app]}: restarting $name only"; else dg_warn "$name is ${status:-missing from PM2}: restarting $name only"; fi
    dg_alert "$app" down "${status:-missing}; no answer from ${DG_HEALTH_URL[$app]:-its process}; restarting"
    if [[ -n $status ]]; then dg_pm2 restart "$name" >/dev/null; else dg_pm2 start "$(dg_ecosystem)" --only "$name" >/dev/null; fi
    local DG_APPS=("$app")
    if dg_watch; then dg_alert "$app" up "answers again after a restart"; else dg_failure_report; failed=1; fi
  done
  ((failed == 0)) || dg_die "some apps of $DG_NAMESPACE are unhealthy (see above)" "read the app logs in $DG_LOGS, fix the app, then deploy again"
  dg_section "All apps of $DG_NAMESPACE are healthy"
}

# ----- installing the units -------------------------------------------------------------------
# dg_install_logrotate DEST: the generated rotation with this root in place of its placeholder
# (quoted: "&" in the root stays literal), owned by the installer, mode 0644.
dg_install_logrotate() {
  local text
  text=$(<"$DG_SCRIPT_DIR/$DG_LOGROTATE") && text=${text//@@DEPLOYGEN_ROOT@@/"$ROOT"} && printf '%s\n' "$text" >"$DG_TMP/logrotate"
  mkdir -p -- "${1%/*}"
  if cmp -s -- "$DG_TMP/logrotate" "$1"; then dg_ok "unchanged $1"; else install -m 0644 -- "$DG_TMP/logrotate" "$1" && dg_ok "installed $1"; fi
}
dg_install_systemd() {
  dg_setup install-systemd
  DG_NO_TIMER=0 DG_ROOT_DIR=0
  dg_options "[--root-dir DIR] [--no-timer]" "--no-timer --root-dir" "$@"
  local target=/ units file enable=() unit timer
  if ((DG_ROOT_DIR == 1)); then target=${DG_ARGS[0]:?--root-dir needs a folder}; fi
  dg_need systemd-escape "this host has no systemd; run the apps with ${DG_SCRIPTS[start]} instead"
  if [[ $target == / ]]; then
    ((EUID == 0)) || dg_die "installing a system unit needs root" "run: sudo $0"
    getent passwd "$DG_USER" >/dev/null || dg_die "the service user $DG_USER does not exist" "create it (sudo useradd --system --create-home $DG_USER) or set environments.$DG_ENV.systemd.user in the manifest and regenerate"
    case $ROOT/ in
      /tmp/* | /var/tmp/*) dg_die "the project root $ROOT is under ${ROOT%%/tmp/*}/tmp, which the unit's PrivateTmp=yes hides from the apps" "move the checkout (for example to /srv/$DG_PROJECT) and run this again" ;;
      /usr/* | /boot/* | /efi/* | /etc/*) dg_die "the project root $ROOT is read-only for the unit (ProtectSystem=full)" "move the checkout (for example to /srv/$DG_PROJECT) and run this again" ;;
    esac
    runuser -u "$DG_USER" -- test -r "$DG_SCRIPT_DIR/${DG_SCRIPTS[start]}" -a -x "$ROOT" -a -w "$ROOT" 2>/dev/null ||
      dg_die "the service user $DG_USER cannot read and write $ROOT" "sudo chown -R $DG_USER $ROOT (or give $DG_USER access to every folder above it)"
  fi
  case $ROOT in *$'\n'*) dg_die "the project root contains a line break" "move the project to a folder without one" ;; esac
  case $ROOT in *'"'* | *\\* | *'*'* | *'?'* | *'['* | *$'\r'*) dg_die "the project root $ROOT contains a character logrotate's paths cannot carry (\" \\ * ? [)" "move the checkout (for example to /srv/$DG_PROJECT) and run this again" ;; esac
  units=${target%/}/etc/systemd/system
  unit=$(dg_unit_instance) timer=$(dg_unit_instance "$DG_UNIT_PREFIX-health" timer)
  ((${#timer} <= 255)) || dg_die "the unit name $timer is longer than systemd's limit of 255 characters" "move the project to a shorter path"
  dg_section "Installing $unit for namespace $DG_NAMESPACE in $ROOT"
  mkdir -p -- "$units"
  for file in "${DG_UNIT_FILES[@]}"; do
    if cmp -s -- "$DG_SCRIPT_DIR/$file" "$units/${file##*/}"; then dg_ok "unchanged $units/${file##*/}"; else install -m 0644 -- "$DG_SCRIPT_DIR/$file" "$units/${file##*/}" && dg_ok "installed $units/${file##*/}"; fi
  done
  dg_install_logrotate "${target%/}/etc/logrotate.d/$DG_PROJECT-$DG_ENV"
  enable=("$unit")
  ((DG_NO_TIMER == 1)) || enable+=("$timer")
  if [[ $target == / && -d /run/systemd/system ]]; then
    systemctl daemon-reload
    systemctl enable -- "${enable[@]}"
    ((DG_NO_TIMER == 1)) || systemctl start -- "$timer"
  else
    systemctl --root="$target" enable -- "${enable[@]}"
  fi
  dg_ok "enabled ${enable[*]}"
  dg_section "Next: sudo systemctl start $unit (deploy, start and stop now go through systemctl; grant $DG_USER that right as docs/runbook.md shows)"
}
