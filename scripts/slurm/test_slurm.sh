#!/usr/bin/env bash
# Runs scripts/slurm/explain_array.sbatch for real on a single-node Slurm made on this machine:
# installs Debian's slurm-wlm and munge when missing (needs root), starts munged, slurmctld and
# slurmd on localhost with a private configuration, submits a 3-task job array on the CPU path,
# merges the shards with `emolime merge` and checks that the merged dataset equals one
# uninterrupted run byte for byte; everything it started is stopped at the end.
#
#   bash scripts/slurm/test_slurm.sh [path/to/emolime]     (default: target/release/emolime)
#
# The integration test `runs::slurm_job_array_covers_the_corpus_once` runs this when
# EMOLIME_SLURM_TEST=1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-target/release/emolime}")"
[ -x "$bin" ] || { echo "no emolime binary at $bin (cargo build --release first)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

work="$(mktemp -d /tmp/emolime-slurm.XXXXXX)"
host="$(hostname -s)"
conf="$work/slurm.conf"
started_munge=0
cleanup() {
    # The pids are read before the shutdown: a daemon that stops removes its pid file, and a
    # `cat` of a file gone between the test and the read would fail the script (set -e).
    local pids=""
    for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid"; do
        pids="$pids $(cat "$pidfile" 2>/dev/null || true)"
    done
    SLURM_CONF="$conf" scontrol shutdown >/dev/null 2>&1 || true
    # The shutdown is asynchronous: wait for the daemons, then insist.
    for _ in $(seq 1 50); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    if [ "$started_munge" = 1 ]; then pkill -x munged || true; fi
    if [ "${EMOLIME_SLURM_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# munge: the key comes with the package; run the daemon if none is.
if ! pgrep -x munged >/dev/null; then
    [ -f /etc/munge/munge.key ] || mungekey --create
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    started_munge=1
fi

mkdir -p "$work/state" "$work/spool"
# Ports away from the defaults, so a real Slurm on this machine is not disturbed.
cat > "$conf" <<CONF
ClusterName=emolimetest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16917
SlurmdPort=16918
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then break; fi
    sleep 1
done
sinfo -h -o '%P %D %T' | grep -qE 'idle|mixed|allocated' || {
    echo "slurm did not come up:" >&2; tail -20 "$work/slurmctld.log" "$work/slurmd.log" >&2; exit 1; }
echo "slurm up: $(sinfo -h -o '%P %D %T %C')"

cd "$work"
"$bin" synth --out corpus --per-class 3 >/dev/null
"$bin" train --input corpus/manifest.csv --out m.emolime --device cpu >/dev/null
timeout 600 sbatch --wait --array=0-2 --chdir="$work" --output="$work/task-%a.log" \
    --export=ALL,EMOLIME_BIN="$bin",EMOLIME_MODEL="$work/m.emolime",EMOLIME_INPUT="$work/corpus/manifest.csv",EMOLIME_OUT="$work/runs",EMOLIME_DEVICE=cpu,EMOLIME_ARGS="--samples 64 --quiet" \
    "$here/explain_array.sbatch" || { echo "job array failed:" >&2; tail -n 20 "$work"/task-*.log >&2; exit 1; }
for i in 0 1 2; do
    grep -h "explained" "$work/task-$i.log" | sed "s/^/task $i: /"
done
"$bin" merge runs/shard-0 runs/shard-1 runs/shard-2 --out merged > merge.log
head -n 1 merge.log
"$bin" explain --model "$work/m.emolime" --input "$work/corpus/manifest.csv" --out whole --device cpu --samples 64 --quiet >/dev/null
for f in explanations.jsonl explanations.parquet failures.jsonl; do
    cmp "merged/$f" "whole/$f" || { echo "merged $f differs from one whole run" >&2; exit 1; }
done
"$bin" compare merged whole --tolerance 0 > compare.log
head -n 1 compare.log
lines=$(wc -l < merged/explanations.jsonl)
[ "$lines" -eq 48 ] || { echo "expected 12 utterances x 4 classes, got $lines lines" >&2; exit 1; }
echo "slurm job array: 3 tasks, 12 utterances each explained once, merged = whole run"
