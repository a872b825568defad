#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (munge, slurmctld, slurmd; no accounting
# daemon) for the workflow's SLURM test. Needs root and Debian's slurmctld, slurmd and munge
# packages (installed here when missing and apt-get is available). Safe to run twice.
# The node declares two GPUs whose device files are null devices, so that jobs asking for GPUs
# are scheduled on a machine without any; what runs on them finds no CUDA.
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "slurmctld/munge missing and no apt-get" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge
fi

if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "slurm already running"; exit 0
fi

node=$(hostname -s)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
# The node's real layout (sockets, cores, threads), with 80 % of its memory.
hw=$(slurmd -C | head -n 1 | sed -e 's/ RealMemory=[0-9]*//' -e 's/ UpTime=.*//')

mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- munged 2>/dev/null || munged --force

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=litesr
SlurmctldHost=${node}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
GresTypes=gpu
${hw} RealMemory=${mem} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=${node} Default=YES MaxTime=INFINITE State=UP
CONF
for i in 0 1; do
  [ -c /var/spool/slurmd/fake-gpu$i ] || mknod /var/spool/slurmd/fake-gpu$i c 1 3
done
echo "NodeName=${node} Name=gpu File=/var/spool/slurmd/fake-gpu[0-1]" > /etc/slurm/gres.conf
rm -f /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do
  # A node drained by an earlier configuration (its saved state) is valid again now.
  if sinfo -h -o %T 2>/dev/null | grep -q '^drained'; then
    scontrol update NodeName="${node}" State=RESUME || true
  fi
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm up: $(sinfo -h -o '%N %c CPUs %m MB %T')"; exit 0
  fi
  sleep 1
done
echo "slurm did not come up; logs in /var/log/slurm" >&2
tail -n 20 /var/log/slurm/*.log >&2 || true
exit 1
