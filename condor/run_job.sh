#!/bin/bash
# One HTCondor job of hepml-coffea (written by `hepml-coffea condor split`).
# Usage: run_job.sh JOB_ID   -- reads job_<ID>.json, writes job_<ID>.coffea in the
# job's working directory (HTCondor transfers it back to out/job_<ID>.coffea).
set -eo pipefail
JOB="${1:?usage: run_job.sh JOB_ID}"
export OMP_NUM_THREADS=1
export MKL_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1
export MALLOC_ARENA_MAX=1
export MALLOC_MMAP_MAX_=0
export MALLOC_TRIM_THRESHOLD_=1073741824
export PYTHONUNBUFFERED=1

# --- environment set-up
. /path/to/hepml-venv/bin/activate
# ---

echo "job $JOB on $(hostname) in $(pwd), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
hepml-coffea run --executor iterative --chunksize 10000 --device auto --taggers particlenet-lite pfn --fileset "job_${JOB}.json" --out "job_${JOB}.coffea"
