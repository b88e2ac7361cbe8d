#!/usr/bin/env bash
# GPU benchmarks of hepml_coffea, prepared on a CPU machine, run on a GPU host (e.g. one H200).
#
# Beforehand, in the project root on a machine that can download (the GPU host cannot):
#
#   ../shared/device/fetch-wheels.sh safetensors pyyaml psutil
#
# which downloads the coffea / dask / dask-cuda wheels (Python 3.12) into .whl/; the extra
# names are the small pure dependencies of hepml_coffea that the host's Python may lack
# (it already has torch, torch-geometric, numpy, pandas, numba).  Hand the host the project
# tree with .whl/ and, if possible, data/train/ttbar_101.root + data/train/qcd_201.root
# (without them the model stage uses synthetic jets and the processor tests/samples/pfnano.root).
#
# On the GPU host, in the project root, this script first does (skipped with SKIP_INSTALL=1)
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#
# and then runs
#
#   python3 benchmarks/run_all.py --gpu-only --out "$OUT"
#
# which measures: model stage jets/s for every shipped tagger plus full-size ParticleNet
# (registry, random weights: it is not shipped) in fp32, bf16 autocast and torch.compile at
# batch 1024/4096/16384; CPU-vs-GPU fp32 score agreement (<= 1e-5); the TaggerProcessor
# with device cpu / cuda / cuda+bf16 (IterativeExecutor) and on a dask-cuda cluster (share
# of wall time spent tagging).  Results: $OUT/gpu.json, $OUT/gpu.md, $OUT/gpu.log,
# $OUT/nvidia-smi.txt.  Without a GPU it prints "no GPU" and exits 0.
#
# Usage:  OUT=/some/dir bash benchmarks/gpu.sh [extra run_all.py options, e.g. --quick]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"

if [ "${SKIP_INSTALL:-0}" != "1" ] && compgen -G ".whl/*.whl" > /dev/null; then
  echo "+ installing .whl/*.whl into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{ nvidia-smi || echo "nvidia-smi not available"; } > "$OUT/nvidia-smi.txt" 2>&1
"$PY" - <<'PYEOF'
import torch
ok = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "GPU:", torch.cuda.get_device_name(0) if ok else "none")
PYEOF

set -o pipefail
"$PY" benchmarks/run_all.py --gpu-only --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
echo "results in $OUT"
