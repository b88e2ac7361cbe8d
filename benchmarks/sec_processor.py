"""The processor end to end, side by side in one run (issue 14), one thread per process.

All shipped taggers, the same fileset and chunk size, ``run_fileset``:

* ``iterative, backend=torch``: one process, eager torch (the reference of issue 14);
* ``iterative, backend=auto``: one process, the backend recorded per artifact;
* ``dask 1 worker, backend=auto``: ``clusters.make_cluster("dask", 1)``, i.e. the worker
  started with ``worker_environment()`` (default settings of ``hepml-coffea run``);
* ``dask 1 worker, backend=torch``: the same cluster, eager torch;
* ``dask 1 worker, Dask's defaults, backend=torch``: a plain ``LocalCluster`` (nanny
  ``MALLOC_TRIM_THRESHOLD_=65536``), i.e. the situation issue 14 reported;
* ``dask 2 workers, backend=auto``: scaling.

Models are loaded before the clock starts (engine cache in the iterative process,
``TaggerWarmup`` on workers), and every process first runs a small warm-up fileset. Peak RSS of the worker process is read after each Dask run
(fresh cluster per configuration).

    python benchmarks/sec_processor.py [--quick]
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from _common import TARGETS, Context, fmt, log, n_entries, set_threads


def _worker_peak_mb() -> float:
    from _common import peak_rss_mb

    return peak_rss_mb()


def _best_run(repeats: int, *args: Any, **kw: Any) -> dict[str, Any]:
    """The fastest of ``repeats`` identical runs (the machine may be shared)."""
    runs = [_run(*args, **kw) for _ in range(max(1, repeats))]
    return min(runs, key=lambda r: r["wall_s"])


def _run(fileset: dict[str, list[str]], taggers: list[str], backend: str, executor: str, chunksize: int,
         client: Any = None) -> dict[str, Any]:
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.histograms import datasets_of
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    proc = TaggerProcessor(taggers=taggers, device="cpu", backend=backend)
    cfg = RunConfig(executor=executor, workers=1, chunksize=chunksize, status=False, dashboard_address="127.0.0.1:0")
    with contextlib.redirect_stdout(io.StringIO()):
        out = run_fileset(fileset, proc, config=cfg, client=client)
    timing: dict[str, float] = {}
    jets = 0
    for v in datasets_of(out).values():
        for k, s in v.get("timing", {}).items():
            timing[k] = timing.get(k, 0.0) + float(s)
        jets += int(v["cutflow"].get("scored", 0))
    return {"wall_s": float(out["run"]["wall_s"]), "stage_seconds": timing, "jets": jets}


def run(ctx: Context) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.inference.engine import get_tagger
    from hepml_coffea.inference.worker import warm_up

    set_threads(1)
    fileset = ctx.fileset(600) if ctx.quick else ctx.fileset()
    chunksize = 300 if ctx.quick else 1250
    repeats = 1 if ctx.quick else 2
    n_events = n_entries([f for fs in fileset.values() for f in fs])
    taggers = list(ctx.taggers.values())
    rows: list[dict[str, Any]] = []

    def record(label: str, executor: str, backend: str, workers: int, r: dict[str, Any], **extra: Any) -> None:
        r.update({"run": label, "executor": executor, "backend": backend, "workers": workers, "events": n_events,
                  "events_per_s": n_events / r["wall_s"], **extra})
        rows.append(r)
        log(f"  {label}: {r['events_per_s']:,.1f} events/s (wall {r['wall_s']:.1f} s, "
            f"infer {r['stage_seconds'].get('infer', float('nan')):.1f} s)")

    warm = ctx.fileset(200)
    for backend in ("torch", "auto"):
        for p in taggers:  # what TaggerWarmup does on a worker
            warm_up(get_tagger(p, "cpu", backend=backend))
    _run(fileset, taggers, "auto", "iterative", chunksize)  # warm caches (numba, file system)
    for backend in ("torch", "auto"):
        record(f"iterative, backend={backend}", "iterative", backend, 1,
               _best_run(repeats, fileset, taggers, backend, "iterative", chunksize))

    def dask_runs(label: str, make: Any, backends: tuple[str, ...], workers: int) -> None:
        cluster, client = make()
        try:
            client.wait_for_workers(workers)
            for backend in backends:  # first chunks on fresh workers: imports, numba kernels, caches
                _run(warm, taggers, backend, "dask", 100, client=client)
            for backend in backends:
                r = _best_run(repeats, fileset, taggers, backend, "dask", chunksize, client=client)
                peak = max(client.run(_worker_peak_mb).values())
                record(f"{label}, backend={backend}", "dask", backend, workers, r, worker_peak_rss_mb=peak)
        finally:
            client.close()
            cluster.close()

    for backend in ("auto", "torch"):  # a fresh cluster each, so the peak RSS is that run's
        dask_runs("dask 1 worker", lambda: make_cluster("dask", 1, "127.0.0.1:0"), (backend,), 1)

    def plain() -> tuple[Any, Any]:
        # Dask's own defaults. A nanny copies its pre-spawn variables into this process's
        # os.environ, which then take precedence over the config: take ours out first.
        import os

        import dask

        from hepml_coffea.inference.worker import worker_environment

        for k in worker_environment():
            os.environ.pop(k, None)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536}}):
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0", host="127.0.0.1")
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # the nanny left it here; later clusters must not inherit it
        client = Client(cluster)
        env = next(iter(client.run(lambda: {k: os.environ.get(k) for k in worker_environment()}).values()))
        if env != {"MALLOC_ARENA_MAX": None, "MALLOC_MMAP_MAX_": None, "MALLOC_TRIM_THRESHOLD_": "65536"}:
            msg = f"the 'Dask default' worker does not have Dask's default environment: {env}"
            raise RuntimeError(msg)
        return cluster, client

    dask_runs("dask 1 worker, Dask's default environment", plain, ("torch",), 1)
    if not ctx.quick:
        dask_runs("dask 2 workers", lambda: make_cluster("dask", 2, "127.0.0.1:0"), ("auto",), 2)

    def rate(label: str) -> float | None:
        return next((r["events_per_s"] for r in rows if r["run"] == label), None)

    it_torch, it_auto = rate("iterative, backend=torch"), rate("iterative, backend=auto")
    dk_auto, dk_torch = rate("dask 1 worker, backend=auto"), rate("dask 1 worker, backend=torch")
    targets = {}
    if it_torch and dk_auto:
        v = dk_auto / it_torch
        targets["dask_default_vs_iterative_torch"] = {"value": v, "target": TARGETS["dask_vs_iterative_torch"],
                                                      "met": v >= TARGETS["dask_vs_iterative_torch"]}
    if it_auto and dk_auto and it_torch and dk_torch:
        v = min(dk_auto / it_auto, dk_torch / it_torch)
        targets["dask_vs_iterative_same_backend"] = {"value": v, "target": TARGETS["dask_vs_iterative_same"],
                                                     "met": v >= TARGETS["dask_vs_iterative_same"]}
    two = rate("dask 2 workers, backend=auto")
    if two and dk_auto:
        targets["dask_scaling_2_vs_1"] = {"value": two / dk_auto, "target": TARGETS["dask_scaling"],
                                          "met": two / dk_auto >= TARGETS["dask_scaling"]}
    return {"rows": rows, "events": n_events, "chunksize": chunksize, "taggers": list(ctx.taggers), "targets": targets,
            "setup": "run_fileset, all shipped taggers, 1 thread per process; models loaded before timing; "
                     f"wall = run['wall_s'], best of {repeats}"}


def markdown(res: dict[str, Any]) -> list[str]:
    out = [f"{res['events']} events ({', '.join(res['taggers'])}), chunksize {res['chunksize']}.", "",
           "| run | events/s | wall s | infer s | worker peak RSS MB |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append(f"| {r['run']} | {fmt(r['events_per_s'], 1)} | {fmt(r['wall_s'], 1)} | "
                   f"{fmt(r['stage_seconds'].get('infer'), 1)} | {fmt(r.get('worker_peak_rss_mb'))} |")
    return out


if __name__ == "__main__":
    from _common import standalone

    standalone(run, markdown)
