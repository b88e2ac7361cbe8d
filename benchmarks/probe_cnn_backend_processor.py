"""The processor with the CNN on its AOTInductor package vs on ONNX Runtime (A/B in one run).

    python benchmarks/probe_cnn_backend_processor.py --ort-cnn DIR

All shipped taggers, backend ``auto``, the benchmark files at chunksize 1,250; the CNN
either the shipped artifact (``cpu_backend: aoti``) or ``DIR``, the same weights recorded
with ONNX Runtime (e.g. ``git archive <commit before> hepml_coffea/artifacts_data/cnn``).
Iterative, then a 1-worker Dask cluster (``make_cluster``); the two variants alternate, best
of rounds 2-3, printed as (wall s, infer s). BENCHMARKS.md, issue 14.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

from _common import bench_files, resolve_taggers, set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ort-cnn", required=True)
    args = ap.parse_args()
    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.analysis.histograms import datasets_of
    from hepml_coffea.batch.run import run_fileset

    set_threads(1)
    tg = resolve_taggers()
    base = [v for k, v in tg.items() if k != 'cnn']
    variants = {'cnn aoti': base + [tg['cnn']], 'cnn ort': base + [args.ort_cnn]}
    fileset = {k: [str(v)] for k, v in bench_files().items()}
    for ex in ('iterative', 'dask'):
        client = cluster = None
        if ex == 'dask':
            cluster, client = make_cluster("dask", 1, "127.0.0.1:0"); client.wait_for_workers(1)
        cfg = RunConfig(executor=ex, chunksize=1250, status=False)
        best = {}
        for rnd in range(3):
            for name, taggers in variants.items():
                proc = TaggerProcessor(taggers=taggers, device="cpu", backend="auto")
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    out = run_fileset(fileset, proc, config=cfg, client=client)
                w = time.perf_counter() - t0
                inf = sum(v['timing'].get('infer', 0) for v in datasets_of(out).values())
                if rnd: best[name] = min(best.get(name, (1e9, 0)), (round(w, 2), round(inf, 2)))
        print(ex, best, flush=True)
        if client: client.close(); cluster.close()

if __name__ == "__main__":
    main()
