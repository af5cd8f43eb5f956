# Several hosts: fleet-<env>.sh, run from a clone of the repository on the machine that deploys.
# PM2's own `pm2 deploy` (pm2-deploy) reaches the hosts one after another and runs the deploy
# script on each; a host whose new release fails rolls itself back and stops the run. What each
# host serves is read from its own releases over SSH (host-status), never from pm2-deploy's
# .deploys, which records the new commit even on a host that rolled it back. Sourced by
# config-<env>.sh after deploygen-lib.sh; its data: DG_FLEET_* in config-<env>.sh.

dg_fleet() {
  dg_setup fleet
  dg_options "deploy | setup | rollback [COMMIT] | status
  deploy           pm2 deploy to every host in turn (only when every host answers), then the status
  setup            pm2 deploy setup: once per new host (clone, env file link)
  rollback COMMIT  every host to its newest good release of COMMIT (default: the commit before the
                   newest one that every host has), only when every host answers and has one
  status           per host: the live release, its commit and each app's health; exit 1 unless
                   every host answers, is healthy and serves the same commit" "" "$@"
  case ${DG_ARGS[0]-} in
    host-status) dg_fleet_host_status ;;
    status) dg_tools; dg_fleet_survey; dg_fleet_report '' || exit 1 ;;
    setup) dg_tools; dg_fleet_pm2 setup ;;
    deploy) dg_tools; dg_fleet_deploy ;;
    rollback) dg_tools; dg_fleet_rollback "${DG_ARGS[1]-}" ;;
    *) dg_die "${DG_ARGS[0]:+unknown command ${DG_ARGS[0]}: }say what to do: deploy, setup, rollback [COMMIT] or status" "run ${0##*/} --help" ;;
  esac
}

# dg_fleet_pm2 ARG...: `pm2 deploy <ecosystem> <env> ARG...` in the root (pm2-deploy checks that the
# branch is pushed and clean), with a PM2 daemon of its own (pm2 starts one), stopped at the end.
dg_fleet_pm2() {
  [[ -n ${DG_FLEET_PM2_HOME-} ]] || { DG_FLEET_PM2_HOME=$DG_TMP/pm2 && DG_CLEANUPS+=(dg_fleet_stop_pm2); }
  (cd -- "$ROOT" && PM2_HOME=$DG_FLEET_PM2_HOME "$DG_PM2" deploy "$DG_ECOSYSTEM" "$DG_ENV" "$@")
}
dg_fleet_stop_pm2() { PM2_HOME=$DG_FLEET_PM2_HOME dg_daemon_pid >/dev/null && PM2_HOME=$DG_FLEET_PM2_HOME timeout 30 "$DG_PM2" kill >/dev/null 2>&1; }

dg_fleet_ssh() {
  ssh "${DG_FLEET_SSH[@]}" -o BatchMode=yes -o ConnectTimeout=10 -p "${DG_FLEET_PORT[$1]-22}" -- "$DG_FLEET_USER@$1" "${@:2}"
}
# dg_fleet_survey: every host's host-status at once, over SSH, into $DG_TMP/fleet/<index>.{out,err,rc}.
dg_fleet_survey() {
  local i dir=$DG_TMP/fleet started=$EPOCHREALTIME surveys=()
  rm -rf -- "$dir" && mkdir -p -- "$dir"
  for i in "${!DG_FLEET_HOSTS[@]}"; do
    (if dg_fleet_ssh "${DG_FLEET_HOSTS[i]}" "cd $DG_FLEET_PATH/current && bash $DG_FLEET_SCRIPTS/fleet-$DG_ENV.sh host-status" >"$dir/$i.out" 2>"$dir/$i.err"; then echo 0; else echo $?; fi >"$dir/$i.rc") &
    surveys+=($!)
  done
  wait "${surveys[@]}" # not the Node helper, which runs until the end
  DG_FLEET_SURVEY_TIME=$(dg_elapsed_since "$started")
}
dg_fleet_rc() { cat -- "$DG_TMP/fleet/$1.rc"; }
dg_fleet_field() { awk -F '\t' -v key="$2" '$1 == key { print $2 }' "$DG_TMP/fleet/$1.out"; }
dg_fleet_answering() { local i; for i in "${!DG_FLEET_HOSTS[@]}"; do [[ $(dg_fleet_rc "$i") == 0 ]] || return 1; done; }
# dg_fleet_live_commit I: the commit host I serves (its live release's; in place, its checkout's).
dg_fleet_live_commit() {
  local live
  live=$(dg_fleet_field "$1" live)
  if ((DG_RELEASES_KEEP == 0)); then dg_fleet_field "$1" checkout; elif [[ $live =~ -([0-9a-f]{10})$ ]]; then printf '%s\n' "${BASH_REMATCH[1]}"; fi
}
# dg_fleet_common: the commits of which every host has a good release, newest first.
dg_fleet_common() {
  local commit i
  while IFS= read -r commit; do
    for i in "${!DG_FLEET_HOSTS[@]}"; do dg_fleet_field "$i" good | grep -q -- "-$commit\$" || continue 2; done
    printf '%s\n' "$commit"
  done < <(dg_fleet_field 0 good | sed -n 's/.*-\([0-9a-f]\{10\}\)$/\1/p' | tac | awk '!seen[$0]++')
}

