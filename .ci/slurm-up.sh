#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this Debian machine, for the `batch` tests.
#
#   .ci/slurm-up.sh          # as root (or a user with passwordless sudo)
#   .ci/slurm-down.sh        # stops what this script started
#
# Installs slurm-wlm + munge with apt when they are missing, makes a munge key, writes
# /etc/slurm/slurm.conf for this host (one node = this machine at 127.0.0.1, its CPUs
# and memory as `slurmd -C` reports them; proctrack/linuxproc, task/none, no
# accounting, no cgroups, so it also runs inside containers), starts munged,
# slurmctld and slurmd, and waits until `sinfo` shows the node idle.
#
# An existing slurm.conf that this script did not write is never overwritten: on a
# machine with a real Slurm the script stops and says so.
set -euo pipefail

MARK="# written by hepml-coffea .ci/slurm-up.sh"
CONF=/etc/slurm/slurm.conf
WAIT_S=${SLURM_UP_WAIT_S:-90}

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n -E bash "$0" "$@"
  fi
  echo "slurm-up: needs root (or passwordless sudo) to install and start Slurm" >&2
  exit 2
fi

log() { echo "slurm-up: $*"; }

# ---------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sinfo >/dev/null; then
  log "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then
    mungekey --create --force --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown -R munge:munge /etc/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n </dev/null | unmunge >/dev/null || { echo "slurm-up: munged does not answer" >&2; exit 1; }
fi

# ---------------------------------------------------------------- slurm.conf
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  if sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mixed|allocated'; then
    log "$CONF was not written by this script; using the Slurm it configures (not touching it):"
    sinfo
    exit 0
  fi
  echo "slurm-up: $CONF exists, was not written by this script, and sinfo shows no usable node;" >&2
  echo "          not touching a real Slurm configuration (move $CONF away to use this script)" >&2
  exit 3
fi
HOST=$(hostname -s)
NODE=$(slurmd -C | head -1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
case "$NODE" in
  NodeName=*) ;;
  *) echo "slurm-up: 'slurmd -C' gave no node line: $NODE" >&2; exit 1 ;;
esac
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$CONF.tmp" <<EOF
$MARK -- a one-node test cluster
ClusterName=hepml-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=120
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.tmp" "$CONF"
chmod 644 "$CONF"

# ---------------------------------------------------------------- daemons
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurmctld.pid; then
  log "starting slurmctld"
  /usr/sbin/slurmctld -i   # -i: ignore state left by an earlier run
fi
if ! running /run/slurmd.pid; then
  log "starting slurmd (node $HOST)"
  /usr/sbin/slurmd -N "$HOST"
fi

# ---------------------------------------------------------------- wait for the node
state=""
for _ in $(seq $((WAIT_S * 2))); do
  state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle|mixed|allocated) break ;;
    down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
case "$state" in
  idle|mixed|allocated)
    log "node $HOST is $state:"
    sinfo -N -l
    ;;
  *)
    echo "slurm-up: node $HOST not idle after ${WAIT_S}s (state '${state:-none}')" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
esac
