#!/usr/bin/env bash
# The container's supervisor: starts the KCL daemons and/or the feature sidecar, forwards SIGTERM/SIGINT to
# every one of them, waits for them, and stops the others when one dies so that the container (and the ECS
# task) ends and is replaced.
#
#   scripts/launch.sh [ROLE]          ROLE: the argument, else $ROLE, else `all`
#     all              the three KCL daemons and the sidecar in one container (single-container deployment)
#     daemon:<kind>    one KCL daemon, kind = trade | bestbidask | depth (one ECS container per stream)
#     sidecar          the feature sidecar (/health on health.port, Prometheus /metrics)
#
# Children: `scripts/kcl-daemon.sh <kind>` (which execs Java) and `node dist/src/cli/main.js sidecar`. Each runs in a
# session of its own (setsid): a signal sent to this script's process group (a terminal's Ctrl-C, `tini -g`)
# never reaches the daemons' processor children directly (they must outlive the daemon's graceful shutdown,
# aws-kcl issue #451); the daemons hear it only from here, once, as the signal this script received.
#
# Stopping: on SIGTERM or SIGINT, SIGTERM goes to every child; the daemons hand their leases off within
# kcl.shutdown_grace_millis and exit. SIGINT is forwarded as SIGTERM because the children of a non-interactive
# shell start with SIGINT ignored, and a JVM started that way installs no SIGINT handler: a forwarded SIGINT
# would never reach the daemon's shutdown hook. A child still running LAUNCH_STOP_TIMEOUT_SECONDS later is killed with its
# whole session (SIGKILL), which counts as a failure. Keep the timeout above kcl.shutdown_grace_millis and
# below the orchestrator's own (ECS stopTimeout, deploy/ecs/task-definition.json).
# An exit status of 0, or 143 = 128 + SIGTERM (the JVM's status after its shutdown hooks), is a clean
# stop. A child that exits while nothing asked it to (whatever its status) is a failure: the others are
# stopped the same way. Exit status: 0 when every child stopped cleanly after a signal, 1 otherwise, 2 for a
# bad role.
#
# Environment: CONFIG_FILE, KCL_WORKER_ID, KCL_PROFILE, JAVA_OPTS (read by kcl-daemon.sh), SIDECAR_ID (the
# sidecar's --id), AGGREGATOR_TASK_ID (the task identity, default the hostname: passed on to every child, and by the
# daemons to their processors, so the sidecar's /metrics exports this task's processors), LAUNCH_STOP_TIMEOUT_SECONDS
# (default 45).
# Test hook: LAUNCH_DRY_COMMANDS=<dir> runs `<dir>/daemon <kind>` and `<dir>/sidecar` instead of the two real
# commands; everything else (roles, signals, supervision, exit status) is this same code.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The pinned Node.js LTS (.nvmrc); in the image it is the system node.
source "$root/scripts/node-runtime.sh" || exit 1

log() { echo "launch: $*" >&2; }

role="${1:-${ROLE:-all}}"
case "$role" in
  all) daemons=(trade bestbidask depth); with_sidecar=1 ;;
  daemon:trade | daemon:bestbidask | daemon:depth) daemons=("${role#daemon:}"); with_sidecar=0 ;;
  sidecar) daemons=(); with_sidecar=1 ;;
  *)
    log "unknown role '$role' (expected all, daemon:trade, daemon:bestbidask, daemon:depth or sidecar)"
    exit 2
    ;;
esac

stop_timeout="${LAUNCH_STOP_TIMEOUT_SECONDS:-45}"
if ! [[ "$stop_timeout" =~ ^[0-9]+$ ]] || ((stop_timeout < 1)); then
  log "LAUNCH_STOP_TIMEOUT_SECONDS must be a positive integer, got '$stop_timeout'"
  exit 2
fi

dry="${LAUNCH_DRY_COMMANDS:-}"
if [[ -n "$dry" ]]; then
  daemon_cmd=("$dry/daemon")
  sidecar_cmd=("$dry/sidecar")
else
  daemon_cmd=(bash "$root/scripts/kcl-daemon.sh")
  sidecar_cmd=(node "$root/dist/src/cli/main.js" sidecar)
  [[ -n "${SIDECAR_ID:-}" ]] && sidecar_cmd+=(--id "$SIDECAR_ID")
fi

declare -A live=() # pid -> name of the children still running
stopping=""        # empty while running; else why everything is being stopped
timer=""           # pid of the stop deadline (a sleep), once stopping
status=0

stop_children() { # <signal>: sends it to every child still running
  local pid
  for pid in "${!live[@]}"; do kill -s "$1" "$pid" 2>/dev/null || true; done
}

begin_stop() { # <reason>
  stopping=$1
  if ((${#live[@]} > 0)); then
    log "$1: sending SIGTERM to ${live[*]}; waiting up to ${stop_timeout}s for them to stop"
    stop_children TERM
  fi
  sleep "$stop_timeout" &
  timer=$!
}

on_signal() { # <signal>
  if [[ -z "$stopping" ]]; then
    begin_stop "received SIG$1"
  else
    log "received SIG$1 again; sending SIGTERM again to ${live[*]:-nothing}"
    stop_children TERM
  fi
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

start() { # <name> <command...>
  local name=$1
  shift
  setsid "$@" &
  live[$!]=$name
  log "started $name (pid $!): $*"
}

for kind in "${daemons[@]}"; do start "daemon:$kind" "${daemon_cmd[@]}" "$kind"; done
((with_sidecar)) && start sidecar "${sidecar_cmd[@]}"

while ((${#live[@]} > 0)); do
  pid=""
  # shellcheck disable=SC2086
  wait -n -p pid "${!live[@]}" $timer
  rc=$?
  [[ -z "${pid:-}" ]] && continue # interrupted by a trapped signal: the loop waits again
  if [[ "$pid" == "$timer" ]]; then
    log "still running ${stop_timeout}s after SIGTERM: ${live[*]}; killing them (SIGKILL, whole session)"
    for p in "${!live[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
    status=1
    timer=""
    continue
  fi
  name=${live[$pid]}
  unset "live[$pid]"
  if [[ -z "$stopping" ]]; then
    log "$name (pid $pid) exited unexpectedly with status $rc"
    status=1
    begin_stop "$name exited"
  elif ((rc == 0 || rc == 143)); then
    log "$name (pid $pid) stopped (status $rc)"
  else
    log "$name (pid $pid) exited with status $rc while stopping"
    status=1
  fi
done
[[ -n "$timer" ]] && kill "$timer" 2>/dev/null
log "every child has exited; exit status $status"
exit "$status"
