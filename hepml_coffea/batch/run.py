"""Running a processor over a fileset: the coffea Runner, its executors and clusters.

* filesets are read and checked by :mod:`hepml_coffea.data.filesets` (:func:`load_fileset`,
  :func:`check_fileset`), outputs saved by :mod:`hepml_coffea.analysis.outputs`; both re-exported here.
* :func:`hepml_coffea.batch.clusters.make_cluster` starts the Dask cluster a
  :class:`~hepml_coffea.config.RunConfig` asks for (local CPU, local GPUs, Slurm,
  HTCondor); with ``scheduler=ADDR`` the run connects to an existing one.
* :func:`run_fileset` runs a processor and writes the output atomically:
  ``{"datasets": {...}, "run": {...}}``, per-dataset accumulators apart from run metadata.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from hepml_coffea.batch.clusters import CLUSTER_EXECUTORS, make_cluster
from hepml_coffea.config import EXECUTORS, ConfigurationError, RunConfig
from hepml_coffea.data.filesets import FilesetError, check_fileset, load_fileset
from hepml_coffea.analysis.outputs import nonfinite_summary, save_output, stage_report
from hepml_coffea.analysis.processor import TaggerProcessor

log = logging.getLogger(__name__)

__all__ = ["FilesetError", "RunConfig", "load_fileset", "check_fileset", "make_cluster", "coffea_runner",
           "nonfinite_summary", "run_fileset", "stage_report", "save_output"]


def coffea_runner(executor: str, *, client: Any = None, workers: int = 1, chunksize: int = 10000,
                status: bool = True) -> Any:
    """A coffea ``Runner`` for ``iterative``, ``futures`` or a Dask executor (needs ``client``).

    Bad files are handled before the run (:func:`check_fileset`) and corrupt chunks by
    the processor (``skip_bad_inputs``), so the Runner itself never skips anything.
    """
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    if executor == "iterative":
        ex = processor.IterativeExecutor(status=status)
    elif executor == "futures":
        ex = processor.FuturesExecutor(workers=workers, status=status)
    elif executor in CLUSTER_EXECUTORS:
        if client is None:
            msg = "the dask executors need a distributed Client"
            raise ValueError(msg)
        ex = processor.DaskExecutor(client=client, status=status, retries=3, treereduction=8)
    else:
        msg = f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}"
        raise ConfigurationError(msg)
    return processor.Runner(executor=ex, chunksize=chunksize, schema=PFNanoAODSchema,
                            skipbadfiles=False, savemetrics=False)


def run_fileset(
    fileset: str | os.PathLike[str] | Mapping[str, Any],
    processor: TaggerProcessor | None = None,
    *,
    config: RunConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run a processor over ``fileset``; write ``out`` (``coffea.util.save``) atomically.

    Parameters
    ----------
    fileset : ``{dataset: [files]}``, coffea's dict form, or a JSON file of either
    processor : the processor to run (default: :class:`TaggerProcessor` with the shipped
        taggers and ``skip_bad_inputs=config.skip_bad_files``); it holds every physics
        option (taggers, selection, device)
    config : how to execute (:class:`~hepml_coffea.config.RunConfig`; default: a local
        Dask cluster with 2 workers)
    out : output ``.coffea`` path, or ``None`` to only return the result
    client : an existing ``distributed.Client`` (then no cluster is started)

    Returns
    -------
    dict
        ``{"datasets": {name: accumulator}, "run": {...}}``: every dataset of the fileset
        (empty if all its files were skipped); ``run`` holds ``taggers``, ``selection``,
        ``skipped`` (files and chunks left out, each with its event count),
        ``events_skipped``, ``report`` (the stage table), ``executor`` and ``wall_s``.
    """
    config = config or RunConfig()
    if processor is None:
        processor = TaggerProcessor(skip_bad_inputs=config.skip_bad_files)
    elif bool(getattr(processor, "skip_bad_inputs", config.skip_bad_files)) != config.skip_bad_files:
        msg = (f"the processor has skip_bad_inputs={processor.skip_bad_inputs} but the run config has "
               f"skip_bad_files={config.skip_bad_files}; make them agree")
        raise ConfigurationError(msg)
    if client is not None and not config.uses_dask:
        msg = f"a Dask client was given but the run config asks for the {config.executor!r} executor"
        raise ConfigurationError(msg)
    fs, skipped = check_fileset(load_fileset(fileset), skip_bad_files=config.skip_bad_files)
    cluster = None
    own_client = False
    try:
        if config.uses_dask and client is None:
            if config.scheduler:
                from distributed import Client

                client = Client(config.scheduler)
            else:
                fallback = {"allow_cpu_fallback": True} if config.allow_cpu_fallback else {}
                cluster, client = make_cluster(config.executor, config.workers, config.dashboard_address,
                                               **fallback, **config.cluster_options)
            own_client = True
        if client is not None:
            from hepml_coffea.inference.worker import TaggerWarmup

            link = client.dashboard_link
            log.info("Dask dashboard: %s  (stages: %s/individual-fine-performance-metrics)", link,
                     link.rsplit("/", 1)[0])
            client.register_plugin(TaggerWarmup([t.path for t in processor.taggers], processor.device,
                                                processor.amp, backend=processor.tagger.backend))
        runner = coffea_runner(config.executor if client is None else "dask", client=client,
                             workers=config.workers, chunksize=config.chunksize, status=config.status)
        with_files = {ds: e for ds, e in fs.items() if e["files"]}
        t0 = time.perf_counter()
        result: dict[str, Any] = dict(runner(with_files, processor, treename="Events")) if with_files else {}
        wall = time.perf_counter() - t0
    finally:
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            if config.executor in ("slurm", "htcondor"):
                time.sleep(0.2)  # let coffea's progress feed close before the batch scheduler goes
            cluster.close()
    datasets: dict[str, Any] = dict(result.get("datasets", {}))
    for ds in fs:  # every dataset stays, empty when all its files were left out
        if ds not in datasets:
            datasets[ds] = processor.empty_output(ds)["datasets"][ds]
    for s in skipped:
        datasets[s["dataset"]]["skipped"].append(s)
        datasets[s["dataset"]]["cutflow"]["events_skipped"] += int(s.get("events") or 0)
    all_skipped = [s for ds in datasets.values() for s in ds["skipped"]]
    output: dict[str, Any] = {"datasets": datasets}
    output["run"] = {
        "taggers": [t.describe() for t in processor.taggers],
        "selection": processor.selection.describe(),
        "executor": config.executor,
        "chunksize": config.chunksize,
        "wall_s": wall,
        "skipped": all_skipped,
        "events_skipped": sum(int(s.get("events") or 0) for s in all_skipped),
        "nonfinite_inputs": nonfinite_summary(datasets),
        "report": stage_report(output, wall),
    }
    log.info("%s", output["run"]["report"])
    _log_notices(output)
    if out is not None:
        save_output(output, out)
        log.info("wrote %s", out)
    return output


