"""Main job: top tagging on generated ttbar + QCD with the shipped taggers (local Dask).

    python workflows/top_tagging.py --out out --workers 2

Same as ``hepml-coffea demo`` (the README's first command).
"""

from __future__ import annotations

import argparse

from hepml_coffea.cli.demo import main_job

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--executor", default="dask", choices=["iterative", "futures", "dask", "dask-cuda"])
    a = ap.parse_args()
    main_job(out=a.out, workers=a.workers, events=a.events, executor=a.executor)
