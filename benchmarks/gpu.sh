#!/usr/bin/env bash
# GPU figures of hepml_coffea: a thin wrapper around the GPU campaign (issue 12),
#
#   python workflows/gpu_campaign.py --out "$OUT" --budget-s "$BUDGET_S"
#
# which checks the environment, generates training and evaluation jets on every core, trains
# full ParticleNet (and retrains PFN, LSTM, CNN, ParticleNet-Lite) on the GPU, evaluates every
# artifact, benchmarks the model stage (fp32 / bf16 / torch.compile, batch 1k-16k), compares CPU
# and GPU scores and runs the processor on a one-worker dask-cuda cluster. BENCHMARKS.md, section
# "GPU campaign (issue 12)", has the device tool invocation (carry list, timeout), how to prepare
# the wheels (.whl/) beforehand and how to make the plots afterwards.
#
# If .whl/ holds wheels they are installed first into $HOME/site, as
# ../shared/device/fetch-wheels.sh says (skip with SKIP_INSTALL=1).
#
# Usage:  OUT=/some/dir [BUDGET_S=540] bash benchmarks/gpu.sh [more gpu_campaign.py options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-benchmarks/results/gpu_campaign_raw}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if [ "${SKIP_INSTALL:-0}" != "1" ] && compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$HOME/site" .whl/*.whl
  export PYTHONPATH="$HOME/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec "$PY" workflows/gpu_campaign.py --out "$OUT" --budget-s "${BUDGET_S:-540}" "$@"
