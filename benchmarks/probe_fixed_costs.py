"""Fixed costs of scoring (issue 24): what every call / chunk pays besides the model work.

Two checkouts side by side in one command (each measurement in a fresh process per tree,
the trees alternated, the best of ``--repeats`` kept; one torch thread):

* ``configure``: ``FatJetTagger(<every shipped tagger>)``, the client side (no scoring);
* ``first call`` / ``call``: scoring ``tests/samples/pfnano.root`` (eager NanoEvents) with
  every shipped tagger: the first call (models loaded) and the median of the next ones;
* ``small call``: the same on the first 20 events, median of 20 calls: per-call overheads;
* ``block``: ``score_constituents`` of one jet through every tagger (median of 30): the
  fixed cost of one block; ``lookup``: the engine look-up the scoring layer makes per
  tagger and block (``get_tagger``), in microseconds;
* ``dask 1 worker``: ``run_fileset`` of 3,000 generated ttbar events, chunksize 1,000,
  ``TaggerProcessor`` with every shipped tagger (``backend="auto"``) on a one-worker local
  cluster (``make_cluster("dask", 1)``; models loaded by ``TaggerWarmup`` before the clock);
  ``iterative torch``: the same with the iterative executor and eager torch.

    python benchmarks/probe_fixed_costs.py --tree before=/path/to/old/checkout --tree after=. \\
        --events data/bench/ttbar_3000.root

``--events`` is made with ``hepml_coffea.samples.generate("ttbar", 3000, 9301, path)`` if
it does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "samples" / "pfnano.root"


def _child(what: str, events_file: str) -> dict[str, float]:
    import warnings

    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from hepml_coffea.artifacts import shipped_taggers

    names = sorted(shipped_taggers())
    if what == "inproc":
        from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

        from hepml_coffea.scoring import FatJetTagger

        events = NanoEventsFactory.from_root({str(SAMPLE): "Events"}, schemaclass=PFNanoAODSchema,
                                             mode="eager").events()
        small = events[:20]
        t0 = time.perf_counter()
        tagger = FatJetTagger(names, device="cpu")
        configure = time.perf_counter() - t0
        t0 = time.perf_counter()
        tagger(events)
        first = time.perf_counter() - t0
        calls = []
        for _ in range(4):
            t0 = time.perf_counter()
            tagger(events)
            calls.append(time.perf_counter() - t0)
        smalls = []
        for _ in range(20):
            t0 = time.perf_counter()
            tagger(small)
            smalls.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        FatJetTagger(names, device="cpu")
        configure2 = time.perf_counter() - t0
        # one block of one jet through every tagger: the fixed cost of a block
        import numpy as np

        from hepml_coffea.data.constituents import fatjet_constituents

        jc = fatjet_constituents(events, cand_fields=tagger.cand_fields, jet_fields=tagger.jet_fields,
                                 sv_fields=tagger.sv_fields)
        one = np.zeros(len(jc), dtype=bool)
        one[np.flatnonzero(jc.valid)[0]] = True
        jc1 = jc.select(one)
        blocks = []
        for _ in range(30):
            t0 = time.perf_counter()
            tagger.score_constituents(jc1)
            blocks.append(time.perf_counter() - t0)
        # the engine look-up the scoring layer makes per tagger and block
        import inspect

        from hepml_coffea.inference.engine import get_tagger

        by_hash = "hash" in inspect.signature(get_tagger).parameters
        t0 = time.perf_counter()
        for _ in range(200):
            for t in tagger.taggers:
                if by_hash:
                    get_tagger(t.path, "cpu", None, backend="auto", hash=t.hash)
                else:
                    get_tagger(t.path, "cpu", None, backend="auto")
        lookup = (time.perf_counter() - t0) / (200 * len(tagger.taggers))
        return {"configure_s": configure, "configure_again_s": configure2, "first_call_s": first,
                "call_s": statistics.median(calls), "small_call_ms": 1e3 * statistics.median(smalls),
                "block_1jet_ms": 1e3 * statistics.median(blocks), "lookup_us": 1e6 * lookup,
                "jets": int(sum(len(x) for x in tagger.score(events).scores.values()) / len(names))}
    import contextlib
    import io

    from hepml_coffea.config import RunConfig

    try:
        from hepml_coffea.analysis.processor import TaggerProcessor
    except ImportError:  # pragma: no cover - older layout
        from hepml_coffea.processor import TaggerProcessor  # type: ignore[no-redef]
    try:
        from hepml_coffea.batch.run import run_fileset
    except ImportError:  # pragma: no cover - older layout
        from hepml_coffea.run import run_fileset  # type: ignore[no-redef]
    executor, backend = ("dask", "auto") if what == "dask" else ("iterative", "torch")
    proc = TaggerProcessor(taggers=names, device="cpu", backend=backend)
    cfg = RunConfig(executor=executor, workers=1, chunksize=1000, status=False, dashboard_address="127.0.0.1:0")
    fileset = {"ttbar": [events_file]}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if executor == "iterative":  # models loaded before the clock, as TaggerWarmup does on a worker
            from hepml_coffea.inference.engine import get_tagger

            for t in proc.taggers:
                get_tagger(t.path, "cpu", None, backend=backend)
            out = run_fileset(fileset, proc, config=cfg)
        else:  # the cluster of `hepml-coffea run`; closed here, where a slow shutdown is not an error
            from hepml_coffea.batch.clusters import make_cluster

            cluster, client = make_cluster("dask", 1, "127.0.0.1:0")
            try:
                out = run_fileset(fileset, proc, config=cfg, client=client)
            finally:
                with contextlib.suppress(Exception):
                    client.close()
                    cluster.close(timeout=60)
    jets = sum(int(v["cutflow"].get("scored", 0)) for v in out["datasets"].values())
    wall = float(out["run"]["wall_s"])
    return {"wall_s": wall, "jets": jets, "jets_per_s": jets / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, help="LABEL=CHECKOUT (repeatable)")
    ap.add_argument("--events", default=str(ROOT / "data" / "bench" / "ttbar_9301_3000.root"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=("inproc", "dask", "iterative"), action="append")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.events)))
        return
    if not Path(args.events).exists():
        from hepml_coffea.samples import generate

        generate("ttbar", 3000, 9301, args.events)
    trees = dict(t.split("=", 1) for t in args.tree)
    results: dict[str, dict[str, dict[str, float]]] = {label: {} for label in trees}
    for what in args.only or ("inproc", "dask", "iterative"):
        for _ in range(args.repeats):
            for label, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()), "OMP_NUM_THREADS": "1"}
                got = subprocess.run([sys.executable, __file__, "--child", what, "--events", args.events,
                                      "--tree", "x=."], env=env, capture_output=True, text=True, check=False)
                if got.returncode != 0:
                    print(f"{label} {what} failed:\n{got.stderr[-3000:]}", file=sys.stderr)
                    continue
                row = json.loads(got.stdout.strip().splitlines()[-1])
                best = results[label].setdefault(what, row)
                for k, v in row.items():  # the best of the repeats: times lowest, rates highest
                    best[k] = max(best[k], v) if k.endswith("per_s") or k == "jets" else min(best[k], v)
                print(f"{label:>8} {what:>9}: {row}", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
