"""The processor on a larger sample at the default chunk size: iterative ``backend="torch"``
and ``"auto"``, and a 1-worker Dask cluster with ``"auto"`` (``make_cluster("dask", 1)``: the
issue-14 target setting), interleaved, one thread per process.

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


def _run(fileset: dict[str, list[str]], taggers: list[str], backend: str, client: object = None) -> dict:
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.histograms import datasets_of
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    proc = TaggerProcessor(taggers=taggers, device="cpu", backend=backend)
    cfg = RunConfig(executor="dask" if client is not None else "iterative", status=False)  # default chunksize
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        out = run_fileset(fileset, proc, config=cfg, client=client)
    wall = time.perf_counter() - t0
    stages: dict[str, float] = {}
    jets = 0
    for acc in datasets_of(out).values():
        for k, v in acc.get("timing", {}).items():
            stages[k] = round(stages.get(k, 0.0) + float(v), 2)
        jets += int(acc["cutflow"].get("scored", 0))
    return {"backend": backend, "executor": cfg.executor, "wall_s": round(wall, 2), "stage_seconds": stages, "scored_jets": jets,
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
    from hepml_coffea.batch.clusters import make_cluster

    cluster, client = make_cluster("dask", 1, "127.0.0.1:0")
    runs = []
    try:
        client.wait_for_workers(1)
        _run({"ttbar": args.ttbar[:1]}, taggers, "auto")  # warm caches (numba, files)
        _run({"ttbar": args.ttbar[:1]}, taggers, "auto", client)  # and the worker's models
        for _ in range(args.repeats):
            for backend, c in (("auto", None), ("torch", None), ("auto", client)):
                r = _run(fileset, taggers, backend, c)
                runs.append(r)
                print(json.dumps(r), flush=True)
    finally:
        client.close()
        cluster.close()

    def best(executor: str, backend: str) -> float:
        return min(r["wall_s"] for r in runs if r["backend"] == backend and r["executor"] == executor)

    walls = {"iterative auto": best("iterative", "auto"), "iterative torch": best("iterative", "torch"),
             "dask auto": best("dask", "auto")}
    res = {"events": events, "runs": runs, "best_wall_s": walls,
           "events_per_s": {k: events / w for k, w in walls.items()},
           "iterative_auto_over_torch": walls["iterative torch"] / walls["iterative auto"],
           "dask_auto_over_iterative_torch": walls["iterative torch"] / walls["dask auto"],
           "dask_over_iterative_auto": walls["iterative auto"] / walls["dask auto"],
           "machine": machine_info(), "loadavg_after": loadavg()}
    print(f"{events} events, best of {args.repeats}: " + ", ".join(f"{k} {events / w:,.0f} events/s" for k, w in walls.items())
          + f"; Dask auto / iterative torch {res['dask_auto_over_iterative_torch']:.2f}x, iterative auto / torch "
          f"{res['iterative_auto_over_torch']:.2f}x, Dask / iterative (auto) {res['dask_over_iterative_auto']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
