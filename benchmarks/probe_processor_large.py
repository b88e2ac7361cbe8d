"""The processor on a larger sample at the default chunk size: iterative, ``backend="torch"``
vs ``"auto"``, interleaved, one thread.

    python benchmarks/probe_processor_large.py --ttbar F [F ...] --qcd F [F ...] [--repeats 2]

The issue-14 setting (10,000 ttbar + 40,000 QCD events, ``RunConfig`` defaults: chunksize
10,000) instead of the 5,000-event benchmark files at chunksize 1,250: per-run and per-chunk
fixed costs weigh less, so the ratio approaches that of the model stage. The files are any
generated ones, e.g. ``hepml-coffea generate`` output or the evaluation set of TAGGERS.md.
Prints each run (wall seconds, stage seconds, scored jets) and the ratio of the best runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

from _common import loadavg, machine_info, n_entries, resolve_taggers, set_threads


def _run(fileset: dict[str, list[str]], taggers: list[str], backend: str) -> dict:
    from hepml_coffea.config import RunConfig
    from hepml_coffea.histograms import datasets_of
    from hepml_coffea.processor import TaggerProcessor
    from hepml_coffea.run import run_fileset

    proc = TaggerProcessor(taggers=taggers, device="cpu", backend=backend)
    cfg = RunConfig(executor="iterative", status=False)  # default chunksize
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        out = run_fileset(fileset, proc, config=cfg)
    wall = time.perf_counter() - t0
    stages: dict[str, float] = {}
    jets = 0
    for acc in datasets_of(out).values():
        for k, v in acc.get("timing", {}).items():
            stages[k] = round(stages.get(k, 0.0) + float(v), 2)
        jets += int(acc["cutflow"].get("scored", 0))
    return {"backend": backend, "wall_s": round(wall, 2), "stage_seconds": stages, "scored_jets": jets,
            "chunksize": cfg.chunksize}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ttbar", nargs="+", required=True)
    ap.add_argument("--qcd", nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    set_threads(1)
    taggers = list(resolve_taggers().values())
    fileset = {"ttbar": args.ttbar, "qcd": args.qcd}
    events = n_entries(args.ttbar + args.qcd)
    _run({"ttbar": args.ttbar[:1]}, taggers, "auto")  # warm caches (numba, files)
    runs = []
    for _ in range(args.repeats):
        for backend in ("auto", "torch"):
            r = _run(fileset, taggers, backend)
            runs.append(r)
            print(json.dumps(r), flush=True)
    best = {b: min(r["wall_s"] for r in runs if r["backend"] == b) for b in ("auto", "torch")}
    res = {"events": events, "runs": runs, "best_wall_s": best,
           "events_per_s": {b: events / w for b, w in best.items()},
           "auto_over_torch": best["torch"] / best["auto"], "machine": machine_info(), "loadavg_after": loadavg()}
    print(f"{events} events: iterative auto {events / best['auto']:,.0f} events/s, torch "
          f"{events / best['torch']:,.0f} events/s, auto / torch {res['auto_over_torch']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
