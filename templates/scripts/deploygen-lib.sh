# What the generated scripts do, for any project; config-<env>.sh (one environment's data) sources it.
DG_SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# Colours only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb.
DG_RED='' DG_GREEN='' DG_YELLOW='' DG_BLUE='' DG_BOLD='' DG_RESET=''
[[ ! -t 1 || ! -t 2 || -n ${NO_COLOR-} || ${TERM-} == dumb ]] ||
  DG_RED=$'\033[0;31m' DG_GREEN=$'\033[0;32m' DG_YELLOW=$'\033[0;33m' DG_BLUE=$'\033[0;34m' DG_BOLD=$'\033[1m' DG_RESET=$'\033[0m'
dg_section() { printf '%s==> %s%s\n' "$DG_BOLD$DG_BLUE" "$1" "$DG_RESET"; }
dg_info() { printf '    %s\n' "$1"; }
dg_ok() { printf '    %sok%s %s\n' "$DG_GREEN" "$DG_RESET" "$1"; }
dg_warn() { printf '%swarning:%s %s\n' "$DG_YELLOW" "$DG_RESET" "$1" >&2; }
dg_error() { printf '%serror:%s %s\n' "$DG_RED" "$DG_RESET" "$1" >&2; }
dg_fix() { printf '%sfix:%s %s\n' "$DG_BOLD" "$DG_RESET" "$1" >&2; }
dg_die() { dg_error "$1"; [[ -z ${2-} ]] || dg_fix "$2"; exit 1; }
trap 'dg_error "${BASH_SOURCE[0]##*/} failed at line $LINENO (exit $?)"' ERR
# A dry run's "KEY<TAB>VALUE" line; with --print-values a NUL-terminated, byte-exact KEY=VALUE record.
dg_show() { if ((DG_PRINT_VALUES == 1)); then printf '%s=%s\0' "${1#"${1%%[! ]*}"}" "$2"; else printf '%s\t%s\n' "$1" "$2"; fi; }
dg_elapsed_since() { local tenths=$(((${EPOCHREALTIME/[.,]/} - ${1/[.,]/}) / 100000)); printf '%d.%ds' $((tenths / 10)) $((tenths % 10)); }
dg_need() { command -v "$1" >/dev/null 2>&1 || dg_die "$1 is not installed (or not on PATH: $PATH)" "$2"; }
dg_paths() { [[ -z $1 ]] || printf '%s\n' "$1"; } # the lines of one of the config's newline-separated lists
# The root: the scripts' location unless <P>_ROOT says otherwise. PM2_HOME: the environment's, else the manifest's, else ~/.pm2.
dg_setup() {
  DG_COMMAND=$1 DG_DIRECT=0 DG_NO_WAIT=0 DG_FORCE=0 DG_DRY_RUN=0 DG_PRINT_VALUES=0 DG_TAKEOVER=0 DG_CLEANUPS=()
  ROOT=${!DG_ROOT_VAR:-$(cd -- "$DG_SCRIPT_DIR/$DG_ROOT_FROM_SCRIPTS" && pwd -P)}
  export "$DG_ROOT_VAR=$ROOT"
  DG_STATE=$ROOT/.deploygen/$DG_ENV DG_LOGS=$ROOT/logs DG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/deploygen.XXXXXX")
  trap dg_on_exit EXIT && trap 'dg_interrupted INT' INT && trap 'dg_interrupted TERM' TERM && trap 'dg_interrupted HUP' HUP
  exec {DG_OUT}>&1 {DG_ERR}>&2 # a signal may come while a function's output is redirected: the clean-up speaks here
  case ${PM2_HOME:+set}$DG_PM2_HOME_KIND in
    project) PM2_HOME=$ROOT/$DG_PM2_HOME ;; absolute) PM2_HOME=$DG_PM2_HOME ;;
    default) PM2_HOME=$(getent passwd "$DG_USER" | cut -d: -f6 || true) && PM2_HOME=${PM2_HOME:-${HOME:?HOME is not set}}/.pm2 ;;
  esac
  export PM2_HOME
  ! command -v node >/dev/null 2>&1 || dg_helper_start # it starts up while bash goes on
  local me; me=$(id -un 2>/dev/null || echo '?')
  [[ $me == "$DG_USER" || $me == root ]] || ! getent passwd "$DG_USER" >/dev/null 2>&1 ||
    dg_warn "running as $me, but the service user is $DG_USER; run as $DG_USER (sudo -u $DG_USER ...) so everyone talks to one PM2 daemon"
}
# dg_options USAGE ALLOWED ARG...: DG_<OPTION>=1 for each allowed --option; DG_ARGS: the rest.
dg_options() {
  local usage=$1 allowed=" $2 --help " arg name
  shift 2 && DG_ARGS=()
  for arg in "$@"; do
    case $arg in
      -h | --help) printf 'Usage: %s %s\n' "${0##*/}" "$usage" && exit 0 ;;
      --print-values) DG_DRY_RUN=1 DG_PRINT_VALUES=1 ;;
      --*) [[ $allowed == *" $arg "* ]] || dg_die "unknown option: $arg" "run ${0##*/} --help"
        name=${arg#--} && name=${name//-/_} && printf -v "DG_${name^^}" 1 ;;
      *) DG_ARGS+=("$arg") ;;
    esac
  done
}
dg_on_exit() {
  local rc=$? i jobs; trap - ERR INT TERM HUP; exec 1>&"${DG_OUT:-1}" 2>&"${DG_ERR:-2}"
  for ((i = ${#DG_CLEANUPS[@]} - 1; i >= 0; i--)); do "${DG_CLEANUPS[i]}" || true; done
  [[ -z ${DG_HELPER_PID-} ]] || { kill "$DG_HELPER_PID" && wait "$DG_HELPER_PID"; } 2>/dev/null || true # gone before the run ends
  mapfile -t jobs < <(jobs -p); ((${#jobs[@]} == 0)) || kill -- "${jobs[@]}" 2>/dev/null || true
  rm -rf -- "$DG_TMP"; exit "$rc"
}
dg_interrupted() { trap - INT TERM HUP; dg_warn "interrupted by SIG$1: undoing what this run started"; exit 130; }
# In a subshell: a daemon started from there must keep neither the run's lock nor the helper's pipes.
dg_close_fds() { local fd; for fd in ${DG_LOCK_FD-} ${DG_HELPER_IN-} ${DG_HELPER_OUT-} ${DG_OUT-} ${DG_ERR-}; do exec {fd}>&-; done; }
# One deploy, start, stop or rollback per environment and checkout at a time; waits DG_LOCK_WAIT seconds.
dg_lock() {
  [[ -d $DG_STATE ]] || mkdir -p -- "$DG_STATE" 2>/dev/null || dg_die "cannot create $DG_STATE" "make $ROOT writable by $(id -un) (the service user is $DG_USER)"
  exec {DG_LOCK_FD}>>"$DG_STATE/lock"
  if ! flock -n "$DG_LOCK_FD"; then
    local holder wait=${DG_LOCK_WAIT:-300}; holder=$(cat -- "$DG_STATE/lock.info" 2>/dev/null || echo 'unknown')
    ((DG_NO_WAIT == 0)) || wait=0; [[ ${1-} != --skip ]] || return 1
    # `systemctl restart` from a deploy that holds the lock runs stop and start under it.
    [[ -z ${DG_DELEGATED-} || $holder != "pid $DG_DELEGATED "* ]] || return 0
    dg_info "another run holds the lock of $DG_NAMESPACE: $holder; waiting up to ${wait}s"
    flock -w "$wait" "$DG_LOCK_FD" || dg_die "another run still holds the lock of $DG_NAMESPACE: $holder" "wait for it to finish (or stop it), then run again"
  fi
  printf 'pid %s (%s %s) since %s\n' "$$" "${0##*/}" "$DG_COMMAND" "$(date '+%F %T')" >"$DG_STATE/lock.info"
  DG_CLEANUPS+=(dg_unlock)
}
dg_unlock() { rm -f -- "$DG_STATE/lock.info"; }
dg_delegated() { DG_DELEGATED=$(sed -n 's/^pid \([0-9]*\) delegated$/\1/p' "$DG_STATE/lock.info" 2>/dev/null | tail -n 1 || true); }
dg_tools() {
  dg_need curl "install curl (apt-get install curl): the health checks use it"
  dg_need flock "install util-linux (flock)"
  DG_PM2=${PM2_BIN:-$(command -v pm2 || true)}
  [[ -n $DG_PM2 || ! -x $ROOT/node_modules/.bin/pm2 ]] || DG_PM2=$ROOT/node_modules/.bin/pm2
  [[ -n $DG_PM2 ]] || dg_die "pm2 is not installed (not on PATH, not in $ROOT/node_modules/.bin)" "install it for the service user: npm install -g pm2 (or set PM2_BIN to its path)"
  dg_helper_start
}
# The Node helper runs once per run, as a coprocess: output in helper.out and .err, the status on the pipe.
dg_helper_start() {
  [[ -z ${DG_HELPER_OUT-} ]] || return 0
  dg_need node "install Node.js 20.12 or later for the service user"
  # In a session of its own, so that a signal to the run's process group leaves it to answer the clean-up.
  coproc DG_HELPER_PROC { dg_close_fds; exec setsid node "$DG_SCRIPT_DIR/deploygen-helper.cjs" serve "$DG_TMP/helper.out" "$DG_TMP/helper.err"; }
  exec {DG_HELPER_IN}<&"${DG_HELPER_PROC[0]}" {DG_HELPER_OUT}>&"${DG_HELPER_PROC[1]}"; DG_HELPER_PID=$DG_HELPER_PROC_PID
}
# The write is in a subshell: a helper that died would end this shell with SIGPIPE.
dg_ask() {
  local status; [[ -n ${DG_HELPER_OUT-} ]] || dg_helper_start
  { (printf '%s\0' "$#" "$PWD" "$@" >&"$DG_HELPER_OUT") && read -r status <&"$DG_HELPER_IN"; } 2>/dev/null ||
    dg_die "the Node helper deploygen-helper.cjs stopped unexpectedly" "run again; if it happens again, check that \`node $DG_SCRIPT_DIR/deploygen-helper.cjs\` runs"
  [[ ! -s $DG_TMP/helper.out ]] || cat -- "$DG_TMP/helper.out"; return "$status"
}
dg_helper() { local status=0; dg_ask "$@" || status=$?; [[ ! -s $DG_TMP/helper.err ]] || cat -- "$DG_TMP/helper.err" >&2; return "$status"; }
# dg_helper_checked COMMAND ARG...: the helper's "error|warning|fix<TAB>text" lines as ours; exits when it fails.
dg_helper_checked() {
  local status=0; dg_ask "$@" || status=$?
  sed -e "s/^warning\t/${DG_YELLOW}warning:$DG_RESET /" -e "s/^error\t/${DG_RED}error:$DG_RESET /" -e "s/^fix\t/${DG_BOLD}fix:$DG_RESET /" -- "$DG_TMP/helper.err" >&2
  ((status == 0)) || { [[ -s $DG_TMP/helper.err ]] || dg_error "node deploygen-helper.cjs $1 failed (exit $status)"; exit 1; }
}
# Every PM2 call has a deadline; one that may spawn the daemon holds a lock, so that two runs never spawn two.
dg_pm2() {
  local deadline=${DG_PM2_TIMEOUT:-$((DG_MAX_HEALTH_TIMEOUT + 60))}
  if dg_daemon_pid >/dev/null; then (dg_close_fds; timeout -k 5 "$deadline" "$DG_PM2" "$@"); return; fi
  mkdir -p -- "$PM2_HOME" && (dg_close_fds; flock -o -w "$deadline" "$PM2_HOME/deploygen-spawn.lock" timeout -k 5 "$deadline" "$DG_PM2" "$@")
}
# PM2 writes its pid files without a final newline: read fails but sets pid.
dg_pid_in() { local pid=''; { { read -r pid <"$1" || [[ -n $pid ]]; } && [[ $pid =~ ^[0-9]+$ ]]; } 2>/dev/null && printf '%s\n' "$pid"; }
dg_daemon_pid() { local pid; pid=$(dg_pid_in "$PM2_HOME/pm2.pid") && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"; }
# PM2's process list (never starting a daemon), a line per process: name, namespace, status, pid, exec_mode, cwd.
dg_snapshot() {
  : >"$DG_TMP/jlist" && DG_PROCESSES=''
  ! dg_daemon_pid >/dev/null || DG_PROCESSES=$(dg_helper_checked pm2-list "$DG_TMP/jlist" "$DG_PM2") || exit 1
}
dg_processes_of() { awk -F '\t' -v "$1=$2" '($1 == name || name == "") && ($2 == ns || ns == "")' <<<"$DG_PROCESSES"; }
dg_preflight() {
  dg_section "Pre-flight: $DG_PROJECT ($DG_ENV) in $ROOT"
  dg_tools
  DG_NODE_VERSION=$(dg_helper node-version)
  dg_ok "tools: node $DG_NODE_VERSION, pm2 at $DG_PM2, PM2_HOME=$PM2_HOME"
  [[ -z $DG_ENV_FILE ]] || { dg_helper_checked env-check "$ROOT/$DG_ENV_FILE" "${DG_EXAMPLE_FILE:+$ROOT/$DG_EXAMPLE_FILE}" "${DG_REQUIRED_ENV[@]}"
    dg_ok "env file $DG_ENV_FILE sets every required key"; }
  local dir free app name cwd
  for dir in "$DG_LOGS" "$DG_STATE"; do
    [[ -d $dir && -w $dir ]] || { mkdir -p -- "$dir" 2>/dev/null && [[ -w $dir ]]; } || dg_die "$dir is not writable by $(id -un)" "sudo chown -R $DG_USER $dir (the apps' logs and the deploy's state live there)"
  done
  free=$(df -Pk -- "$DG_STATE" | awk 'NR == 2 { print int($4 / 1024) }')
  ((free >= DG_MIN_FREE_MB)) || dg_die "only ${free} MB free on the disk of $DG_STATE (at least $DG_MIN_FREE_MB MB needed)" "free disk space (old logs in $DG_LOGS, old releases), or lower minFreeDiskMB in the manifest"
  dg_ok "writable logs and state folders, ${free} MB free"
  dg_snapshot
  # Apps that run from another checkout are not ours to replace (from a folder that is gone, they are).
  while IFS=$'\t' read -r name _ _ _ _ cwd; do
    [[ -z $name || -z ${DG_APP_OF_PM2[$name]-} || $cwd == "$ROOT" || $cwd == "$ROOT"/* || ! -e $cwd ]] && continue
    ((DG_TAKEOVER == 1)) && dg_warn "$name runs from $cwd: taking it over (--takeover)" && continue
    dg_die "$name already runs from another checkout: $cwd" "stop it there (its stop script), or pass --takeover to replace it with this checkout's"
  done < <(dg_processes_of ns "$DG_NAMESPACE")
  for app in "${DG_APPS[@]}"; do [[ -z ${DG_PORT[$app]-} ]] || dg_check_port "$app"; done
  dg_check_units
}
dg_check_port() {
  local app=$1 port=${DG_PORT[$1]} ours=() pid command
  mapfile -t ours < <(dg_processes_of name "${DG_PM2_NAME[$app]}" | awk -F '\t' '$3 == "online" { print $4 }')
  while IFS=$'\t' read -r pid command; do
    [[ $pid == '?' ]] && command='an unidentified process' || command="PID $pid ($command)"
    dg_die "port $port (for $app) is already in use by $command" "stop that process, or give $app another port in the manifest and regenerate"
  done < <(dg_helper port-owners "$port" "${ours[@]}" "$(dg_daemon_pid || true)")
  dg_ok "port $port is free or held by $app itself"
}
dg_unit_instance() { printf '%s@%s.%s' "${1:-$DG_UNIT_PREFIX}" "$(systemd-escape --path -- "$ROOT")" "${2:-service}"; }
dg_unit_installed() {
  command -v systemctl >/dev/null 2>&1 && command -v systemd-escape >/dev/null 2>&1 && [[ -d /run/systemd/system ]] &&
    [[ -f /etc/systemd/system/${DG_UNIT_FILES[0]##*/} ]] && systemctl is-enabled --quiet -- "$(dg_unit_instance)" 2>/dev/null
}
dg_via_unit() { ((DG_DIRECT == 0)) && dg_unit_installed; } # start, stop and deploy go through systemctl there
dg_systemctl() { if ((EUID == 0)); then systemctl "$@"; else sudo -n systemctl "$@"; fi; }
# Installed units are old copies after a regenerate, until install-systemd runs again.
dg_check_units() {
  local file installed stale=0; [[ -f /etc/systemd/system/${DG_UNIT_FILES[0]##*/} ]] || return 0
  for file in "${DG_UNIT_FILES[@]}"; do
    installed=/etc/systemd/system/${file##*/}; ! cmp -s -- "$DG_SCRIPT_DIR/$file" "$installed" || continue
    stale=1 && dg_warn "the installed $installed differs from the generated $file:"
    diff -u -- "$installed" "$DG_SCRIPT_DIR/$file" | sed -n '3,$p' | head -20 >&2 || true
  done
  ((stale == 0)) || dg_warn "apply it: sudo $DG_SCRIPT_DIR/${DG_SCRIPTS[install-systemd]}"
}
# With the unit installed, PM2's daemon must live in its cgroup (not in an SSH session that ends).
dg_in_unit() { local pid; pid=$(dg_daemon_pid) && grep -qsF -- "$(dg_unit_instance)" "/proc/$pid/cgroup"; }
dg_outside_unit() { dg_via_unit && ! dg_in_unit; }
dg_daemon_under_unit() {
  dg_outside_unit || return 0
  local unit; unit=$(dg_unit_instance)
  dg_info "PM2's daemon does not run under $unit: restarting the unit first"
  printf 'pid %s delegated\n' "$$" >>"$DG_STATE/lock.info"
  dg_systemctl restart -- "$unit" || dg_die "systemctl restart $unit failed" "journalctl -u '$unit' -n 50 shows why"
  dg_snapshot
  dg_in_unit || ! dg_daemon_pid >/dev/null ||
    dg_warn "PM2's daemon (PM2_HOME=$PM2_HOME) runs other projects' apps, so it stays where it was started, outside $unit; give $DG_ENV a pm2Home of its own in the manifest for the unit to own its daemon"
}
# Releases: immutable copies of the checkout; the relative symlink "current", switched atomically, is the live one.
dg_current() { local target; target=$(readlink -- "$DG_STATE/current" 2>/dev/null) && printf '%s\n' "${target##*/}"; }
dg_releases() { find "$DG_STATE/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | LC_ALL=C sort; }
dg_failed() { [[ -e $DG_STATE/releases/$1/.deploygen-release/failed ]]; }
dg_good_releases() { local id; while IFS= read -r id; do dg_failed "$id" || printf '%s\n' "$id"; done < <(dg_releases); }
dg_switch() { ln -sfn -- "releases/$1" "$DG_STATE/current.new" && mv -fT -- "$DG_STATE/current.new" "$DG_STATE/current"; }
dg_previous() { local current; current=$(dg_current) && dg_good_releases | LC_ALL=C awk -v c="$current" '$0 < c' | tail -n 1 | grep .; }
# dg_release_of_commit COMMIT: the newest good release of a git commit (ids end in -<commit10>).
dg_release_of_commit() { local c=${1:0:10}; dg_good_releases | grep -E -- "-${c}[0-9a-f]{$((10 - ${#c}))}\$" | tail -n 1 | grep .; }
# The files a release copies (git's, not ignored; never dependencies, outputs, env files) into $DG_TMP/files; their hash.
dg_source_hash() { dg_helper source-hash "$ROOT" "$DG_TMP/files" "$(printf '%s\n' "${DG_EXCLUDE[@]}")"; }
# dg_new_release LIVE: a copy of the source (removed if the run fails before it goes live); none if LIVE's is the same.
dg_new_release() {
  local commit stamp n=1 hash path; hash=$(dg_source_hash)
  ((DG_FORCE == 1)) || ! dg_unchanged_since "$1" "$hash" || { dg_ok "the checkout is unchanged since release $1"; return 1; }
  commit=$(git -C "$ROOT" rev-parse --short=10 HEAD 2>/dev/null || true)
  [[ -z $commit ]] || git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
  stamp=$(date -u '+%Y%m%d-%H%M%S') && DG_RELEASE=$stamp${commit:+-$commit}
  while [[ -e $DG_STATE/releases/$DG_RELEASE ]]; do DG_RELEASE=$stamp-$((++n))${commit:+-$commit}; done
  DG_RELEASE_DIR=$DG_STATE/releases/$DG_RELEASE
  mkdir -p -- "$DG_RELEASE_DIR/.deploygen-release"; DG_CLEANUPS+=(dg_discard_release)
  tar -C "$ROOT" --null --no-recursion -T "$DG_TMP/files" -cf - | tar -C "$DG_RELEASE_DIR" -xf - ||
    dg_die "copying the project into $DG_RELEASE_DIR failed (see above)" "free disk space or fix the permissions named above, then deploy again"
  for path in "${DG_SHARED[@]}"; do
    mkdir -p -- "$ROOT/$path" "$(dirname -- "$DG_RELEASE_DIR/$path")"; rm -rf -- "${DG_RELEASE_DIR:?}/$path"
    ln -s -- "$(dg_helper relative "$(dirname -- "$DG_RELEASE_DIR/$path")" "$ROOT/$path")" "$DG_RELEASE_DIR/$path"
  done
  printf '%s\n' "$hash" >"$DG_RELEASE_DIR/.deploygen-release/source"
  dg_ok "release $DG_RELEASE: $(tr -cd '\0' <"$DG_TMP/files" | wc -c) files copied"
}
dg_unchanged_since() { [[ -n $1 && $2 == "$(cat -- "$DG_STATE/releases/$1/.deploygen-release/source" 2>/dev/null)" ]]; }
dg_discard_release() {
  [[ -n ${DG_RELEASE_DIR-} && -d $DG_RELEASE_DIR && $(dg_current) != "$DG_RELEASE" ]] || return 0
  rm -rf -- "$DG_RELEASE_DIR" && dg_info "removed the unfinished release $DG_RELEASE"
}
dg_prune() {
  local current previous id count; current=$(dg_current) previous=$(dg_previous || true) count=$(dg_releases | wc -l)
  while IFS= read -r id && ((count > DG_RELEASES_KEEP)); do
    [[ $id == "$current" || $id == "$previous" ]] || { rm -rf -- "${DG_STATE:?}/releases/$id"; count=$((count - 1)); dg_info "removed old release $id"; }
  done < <(dg_releases)
}
# A step whose inputs hash as after its last success is not redone (a release hard-links the previous one's
# outputs). In place, the outputs that exist are an input too: one deleted since makes the step run again.
dg_hash() {
  local kind=$2 app=$3 outputs=()
  ((DG_RELEASES_KEEP > 0)) || mapfile -t outputs < <(dg_paths "${DG_OUTPUTS_OF[$app.$kind]-}")
  (cd -- "$1" && dg_helper input-hash "$kind" "$([[ $kind == install ]] || dg_paths "${DG_OUTPUTS_OF[$app.build]-}")" "${DG_BUILD_INPUTS[$app]-}" \
    "$DG_NODE_VERSION $kind $(declare -f "dg_${kind}_${app//-/_}")" "${outputs[@]}") 2>/dev/null
}
dg_run_step() {
  local started=$EPOCHREALTIME rc=0; dg_info "$1${5:+: $5}"
  (dg_close_fds && set -euo pipefail && cd -- "$3" && "$2") || rc=$?
  ((rc == 0)) || dg_die "$1 failed (exit $rc); $DG_STILL_SERVING" "$4"
  dg_ok "$1 ($(dg_elapsed_since "$started"))"
}
# dg_step KIND APP BASE PREVIOUS: install or build APP in BASE, or reuse it from the PREVIOUS release.
dg_step() {
  local kind=$1 app=$2 base=$3 previous=$4 dir record hash old='' why='' path outputs=()
  dir=$base/${DG_CWD[$app]} record=$DG_STEPS/$app.$kind
  declare -F "dg_${kind}_${app//-/_}" >/dev/null || return 0
  mapfile -t outputs < <(dg_paths "${DG_OUTPUTS_OF[$app.$kind]-}")
  hash=$(dg_hash "$dir" "$kind" "$app") || hash=''
  [[ ! -f $record ]] || old=$(<"$record")
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
    dg_ok "reused the $kind of $app from release ${previous##*/}: inputs unchanged" && return 0
  fi
  [[ -n $why ]] || { dg_ok "skipped $kind $app: inputs unchanged"; return 0; }
  rm -f -- "$record"; DG_RAN=1
  if [[ $kind == build ]] && ((DG_RELEASES_KEEP == 0)); then dg_keep_outputs "$app"; fi
  dg_run_step "$kind $app (in ${DG_CWD[$app]})" "dg_${kind}_${app//-/_}" "$dir" "fix the $kind error above (or the $kind commands of $app in the manifest), then deploy again" "$why"
  # Hashed again: what the step wrote into its own inputs is no change next time.
  hash=$(dg_hash "$dir" "$kind" "$app") || hash=''
  [[ -z $hash ]] || { printf '%s\n' "$hash" >"$record.new" && DG_PENDING+=("$record"); }
}
# A virtualenv names its folder in its scripts: rewritten as new files, so the previous release's stay.
dg_relocate_venv() {
  local from=$1/.venv to=$2/.venv file; [[ -f $to/pyvenv.cfg ]] || return 0
  grep -lIF -- "$from" "$to"/bin/* 2>/dev/null | while IFS= read -r file; do
    sed "s|$from|$to|g" -- "$file" >"$file.new" && chmod --reference="$file" -- "$file.new" && mv -f -- "$file.new" "$file"
  done
}
dg_verify() {
  local app=$1 base=$2 path
  while IFS= read -r path; do
    [[ -e $base/${DG_CWD[$app]}/$path ]] || dg_die "$app: ${DG_CWD[$app]}/$path is missing after install and build; $DG_STILL_SERVING" "check the install and build steps of $app in the manifest (run them by hand in ${DG_CWD[$app]} to see why $path is not produced)"
  done < <(dg_paths "${DG_VERIFY_FILES[$app]-}")
  ! declare -F "dg_verify_${app//-/_}" >/dev/null ||
    dg_run_step "verify $app" "dg_verify_${app//-/_}" "$base/${DG_CWD[$app]}" "fix what the verify command of $app reports (usually a missing dependency: check the install step), then deploy again (with --force to redo install and build)"
}
# In place, a build's outputs are copied (not linked: it may rewrite files) and put back if the run fails.
dg_keep_outputs() {
  local path; while IFS= read -r path; do
    path=$ROOT/${DG_CWD[$1]}/$path; rm -rf -- "$path.deploygen-previous"; DG_KEPT+=("$path")
    [[ ! -e $path ]] || cp -a --reflink=auto -- "$path" "$path.deploygen-previous"
  done < <(dg_paths "${DG_OUTPUTS_OF[$1.build]-}")
}
dg_restore_outputs() {
  local path; for path in "${DG_KEPT[@]}"; do
    ((DG_LIVE == 0)) || { rm -rf -- "$path.deploygen-previous"; continue; }
    rm -rf -- "$path"
    [[ ! -e $path.deploygen-previous ]] || { mv -- "$path.deploygen-previous" "$path" && dg_info "put the previous ${path#"$ROOT"/} back"; }
  done
}
# What the apps would run: the release (in place: the checkout's files), the env file, Node's version.
dg_fingerprint() {
  { if ((DG_RELEASES_KEEP > 0)); then printf '%s\n' "${DG_RELEASE:-$(dg_current)}"; else dg_source_hash; fi
    printf '%s\n' "$DG_NODE_VERSION"; [[ -z $DG_ENV_FILE ]] || cat -- "$ROOT/$DG_ENV_FILE"; } | sha256sum | cut -d ' ' -f 1
}
dg_serving() {
  local app status cwd found
  for app in "${DG_APPS[@]}"; do
    found=0; while IFS=$'\t' read -r _ _ status _ _ cwd; do
      [[ $status == online && ($cwd == "$ROOT" || $cwd == "$ROOT"/*) ]] && found=1 || return 1
    done < <(dg_processes_of name "${DG_PM2_NAME[$app]}")
    ((found == 1)) && { [[ -z ${DG_HEALTH_URL[$app]-} ]] || dg_probe "${DG_HEALTH_URL[$app]}"; } || return 1
  done
}
dg_probe() { curl --silent --fail --output /dev/null --connect-timeout 1 --max-time 5 -- "$1" 2>/dev/null; }
# Start or reload (afresh what a reload cannot change); PM2 runs in the background, so that dg_watch sees a crash loop.
dg_apply() {
  local ecosystem=$1 name pm2_pid rc=0; mkdir -p -- "$DG_LOGS"
  if [[ -s $DG_TMP/jlist ]]; then
    while IFS= read -r name; do
      dg_info "$name runs with settings a reload cannot change: starting it afresh"; dg_pm2 delete "$name" >/dev/null
    done < <(dg_helper pm2-changed "$DG_TMP/jlist" "$ecosystem" "$DG_NAMESPACE")
    while IFS=$'\t' read -r name _; do
      [[ -z $name || -n ${DG_APP_OF_PM2[$name]-} ]] || { dg_info "removing $name (no longer in the manifest)"; dg_pm2 delete "$name" >/dev/null; }
    done < <(dg_processes_of ns "$DG_NAMESPACE")
  fi
  dg_daemon_pid >/dev/null || dg_pm2 ping >/dev/null
  rm -rf -- "$DG_TMP/exceptions" && mkdir -- "$DG_TMP/exceptions"
  (dg_close_fds; exec node "$DG_SCRIPT_DIR/deploygen-helper.cjs" pm2-exceptions "$DG_PM2" "$DG_NAMESPACE" "$DG_TMP/exceptions" 2>/dev/null) & DG_LISTENER=$!
  dg_pm2 startOrReload "$ecosystem" --update-env >"$DG_TMP/pm2.out" 2>&1 & pm2_pid=$!
  dg_watch "$pm2_pid" || rc=$?
  kill -- "$DG_LISTENER" 2>/dev/null || true; ! dg_running "$pm2_pid" || kill -- "$pm2_pid" 2>/dev/null || true
  wait "$pm2_pid" 2>/dev/null || { ((rc != 0)) || { cat -- "$DG_TMP/pm2.out" >&2; DG_FAILED_WHY="pm2 startOrReload failed"; rc=1; }; }
  return "$rc"
}
# Polls until every app answers; fails at a crash loop (a process replaced twice, or none for a second) or timeout.
dg_watch() {
  local pm2_pid=${1:-0} started=$EPOCHREALTIME app name file pid pending=("${DG_APPS[@]}") waiting elapsed alive
  local -A seen=() changes=() dead=()
  while ((${#pending[@]} > 0)); do
    waiting=()
    for app in "${pending[@]}"; do
      name=${DG_PM2_NAME[$app]} elapsed=$(((${EPOCHREALTIME/[.,]/} - ${started/[.,]/}) / 1000)) alive=0
      if [[ -n ${DG_HEALTH_URL[$app]-} ]] && ! dg_running "$pm2_pid" && dg_probe "${DG_HEALTH_URL[$app]}"; then dg_ok "$name answers ${DG_HEALTH_URL[$app]} ($(dg_elapsed_since "$started"))"; continue; fi
      for file in "$PM2_HOME/pids/$name-"*.pid; do
        pid=$(dg_pid_in "$file") || continue # removed by PM2 since the glob
        ! kill -0 "$pid" 2>/dev/null || alive=1
        # Per worker (pid file): a reload replaces each once, a crash loop one twice.
        [[ -z ${seen[$file]-} || ${seen[$file]} == "$pid" ]] || changes[$file]=$((${changes[$file]-0} + 1))
        ((${changes[$file]-0} <= ${changes[$app]-0})) || changes[$app]=${changes[$file]}
        seen[$file]=$pid
      done
      if ((alive == 0)) && ! dg_running "$pm2_pid"; then dead[$app]=$((${dead[$app]-0} + 1)); else dead[$app]=0; fi
      # In cluster mode PM2 may keep a dying worker's pid file; the exception is the sign.
      [[ ! -s ${DG_TMP-}/exceptions/$name ]] || changes[$app]=$((${changes[$app]-0} + 2))
      if ((${changes[$app]-0} >= 2 || ${dead[$app]} >= 4)); then
        DG_FAILED_APP=$app DG_FAILED_WHY="$name crashes at start (PM2 restarted it, $(dg_elapsed_since "$started") after the start)"
        ((${dead[$app]} < 4)) || DG_FAILED_WHY="$name is not running ($(dg_elapsed_since "$started") after the start)"
        return 1
      fi
      if [[ -z ${DG_HEALTH_URL[$app]-} ]]; then
        ! dg_running "$pm2_pid" && ((alive == 1 && elapsed >= 2000)) && dg_ok "$name is online" && continue
      elif ((elapsed >= ${DG_HEALTH_TIMEOUT[$app]} * 1000)); then
        DG_FAILED_APP=$app DG_FAILED_WHY="$name did not answer ${DG_HEALTH_URL[$app]} within ${DG_HEALTH_TIMEOUT[$app]}s" && return 1
      fi
      waiting+=("$app")
    done
    pending=("${waiting[@]}"); ((${#pending[@]} == 0)) || sleep 0.25
  done
}
dg_running() { (($1 > 0)) && kill -0 "$1" 2>/dev/null; }
# The end of the app's error log (PM2 may still be writing it), or in cluster mode what PM2's bus heard.
dg_failure_report() {
  local name=${DG_PM2_NAME[$DG_FAILED_APP]} log tries=8; log=$DG_LOGS/$name.err.log
  dg_error "$DG_FAILED_WHY"
  while [[ ! -s $log && ! -s $DG_TMP/exceptions/$name ]] && ((tries-- > 0)); do sleep 0.25; done
  [[ -s $log ]] || log=$DG_TMP/exceptions/$name
  if [[ -s $log ]]; then printf -- '--- last lines of %s ---\n' "${log/#$DG_TMP\/exceptions\//exceptions PM2 caught in }" >&2; tail -n 15 -- "$log" >&2; return 0; fi
  printf -- '--- %s is empty; PM2 said: ---\n' "$log" >&2
  { grep -h '^\[PM2' -- "$DG_TMP/pm2.out"; tail -n 15 -- "$PM2_HOME/pm2.log"; } >&2 2>/dev/null || true
}
dg_ecosystem() { if ((DG_RELEASES_KEEP > 0)); then printf '%s\n' "$DG_STATE/current/$DG_ECOSYSTEM"; else printf '%s\n' "$ROOT/$DG_ECOSYSTEM"; fi; }
dg_deploy() {
  dg_setup deploy; DG_LIST=0
  dg_options "[--force] [--dry-run] [--print-values] [--no-wait] [--takeover] [--direct] [--list]
  --force         run every install and build, even those whose inputs are unchanged, and reload
  --dry-run       print every step with its resolved values and change nothing
  --print-values  the same values as NUL-terminated KEY=VALUE records (byte-exact, for tools)
  --no-wait       fail at once when another run holds the environment's lock
  --takeover      replace apps of the same names that run from another checkout
  --direct        call PM2 even where the systemd unit is installed
  --list          list the releases, the live one marked" "--force --dry-run --no-wait --takeover --direct --list" "$@"
  ((DG_LIST == 0)) || { dg_list; return 0; }
  ((DG_DRY_RUN == 0)) || { dg_dry_run; return 0; }
  local started=$EPOCHREALTIME previous='' base=$ROOT app record
  dg_lock; dg_preflight
  DG_STEPS=$DG_STATE/steps DG_PENDING=() DG_KEPT=() DG_LIVE=0 DG_RAN=0; [[ -d $DG_STEPS ]] || mkdir -p -- "$DG_STEPS"
  if ((DG_RELEASES_KEEP > 0)); then
    previous=$(dg_current || true) DG_STILL_SERVING="nothing was switched: release ${previous:-none} keeps serving"
    dg_section "Release"; if dg_new_release "$previous"; then base=$DG_RELEASE_DIR; else base=''; fi
  else
    DG_STILL_SERVING="nothing was restarted: the running version keeps serving" DG_CLEANUPS+=(dg_restore_outputs)
  fi
  if [[ -n $base ]]; then
    dg_section "Install"; for app in "${DG_APPS[@]}"; do dg_step install "$app" "$base" "${previous:+$DG_STATE/releases/$previous}"; done
    dg_section "Build"; for app in "${DG_APPS[@]}"; do dg_step build "$app" "$base" "${previous:+$DG_STATE/releases/$previous}"; done
  fi
  # What runs is what this deploy would start, and healthy: a reload would only restart it.
  DG_FINGERPRINT=$(dg_fingerprint)
  if ((DG_RAN == 0 && DG_FORCE == 0)) && [[ $DG_FINGERPRINT == "$(cat -- "$DG_STATE/deployed" 2>/dev/null)" ]] && dg_serving && ! dg_outside_unit; then
    ((DG_RELEASES_KEEP == 0)) || previous=" release $previous"
    dg_section "Deployed $DG_PROJECT ($DG_ENV)$previous in $(dg_elapsed_since "$started"): unchanged since the last deploy and healthy, nothing reloaded"
    dg_info "${DG_SCRIPTS[start]} reloads the apps anyway; --force also redoes install and build" && return 0
  fi
  [[ -z $base ]] || { dg_section "Verify"; for app in "${DG_APPS[@]}"; do dg_verify "$app" "$base"; done; }
  dg_daemon_under_unit
  dg_section "Start or reload namespace $DG_NAMESPACE"; DG_LIVE=1
  [[ -z ${DG_RELEASE-} ]] || { dg_switch "$DG_RELEASE"; DG_CLEANUPS+=(dg_undo_switch); dg_info "current -> $DG_RELEASE"; }
  rm -f -- "$DG_STATE/deployed"
  if ! dg_apply "$(dg_ecosystem)"; then
    dg_failure_report
    ((DG_RELEASES_KEEP > 0)) || dg_die "${DG_PM2_NAME[$DG_FAILED_APP]} does not run: $DG_NAMESPACE is DOWN (a deploy in place has no automatic rollback)" "fix the app (its log is above), then deploy again; releases: { keep: 5 } in the manifest gives automatic rollback"
    [[ -n ${DG_RELEASE-} ]] || dg_die "${DG_PM2_NAME[$DG_FAILED_APP]} of release $previous does not run: $DG_NAMESPACE is DOWN" "fix the app and deploy again, or ${DG_SCRIPTS[rollback]} to an earlier release"
    dg_rollback_to "$previous"
  fi
  for record in "${DG_PENDING[@]}"; do mv -f -- "$record.new" "$record"; done
  printf '%s\n' "$DG_FINGERPRINT" >"$DG_STATE/deployed"; dg_restore_outputs; DG_CLEANUPS=(dg_unlock)
  ((DG_RELEASES_KEEP == 0)) || { dg_prune; previous=" release $(dg_current)"; }
  dg_section "Deployed $DG_PROJECT ($DG_ENV)${previous} in $(dg_elapsed_since "$started")"
}
dg_undo_switch() { [[ $(dg_current) != "$DG_RELEASE" ]] || (dg_rollback_to "${previous-}") || true; }
dg_rollback_to() {
  touch -- "$DG_RELEASE_DIR/.deploygen-release/failed"; DG_CLEANUPS=(dg_unlock)
  if [[ -z $1 ]]; then
    rm -f -- "$DG_STATE/current" && { dg_pm2 delete "$DG_NAMESPACE" >/dev/null 2>&1 || true; }
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
  local id current; current=$(dg_current || true)
  while IFS= read -r id; do
    if [[ $id == "$current" ]]; then printf '* '; else printf '  '; fi
    if dg_failed "$id"; then printf '%s (failed, rolled back)\n' "$id"; else printf '%s\n' "$id"; fi
  done < <(dg_releases)
  [[ -n $current ]] || printf 'no release is live\n'
}
dg_dry_run() {
  ((DG_PRINT_VALUES == 1)) || dg_section "Dry run: $DG_PROJECT ($DG_ENV); nothing is changed"
  dg_show root "$ROOT" && dg_show pm2_home "$PM2_HOME" && dg_show ecosystem "$(dg_ecosystem)" && dg_show namespace "$DG_NAMESPACE"
  [[ -z $DG_ENV_FILE ]] || dg_show env_file "$ROOT/$DG_ENV_FILE"; [[ -z $DG_EXAMPLE_FILE ]] || dg_show example_file "$ROOT/$DG_EXAMPLE_FILE"
  local app key previous='' verb=skip
  for key in "${DG_REQUIRED_ENV[@]}"; do dg_show required_env "$key"; done
  for app in "${DG_APPS[@]}"; do
    dg_show app "${DG_PM2_NAME[$app]}" && dg_show '  cwd' "$ROOT/${DG_CWD[$app]}"
    [[ -z ${DG_PORT[$app]-} ]] || dg_show '  port' "${DG_PORT[$app]}"
    while IFS= read -r key; do dg_show '  verify_file' "$ROOT/${DG_CWD[$app]}/$key"; done < <(dg_paths "${DG_VERIFY_FILES[$app]-}")
    [[ -z ${DG_HEALTH_URL[$app]-} ]] || dg_show '  health' "${DG_HEALTH_URL[$app]} (timeout ${DG_HEALTH_TIMEOUT[$app]}s)"
    dg_show '  error_log' "$DG_LOGS/${DG_PM2_NAME[$app]}.err.log"
  done
  ((DG_PRINT_VALUES == 0)) || return 0
  DG_NODE_VERSION=$(dg_helper node-version) DG_STEPS=$DG_STATE/steps
  if ((DG_RELEASES_KEEP > 0)); then
    previous=$(dg_current || true)
    if dg_unchanged_since "$previous" "$(dg_source_hash)"; then
      printf 'plan\twould make no release: the checkout is unchanged since release %s\n' "$previous"
      printf 'then\treload %s unless it runs this release healthily, watch for crash loops and wait for health\n' "$DG_NAMESPACE" && return 0
    fi
    printf 'plan\twould copy the checkout into a new release (live now: %s), keep %s releases\n' "${previous:-none}" "$DG_RELEASES_KEEP"
    [[ -z $previous ]] || verb="reuse from $previous the"
  fi
  for app in "${DG_APPS[@]}"; do
    for key in install build; do
      if ! declare -F "dg_${key}_${app//-/_}" >/dev/null; then continue
      elif ((DG_FORCE == 1)); then printf 'plan\twould run %s %s (--force)\n' "$key" "$app"
      elif [[ ! -f $DG_STEPS/$app.$key ]]; then printf 'plan\twould run %s %s (no earlier success recorded)\n' "$key" "$app"
      elif [[ $(dg_hash "$ROOT/${DG_CWD[$app]}" "$key" "$app") == "$(<"$DG_STEPS/$app.$key")" ]]; then printf 'plan\twould %s %s %s: inputs unchanged\n' "$verb" "$key" "$app"
      else printf 'plan\twould run %s %s (inputs changed)\n' "$key" "$app"
      fi
    done
  done
  printf 'then\tswitch, start or reload %s, watch for crash loops and wait for health\n' "$DG_NAMESPACE"
}
dg_start() {
  dg_setup start; dg_options "[--no-wait] [--direct]" "--no-wait --direct" "$@"
  if dg_via_unit; then
    dg_check_units; dg_section "Starting $DG_NAMESPACE through systemd"
    # An active unit (RemainAfterExit=) ignores "start": its ExecReload starts what is not running.
    dg_systemctl reload-or-restart -- "$(dg_unit_instance)"
    dg_ok "started $(dg_unit_instance)"; return 0
  fi
  dg_delegated; dg_lock; dg_preflight
  if ((DG_RELEASES_KEEP > 0)) && ! dg_current >/dev/null; then
    dg_pm2 ping >/dev/null
    dg_ok "no release is deployed yet: PM2's daemon is up; run ${DG_SCRIPTS[deploy]}"; return 0
  fi
  dg_section "Starting $DG_NAMESPACE in $ROOT"
  dg_apply "$(dg_ecosystem)" || { dg_failure_report; dg_die "$DG_NAMESPACE did not start: ${DG_PM2_NAME[$DG_FAILED_APP]} fails" "read its log above; fix it and deploy again (with releases: ${DG_SCRIPTS[rollback]-rollback} to an earlier one)"; }
  dg_section "Started $DG_NAMESPACE"
}
dg_stop() {
  dg_setup stop; dg_options "[--no-wait] [--direct]" "--no-wait --direct" "$@"
  if dg_via_unit; then
    dg_section "Stopping $DG_NAMESPACE through systemd"
    dg_systemctl stop -- "$(dg_unit_instance)"
    dg_ok "stopped $(dg_unit_instance)"; return 0
  fi
  dg_delegated; dg_lock; dg_tools
  [[ -z ${SERVICE_RESULT-} ]] || DG_CLEANUPS+=(dg_stop_idle_daemon)
  dg_snapshot
  [[ -n $DG_PROCESSES ]] || { dg_ok "PM2 is not running (PM2_HOME=$PM2_HOME): nothing to stop"; return 0; }
  local name; dg_section "Stopping $DG_NAMESPACE (each app gets its kill_timeout to finish)"
  while IFS= read -r name; do
    dg_pm2 stop "$name" >/dev/null; dg_ok "stopped $name"
  done < <(dg_processes_of ns "$DG_NAMESPACE" | awk -F '\t' '$3 != "stopped" { print $1 }' | sort -u)
}
# As the unit's ExecStop, a daemon that runs no other namespace is stopped too: the unit's cgroup ends empty.
dg_stop_idle_daemon() {
  dg_snapshot
  [[ -n $DG_PROCESSES ]] || dg_daemon_pid >/dev/null || return 0
  [[ -z $(awk -F '\t' -v ns="$DG_NAMESPACE" '$2 != ns' <<<"$DG_PROCESSES") ]] || { dg_info "PM2's daemon (PM2_HOME=$PM2_HOME) runs other namespaces' apps too: it keeps running"; return 0; }
  dg_pm2 kill >/dev/null && dg_ok "stopped PM2's daemon (PM2_HOME=$PM2_HOME): it ran nothing else"
}
dg_rollback() {
  dg_setup rollback; dg_options "[--no-wait] [--direct] [RELEASE | COMMIT]" "--no-wait --direct" "$@"
  ((DG_RELEASES_KEEP > 0)) || dg_die "$DG_ENV deploys in place: there are no releases to roll back to" "set releases: { keep: 5 } for $DG_ENV in the manifest and regenerate"
  dg_lock; dg_preflight
  local target=${DG_ARGS[0]-} from
  from=$(dg_current || true) target=${target:-$(dg_previous || true)}
  [[ -z $target || -d $DG_STATE/releases/$target || ! $target =~ ^[0-9a-f]{4,40}$ ]] || target=$(dg_release_of_commit "$target" || echo "$target")
  [[ -n $target && -d $DG_STATE/releases/$target ]] || dg_die "no release ${target:-before $from} to roll back to" "list them with ${DG_SCRIPTS[deploy]} --list"
  [[ $target != "$from" ]] || { dg_ok "release $target is already serving: nothing to do"; return 0; }
  dg_section "Rolling back $DG_NAMESPACE from ${from:-none} to $target"
  dg_daemon_under_unit; dg_switch "$target"
  dg_apply "$(dg_ecosystem)" || { dg_failure_report; dg_switch "$from"; dg_apply "$(dg_ecosystem)" || true; dg_die "release $target does not come up; ${from:-nothing} is live again" "pick another release (${DG_SCRIPTS[deploy]} --list)"; }
  dg_section "Release $target is serving (was ${from:-none})"
}
# Once when an app goes down, once when it recovers; a webhook that fails is tried again at the next check.
dg_alert() {
  local app=$1 event=$2 detail=$3 state=$DG_STATE/health/$1 url why
  [[ $(cat -- "$state" 2>/dev/null || echo up) != "$event" ]] || return 0
  mkdir -p -- "$DG_STATE/health" && printf '%s\n' "$event" >"$state"
  [[ -n $DG_ALERT_WEBHOOK_ENV ]] || return 0
  url=$(dg_helper env-values "$ROOT/$DG_ENV_FILE" "$DG_ALERT_WEBHOOK_ENV" 2>/dev/null | tr -d '\0') && url=${url#*=}
  [[ -n $url ]] || { dg_warn "$DG_ALERT_WEBHOOK_ENV is not set in $DG_ENV_FILE: no alert sent"; return 0; }
  why=$(dg_helper alert "$url" "$DG_PROJECT" "$DG_ENV" "$app" "$event" "$detail" 2>&1) && return 0
  dg_warn "the $event alert for $app could not be sent (${why#*$'\t'}); the next check tries again"
  if [[ $event == up ]]; then printf 'down\n' >"$state"; else printf 'up\n' >"$state"; fi
}
dg_health_check() {
  dg_setup health-check; dg_options "[--direct]" "--direct" "$@"
  if dg_unit_installed && ! systemctl is-active --quiet -- "$(dg_unit_instance)"; then dg_ok "$(dg_unit_instance) is stopped: nothing to check"; return 0; fi
  dg_lock --skip || { dg_ok "a deploy, start or stop of $DG_NAMESPACE is running: not checking now"; return 0; }
  dg_tools; dg_check_units
  local app name status failed=0; dg_section "Health of $DG_NAMESPACE"
  if ! dg_daemon_pid >/dev/null; then
    dg_warn "PM2 is not running (PM2_HOME=$PM2_HOME): starting $DG_NAMESPACE and giving its apps their start-up time"
    dg_alert "$DG_NAMESPACE" down "PM2 daemon not running; starting the namespace"; dg_snapshot
    if dg_apply "$(dg_ecosystem)"; then dg_alert "$DG_NAMESPACE" up "started again"; else dg_failure_report; failed=1; fi
  fi
  dg_snapshot
  for app in "${DG_APPS[@]}"; do
    name=${DG_PM2_NAME[$app]} status=$(dg_processes_of name "${DG_PM2_NAME[$app]}" | awk -F '\t' 'NR == 1 { print $3 }')
    if [[ $status == online ]] && { [[ -z ${DG_HEALTH_URL[$app]-} ]] || dg_probe "${DG_HEALTH_URL[$app]}"; }; then
      dg_ok "$name is healthy"; dg_alert "$app" up "healthy again"; continue
    fi
    if [[ $status == online ]]; then dg_warn "$name does not answer ${DG_HEALTH_URL[$app]}: restarting $name only"; else dg_warn "$name is ${status:-missing from PM2}: restarting $name only"; fi
    dg_alert "$app" down "${status:-missing}; no answer from ${DG_HEALTH_URL[$app]:-its process}; restarting"
    if [[ -n $status ]]; then dg_pm2 restart "$name" >/dev/null; else dg_pm2 start "$(dg_ecosystem)" --only "$name" >/dev/null; fi
    local DG_APPS=("$app") # what dg_watch watches
    if dg_watch; then dg_alert "$app" up "answers again after a restart"; else dg_failure_report; failed=1; fi
  done
  ((failed == 0)) || dg_die "some apps of $DG_NAMESPACE are unhealthy (see above)" "read the app logs in $DG_LOGS, fix the app, then deploy again"
  dg_section "All apps of $DG_NAMESPACE are healthy"
}
dg_install() { if cmp -s -- "$1" "$2"; then dg_ok "unchanged $2"; else install -m 0644 -D -- "$1" "$2" && dg_ok "installed $2"; fi; }
dg_install_systemd() {
  dg_setup install-systemd; DG_NO_TIMER=0 DG_ROOT_DIR=0
  dg_options "[--root-dir DIR] [--no-timer]" "--no-timer --root-dir" "$@"
  local target=/ file enable=() unit timer text move="move the checkout (for example to /srv/$DG_PROJECT) and run this again"
  ((DG_ROOT_DIR == 0)) || target=${DG_ARGS[0]:?--root-dir needs a folder}
  dg_need systemd-escape "this host has no systemd; run the apps with ${DG_SCRIPTS[start]} instead"
  if [[ $target == / ]]; then
    ((EUID == 0)) || dg_die "installing a system unit needs root" "run: sudo $0"
    getent passwd "$DG_USER" >/dev/null || dg_die "the service user $DG_USER does not exist" "create it (sudo useradd --system --create-home $DG_USER) or set environments.$DG_ENV.systemd.user in the manifest and regenerate"
    case $ROOT/ in
      /tmp/* | /var/tmp/*) dg_die "the project root $ROOT is under ${ROOT%%/tmp/*}/tmp, which the unit's PrivateTmp=yes hides from the apps" "$move" ;;
      /usr/* | /boot/* | /efi/* | /etc/*) dg_die "the project root $ROOT is read-only for the unit (ProtectSystem=full)" "$move" ;;
    esac
    runuser -u "$DG_USER" -- test -r "$DG_SCRIPT_DIR/${DG_SCRIPTS[start]}" -a -x "$ROOT" -a -w "$ROOT" 2>/dev/null ||
      dg_die "the service user $DG_USER cannot read and write $ROOT" "sudo chown -R $DG_USER $ROOT (or give $DG_USER access to every folder above it)"
  fi
  case $ROOT in *$'\n'*) dg_die "the project root contains a line break" "move the project to a folder without one" ;; esac
  case $ROOT in *'"'* | *\\* | *'*'* | *'?'* | *'['* | *$'\r'*) dg_die "the project root $ROOT contains a character logrotate's paths cannot carry (\" \\ * ? [)" "$move" ;; esac
  unit=$(dg_unit_instance) timer=$(dg_unit_instance "$DG_UNIT_PREFIX-health" timer)
  ((${#timer} <= 255)) || dg_die "the unit name $timer is longer than systemd's limit of 255 characters" "move the project to a shorter path"
  dg_section "Installing $unit for namespace $DG_NAMESPACE in $ROOT"
  for file in "${DG_UNIT_FILES[@]}"; do dg_install "$DG_SCRIPT_DIR/$file" "${target%/}/etc/systemd/system/${file##*/}"; done
  # Quoted: "&" in the root stays literal.
  text=$(<"$DG_SCRIPT_DIR/$DG_LOGROTATE") && text=${text//@@DEPLOYGEN_ROOT@@/"$ROOT"} && printf '%s\n' "$text" >"$DG_TMP/logrotate"
  dg_install "$DG_TMP/logrotate" "${target%/}/etc/logrotate.d/$DG_PROJECT-$DG_ENV"
  enable=("$unit"); ((DG_NO_TIMER == 1)) || enable+=("$timer")
  if [[ $target == / && -d /run/systemd/system ]]; then
    systemctl daemon-reload; systemctl enable -- "${enable[@]}"
    ((DG_NO_TIMER == 1)) || systemctl start -- "$timer"
  else
    systemctl --root="$target" enable -- "${enable[@]}"
  fi
  dg_ok "enabled ${enable[*]}"
  dg_section "Next: sudo systemctl start $unit (deploy, start and stop now go through systemctl; grant $DG_USER that right as docs/runbook.md shows)"
}
