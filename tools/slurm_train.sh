#!/usr/bin/env bash
# Training through Slurm: one task per process, rank/world size/master taken from Slurm.
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Env: GPUS (8, total tasks), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
#      GRES (gpu:$GPUS_PER_NODE; set GRES= for a CPU-only partition), PYTHON (python).
#
# Preemptible partitions (docs/resume.md): submit with sbatch --requeue and --signal=USR1@120
# (the tasks get SIGUSR1: checkpoint after the current iteration, exit 75, the job requeues
# itself) or --signal=B:USR1@120 (this script gets it and forwards it, and SIGTERM, to srun,
# which passes it to the tasks). A requeued job (SLURM_RESTART_COUNT >= 1) resumes by itself:
# this script adds --resume (the newest complete checkpoint of WORK_DIR).
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
PY_ARGS=${@:5}
RESUME_ARG=""
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
    RESUME_ARG="--resume"  # last: wins over a --resume PATH of the first submission
fi

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    ${GRES:+--gres=${GRES}} \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" \
    --launcher="slurm" ${PY_ARGS} ${RESUME_ARG} &
SRUN_PID=$!
# bash runs a trap only between commands: srun runs in the background and we wait for it, so
# a signal sent to this script (sbatch --signal=B:..., scancel --batch) reaches the tasks.
trap 'kill -s USR1 "$SRUN_PID" 2>/dev/null' USR1
trap 'kill -s TERM "$SRUN_PID" 2>/dev/null' TERM
while :; do
    wait "$SRUN_PID"
    STATUS=$?
    kill -0 "$SRUN_PID" 2>/dev/null || break  # wait was interrupted by a trapped signal
done
exit "$STATUS"
