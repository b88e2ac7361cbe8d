"""Where a 1-worker Dask run of the processor spends its wall time: the worker's task stream.

    python benchmarks/probe_dask_taskstream.py

All shipped taggers, backend ``auto``, the benchmark files, chunksize 1,250, on
``clusters.make_cluster("dask", 1)`` after two warm-up runs. Prints the run's wall time and
each task's start and stop relative to the call (time before the first chunk task is spent on
the client; gaps between tasks would be scheduling). BENCHMARKS.md, issue 14.
"""

from __future__ import annotations

import contextlib
import io
import time

from _common import bench_files, resolve_taggers, set_threads


def main() -> None:
    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    set_threads(1)
    taggers = list(resolve_taggers().values())
    fileset = {k: [str(v)] for k, v in bench_files().items()}
    cluster, client = make_cluster("dask", 1, "127.0.0.1:0")
    try:
        client.wait_for_workers(1)
        proc = TaggerProcessor(taggers=taggers, device="cpu", backend="auto")
        cfg = RunConfig(executor="dask", chunksize=1250, status=False)

        def go() -> dict:
            with contextlib.redirect_stdout(io.StringIO()):
                return run_fileset(fileset, proc, config=cfg, client=client)

        go()
        go()
        client.get_task_stream()  # starts recording from here
        t0 = time.time()
        out = go()
        wall = time.time() - t0
        stream = client.get_task_stream()
        print(f"call {wall:.3f} s, run['wall_s'] {out['run']['wall_s']:.3f} s\n")
        print("| task | start s | stop s |\n|---|---:|---:|")
        rows = [(ss["start"] - t0, ss["stop"] - t0, t["key"] if isinstance(t["key"], str) else t["key"][0])
                for t in stream for ss in t["startstops"] if ss["action"] == "compute"]
        for start, stop, key in sorted(rows):
            print(f"| {key.split('-')[0]} | {start:.3f} | {stop:.3f} |")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
