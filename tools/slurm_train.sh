#!/usr/bin/env bash
# Training on a Slurm cluster.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]
# Without WORK_DIR, train.py uses the config's work_dir or ./work_dirs/<config name>.

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
if [ -n "${4:-}" ] && [[ "$4" != -* ]]; then
    WORK_DIR_ARG=(--work-dir="$4")
    PY_ARGS=("${@:5}")
else
    WORK_DIR_ARG=()
    PY_ARGS=("${@:4}")
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$(dirname "$0")/train.py" ${CONFIG} "${WORK_DIR_ARG[@]}" --launcher="slurm" "${PY_ARGS[@]}"