def _log_notices(output: Mapping[str, Any]) -> None:
    """Warn (logger ``hepml_coffea.batch.run``) what was skipped and why nothing was scored."""
    run = output["run"]
    if run["skipped"]:
        lines = [f"{len(run['skipped'])} file(s)/chunk(s) skipped ({run['events_skipped']} events known to be in them):"]
        for s in run["skipped"]:
            n = "?" if s.get("events") is None else s["events"]
            lines.append(f"  {s['dataset']}: {s['file']} [{s.get('entrystart')}:{s.get('entrystop')}] {n} events: "
                         f"{s['reason']}")
        log.warning("%s", "\n".join(lines))
    bad = run.get("nonfinite_inputs") or {}
    if bad.get("jets"):
        worst = ", ".join(f"{k} in {v}" for k, v in list(bad["features"].items())[:5])
        log.warning("notice: %d selected jet(s) in %d chunk(s) had a NaN / inf model input and were not scored "
                    "(cutflow row nonfinite_inputs; per chunk in datasets[...]['nonfinite_inputs']): %s",
                    bad["jets"], bad["chunks"], worst)
    ood: dict[str, list[int]] = {}
    for ds in output["datasets"].values():
        for name, c in (ds.get("tagger_counts") or {}).items():
            acc = ood.setdefault(name, [0, 0])
            acc[0] += int(c.get("out_of_domain", 0))
            acc[1] += int(c.get("scored", 0))
    outside = {n: v for n, v in ood.items() if v[0]}
    if outside:
        log.warning("notice: scored jets outside a tagger's training domain (its working points were set on the "
                    "training sample; tagger_counts[...]['out_of_domain'], hepml-coffea taggers): %s",
                    ", ".join(f"{n} {v[0]} of {v[1]}" for n, v in outside.items()))
    cut = {k: sum(int(ds["cutflow"].get(k, 0)) for ds in output["datasets"].values())
           for k in ("events", "fat_jets", "selected", "scored")}
    if cut["scored"] == 0:
        log.warning(
            "notice: no fat jet was scored. %d events had %d fat jets; the selection (%s) rejected %d of them and "
            "%d selected jets had no constituents, non-finite kinematics or non-finite model inputs. "
            "Widen the selection (hepml-coffea run --pt-min/--pt-max/--eta-max, or Selection(...)).",
            cut["events"], cut["fat_jets"], run["selection"], cut["fat_jets"] - cut["selected"],
            cut["selected"] - cut["scored"])
