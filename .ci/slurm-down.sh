#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by .ci/slurm-up.sh: cancel its jobs, stop
# slurmd, slurmctld and munged (by their pid files). A Slurm whose slurm.conf this
# project did not write is left alone.
set -euo pipefail

MARK="# written by hepml-coffea .ci/slurm-up.sh"
CONF=/etc/slurm/slurm.conf

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n -E bash "$0" "$@"
  fi
  echo "slurm-down: needs root (or passwordless sudo)" >&2
  exit 2
fi
if [ ! -e "$CONF" ] || ! grep -qF "$MARK" "$CONF"; then
  echo "slurm-down: no Slurm started by .ci/slurm-up.sh here ($CONF missing or not ours); nothing to stop"
  exit 0
fi

stop() {  # stop NAME PIDFILE
  local pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm-down: stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

scancel --full --quiet --user=root 2>/dev/null || true
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