# On each host: what it serves, as lines of KEY<TAB>VALUE for dg_fleet_report.
dg_fleet_host_status() {
  local id app name status health
  dg_tools
  printf 'checkout\t%s\n' "$(git -C "$ROOT" rev-parse --short=10 HEAD 2>/dev/null || echo -)"
  printf 'live\t%s\n' "$(dg_current || echo -)"
  while IFS= read -r id; do
    if [[ -e $DG_STATE/releases/$id/.deploygen-release/failed ]]; then printf 'failed\t%s\n' "$id"; else printf 'good\t%s\n' "$id"; fi
  done < <(dg_releases)
  dg_snapshot
  for app in "${DG_APPS[@]}"; do
    name=${DG_PM2_NAME[$app]} health=healthy
    status=$(dg_processes_of name "$name" | awk -F '\t' 'NR == 1 { print $3 }')
    if [[ $status != online ]]; then health=down; elif [[ -n ${DG_HEALTH_URL[$app]-} ]] && ! dg_probe "${DG_HEALTH_URL[$app]}"; then health=unhealthy; fi
    printf 'app\t%s %s, %s\n' "$name" "${status:-missing}" "$health"
  done
}

# dg_fleet_report TARGET: one line per host, then what to run next. Returns 0 when every host
# answers, is healthy and serves one commit (TARGET, when given).
dg_fleet_report() {
  local target=$1 i host rc live commit checkout line stopped='' problems=0 commits=() common=()
  dg_section "Hosts of $DG_NAMESPACE, in deploy order (what runs: each host's live release; read in $DG_FLEET_SURVEY_TIME)"
  for i in "${!DG_FLEET_HOSTS[@]}"; do
    host=${DG_FLEET_HOSTS[i]} rc=$(dg_fleet_rc "$i")
    if ((rc != 0)); then
      problems=1
      ((rc == 255)) && line=unreachable || line="no status (exit $rc)"
      printf '    %s%s%s %s: %s\n' "$DG_RED" "$host" "$DG_RESET" "$line" "$(tail -n 1 -- "$DG_TMP/fleet/$i.err")"
      continue
    fi
    live=$(dg_fleet_field "$i" live) checkout=$(dg_fleet_field "$i" checkout) commit=$(dg_fleet_live_commit "$i")
    commits+=("${commit:--}")
    if ((DG_RELEASES_KEEP == 0)); then line="in place at commit $commit"
    elif [[ $live == - ]]; then line='no release is live'
    else line="release $live (commit ${commit:-unknown})"; fi
    [[ -z $target || $commit == "$target" ]] || { line+=", not $target"; stopped=${stopped:-$host}; }
    [[ $checkout == "$commit" || $live == - ]] || line+=" [checkout at $checkout: pm2 deploy fetched it, it is not live]"
    line+="; $(dg_fleet_field "$i" app | paste -sd ';' | sed 's/;/; /g')"
    [[ $line != *', down'* && $line != *', unhealthy'* && $commit != '' ]] || problems=1
    printf '    %s %s\n' "$host" "$line"
  done
  mapfile -t commits < <(printf '%s\n' "${commits[@]}" | sort -u)
  if ((problems == 0 && ${#commits[@]} == 1)) && [[ -z $target || ${commits[0]} == "$target" ]]; then
    dg_ok "every host serves commit ${commits[0]} and is healthy"
    return 0
  fi
  mapfile -t common < <(dg_fleet_answering && dg_fleet_common)
  [[ -z $stopped ]] || dg_info "the run stopped at $stopped: it and the hosts after it serve their previous release (its own output above says why)"
  if ((${#commits[@]} > 1)); then
    dg_info "the hosts serve different commits: ${0##*/} rollback ${common[0]:-COMMIT} puts every host on ${common[0]:+commit }${common[0]:-one commit}; or fix the failure and ${0##*/} deploy again"
  elif [[ -n $target && ${commits[0]-} != "$target" ]]; then
    dg_info "every answering host still serves commit ${commits[0]-}: fix the failure above, commit, push and ${0##*/} deploy again"
  fi
  ((problems == 0)) || dg_info "a host that does not answer or is unhealthy: see its line above; bring it back (or take it out of hosts and regenerate), then ${0##*/} status"
  return 1
}

dg_fleet_deploy() {
  local target rc=0 started
  dg_fleet_survey
  dg_fleet_answering || { dg_fleet_report '' || true; dg_die "not every host answers: nothing was deployed" "bring the host back or set it up (${0##*/} setup), or take it out of hosts and regenerate; then deploy again"; }
  target=$(git -C "$ROOT" rev-parse --short=10 --verify -q "$DG_FLEET_REF^{commit}" 2>/dev/null || true)
  dg_section "Deploying ${target:-$DG_FLEET_REF} to ${DG_FLEET_HOSTS[*]}, one after another (pm2 deploy)"
  started=$EPOCHREALTIME
  dg_fleet_pm2 || rc=$?
  dg_info "pm2 deploy ran for $(dg_elapsed_since "$started") (exit $rc)"
  dg_fleet_survey
  dg_fleet_report "$target" || exit 1
  ((rc == 0)) || exit "$rc"
}

dg_fleet_rollback() {
  local target=$1 common=() rc=0
  ((DG_RELEASES_KEEP > 0)) || dg_die "$DG_ENV deploys in place: there are no releases to roll back to" "set releases: { keep: 5 } for $DG_ENV in the manifest and regenerate"
  dg_fleet_survey
  dg_fleet_answering || { dg_fleet_report '' || true; dg_die "not every host answers: nothing was rolled back" "bring the host back (or take it out of hosts and regenerate), then roll back again"; }
  mapfile -t common < <(dg_fleet_common)
  if [[ -z $target ]]; then
    target=${common[1]-}
    [[ -n $target ]] || dg_die "there is no commit before ${common[0]:-the live one} of which every host has a good release" "name one: ${0##*/} rollback COMMIT (${DG_SCRIPTS[deploy]} --list on a host lists its releases)"
  else
    target=$(git -C "$ROOT" rev-parse --short=10 --verify -q "$target^{commit}" 2>/dev/null || printf '%s\n' "${target:0:10}")
    [[ $target =~ ^[0-9a-f]{4,10}$ ]] || dg_die "$1 is not a commit of this repository" "name a commit (its hash, or a ref this clone knows): ${common[*]:-none} have a good release on every host"
    target=$(printf '%s\n' "${common[@]}" | grep -m 1 -- "^$target" || echo "$target")
    [[ " ${common[*]} " == *" $target "* ]] || dg_die "not every host has a good release of $target: nothing was rolled back" "pick a commit that every host has: ${common[*]:-none}"
  fi
  dg_section "Rolling every host of $DG_NAMESPACE back to commit $target, one after another (pm2 deploy exec)"
  dg_fleet_pm2 exec "bash $DG_FLEET_SCRIPTS/${DG_SCRIPTS[rollback]} $target" || rc=$?
  dg_fleet_survey
  dg_fleet_report "$target" || exit 1
  ((rc == 0)) || exit "$rc"
}
