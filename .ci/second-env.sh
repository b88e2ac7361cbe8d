#!/usr/bin/env bash
# The second environment (issue 21): a user's coffea[dask-awkward] analysis environment.
# `pip install "coffea[dask-awkward]"` resolves dask / distributed 2025.3.x (dask-awkward 2026.2
# needs dask < 2025.4); this package then installs beside it without moving them (our ranges:
# dask >= 2025.3). A focused subset runs there: scoring, the processor on the Dask executor,
# bring-your-own on every executor, the dask-awkward mode. Time-boxed; pip's cache is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.ci/venv-dak
limit="${HEPML_SECOND_ENV_LIMIT:-1500}"   # seconds, install + tests
py="${PYTHON:-python3}"
timeout "$limit" bash -c "
  set -euo pipefail
  [ -x $venv/bin/python ] || $py -m venv $venv
  $venv/bin/pip install -q torch==2.13.0 'coffea[dask-awkward]'
  $venv/bin/pip install -q -e '.[test]'
  $venv/bin/python - <<'PY'
import dask, distributed, dask_awkward
v = tuple(int(x) for x in dask.__version__.split('.')[:2])
print(f'second env: dask {dask.__version__}, distributed {distributed.__version__}, dask-awkward {dask_awkward.__version__}')
assert v < (2025, 4), f'expected the dask coffea[dask-awkward] resolves (2025.3.x), got {dask.__version__}'
PY
  HEPML_REQUIRE_DASK_AWKWARD=1 $venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_dask_awkward.py tests/test_scoring.py tests/test_byo_cli.py tests/test_quiet.py \
    'tests/analysis/test_processor.py::test_executors_identical'
" || { rc=$?; [ $rc -eq 124 ] && echo "second environment: over its ${limit} s time box" >&2; exit $rc; }
