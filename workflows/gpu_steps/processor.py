"""Step 7, ``processor``: the TaggerProcessor over the evaluation files on a dask-cuda cluster
(:func:`hepml_coffea.batch.run.run_fileset`), cold and warm, with each stage's share of the
worker time from Dask's fine performance metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gpu_steps.common import Campaign, TARGETS


def _scheduler_metrics(dask_scheduler: Any) -> list[tuple[list[Any], float]]:
    return [(list(k) if isinstance(k, tuple) else [k], float(v))
            for k, v in dask_scheduler.cumulative_worker_metrics.items()]


async def _send_heartbeat(dask_worker: Any) -> None:
    await dask_worker.heartbeat()


def _metrics_after_run(client: Any, before: list[tuple[list[Any], float]],
                       wait_s: float = 15.0) -> list[tuple[list[Any], float]]:
    """The scheduler's cumulative fine performance metrics once the run's have arrived.

    Workers send the metrics of finished tasks with their heartbeat, so right after
    ``Runner`` returns the scheduler may not have them yet: ask every worker for a
    heartbeat now, then poll (up to ``wait_s``) until the processor's stages show up
    in the difference to ``before``.
    """
    from hepml_coffea.scoring import STAGES

    deadline = time.monotonic() + wait_s
    while True:
        client.run(_send_heartbeat)
        after = client.run_on_scheduler(_scheduler_metrics)
        if set(STAGES) <= set(stage_shares(before, after)["seconds"]) or time.monotonic() > deadline:
            return after
        time.sleep(0.5)


def stage_shares(before: list[tuple[list[Any], float]], after: list[tuple[list[Any], float]]) -> dict[str, Any]:
    """Seconds per activity of executed tasks (Dask fine performance metrics), as a
    difference of two snapshots, and each activity's share of the total."""
    def table(rows: list[tuple[list[Any], float]]) -> dict[str, float]:
        t: dict[str, float] = {}
        for key, v in rows:
            if len(key) >= 4 and key[0] == "execute" and key[-1] == "seconds":
                t[str(key[-2])] = t.get(str(key[-2]), 0.0) + v
        return t

    a, b = table(before), table(after)
    sec = {k: b[k] - a.get(k, 0.0) for k in b if b[k] - a.get(k, 0.0) > 0}
    total = sum(sec.values())
    return {"seconds": sec, "share": {k: v / total for k, v in sec.items()} if total > 0 else {}, "total_s": total}


def processor_run(camp: Campaign, files: dict[str, list[str]], taggers: list[Path], deadline_s: float) -> dict[str, Any]:
    """The TaggerProcessor on a one-worker dask-cuda cluster (LocalCluster with --smoke):
    a cold run, then a warm one if time allows; wall time, events/s, stage shares."""
    import uproot

    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.histograms import datasets_of
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    executor = "dask" if camp.plan.smoke else "dask-cuda"
    fileset = {f"{proc}_eval": fl for proc, fl in files.items() if fl}
    n_events = sum(uproot.open(f)["Events"].num_entries for fl in fileset.values() for f in fl)
    cluster, client = make_cluster(executor, workers=1, dashboard_address="127.0.0.1:0", threads_per_worker=1)
    res: dict[str, Any] = {"executor": executor, "cluster": type(cluster).__name__, "events": n_events,
                           "files": sum(len(v) for v in fileset.values()), "taggers": [t.name for t in taggers],
                           "runs": []}
    try:
        if executor == "dask-cuda" and type(cluster).__name__ != "LocalCUDACluster":
            msg = f"dask-cuda cluster not started (got {type(cluster).__name__}); see the log for why"
            raise RuntimeError(msg)
        client.wait_for_workers(1, timeout=120)
        proc = TaggerProcessor(taggers=[str(t) for t in taggers], device="auto")
        cfg = RunConfig(executor=executor, workers=1, chunksize=camp.plan.chunksize, status=False,
                        dashboard_address="127.0.0.1:0")
        for label in ("cold",) if camp.plan.smoke else ("cold", "warm"):
            if res["runs"] and camp.elapsed() + 1.3 * res["runs"][-1]["wall_s"] > deadline_s:
                res["runs"].append({"run": label, "skipped": "step deadline"})
                break
            before = client.run_on_scheduler(_scheduler_metrics)
            t0 = time.perf_counter()
            out = run_fileset(fileset, proc, config=cfg, client=client)
            wall = time.perf_counter() - t0
            after = _metrics_after_run(client, before)
            timing: dict[str, float] = {}
            scored = 0
            for acc in datasets_of(out).values():
                for k, v in acc.get("timing", {}).items():
                    timing[k] = timing.get(k, 0.0) + float(v)
                scored += int(acc.get("cutflow", {}).get("scored", 0))
            run = {"run": label, "wall_s": round(wall, 2), "events_per_s": n_events / wall, "scored_jets": scored,
                   "stage_seconds": timing, "tagging_share_of_wall": timing.get("infer", 0.0) / wall,
                   "fine_performance_metrics": stage_shares(before, after)}
            res["runs"].append(run)
            camp.record("processor", res)
            camp.log(f"processor {label}: {n_events / wall:,.0f} events/s, tagging "
                     f"{100 * run['tagging_share_of_wall']:.1f} % of wall")
    finally:
        client.close()
        cluster.close()
    done = [r for r in res["runs"] if "wall_s" in r]
    if done:
        share = done[-1]["tagging_share_of_wall"]
        res["target"] = {"tagging_share_dask_cuda": {"value": share, "target": TARGETS["tagging_share_dask_cuda"],
                                                     "met": share <= TARGETS["tagging_share_dask_cuda"],
                                                     "run": done[-1]["run"]}}
    return res
