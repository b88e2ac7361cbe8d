"""Running the TaggerProcessor: filesets, the coffea Runner and its executors, local clusters.

* :func:`load_fileset` reads ``{dataset: [files]}`` or coffea's
  ``{dataset: {"files": {path: treename}, "metadata": {...}}}`` (dict or JSON path).
* :func:`check_fileset` opens every file before the run and names what is wrong
  (missing file, unreadable/truncated file, missing tree); with ``skip_bad_files`` the
  file is left out and recorded instead.
* :func:`hepml_coffea.clusters.make_cluster` starts the Dask cluster a
  :class:`~hepml_coffea.config.RunConfig` asks for (local CPU, local GPUs, Slurm,
  HTCondor); with ``scheduler=ADDR`` the run connects to an existing one.
* :func:`run_fileset` runs a processor and writes the output atomically:
  ``{"datasets": {...}, "run": {...}}``, per-dataset accumulators apart from run metadata.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uproot

from hepml_coffea.clusters import make_cluster
from hepml_coffea.config import EXECUTORS, ConfigurationError, RunConfig
from hepml_coffea.histograms import datasets_of
from hepml_coffea.processor import TaggerProcessor

__all__ = ["FilesetError", "RunConfig", "load_fileset", "check_fileset", "make_cluster", "make_runner",
           "run_fileset", "stage_report", "save_output"]


class FilesetError(ValueError):
    """A fileset entry is wrong: missing file, bad tree name, unreadable file."""


def load_fileset(fileset: str | os.PathLike[str] | Mapping[str, Any], treename: str = "Events") -> dict[str, dict[str, Any]]:
    """Normalise a fileset to ``{dataset: {"files": {path: treename}, "metadata": {...}}}``."""
    if not isinstance(fileset, Mapping):
        path = Path(fileset)
        if not path.is_file():
            msg = f"fileset JSON {path} does not exist"
            raise FilesetError(msg)
        try:
            fileset = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            msg = f"fileset JSON {path} is not valid JSON: {err}"
            raise FilesetError(msg) from err
        base = path.parent
    else:
        base = Path.cwd()
    if not isinstance(fileset, Mapping) or not fileset:
        msg = "a fileset must be a non-empty mapping {dataset: files}"
        raise FilesetError(msg)
    out: dict[str, dict[str, Any]] = {}
    for ds, entry in fileset.items():
        meta: dict[str, Any] = {}
        if isinstance(entry, Mapping) and "files" in entry:
            files = entry["files"]
            meta = dict(entry.get("metadata", {}) or {})
        else:
            files = entry
        if isinstance(files, str):
            files = [files]
        if isinstance(files, Mapping):
            fmap = {str(k): (v or treename) for k, v in files.items()}
        else:
            fmap = {str(f): treename for f in files}
        resolved = {}
        for f, tree in fmap.items():
            p = Path(f)
            if not p.is_absolute() and "://" not in f:
                p = base / p
            resolved[str(p) if "://" not in f else f] = tree
        out[str(ds)] = {"files": resolved, "metadata": meta}
    return out


def _file_problem(f: str, tree: str) -> tuple[str | None, int | None]:
    """What is wrong with one file (``None`` if usable) and its event count if readable."""
    if "://" not in f:
        p = Path(f)
        if p.is_dir():
            return "is a directory, not a ROOT file", None
        if not p.exists():
            return "file does not exist", None
        if not p.is_file():
            return "is not a regular file", None
    try:
        with uproot.open(f) as fh:
            if tree not in fh:
                trees = [k.split(";")[0] for k, c in fh.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
                return f"no tree {tree!r} in the file (trees: {trees})", None
            n = int(fh[tree].num_entries)
            size = os.path.getsize(f) if "://" not in f else None
            if size is not None and size < fh.file.fEND:
                return f"truncated ({size} bytes, its header says {fh.file.fEND})", n
            return None, n
    except Exception as err:  # noqa: BLE001 - any read failure names the file
        first = str(err).splitlines()[0][:200] if str(err) else ""
        return f"cannot be read ({type(err).__name__}: {first})", None


def check_fileset(fileset: Mapping[str, Any], skip_bad_files: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open every file before the run.

    Returns
    -------
    (usable fileset, skipped records)
        Each skipped record names ``dataset``, ``file``, ``reason`` and ``events`` (the
        file's event count where its header could still be read, else ``None``). A dataset
        whose every file is bad stays in the usable fileset with no files, so it still
        appears (empty) in the output.

    Raises
    ------
    FilesetError : on the first bad file unless ``skip_bad_files``.
    """
    good: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    for ds, entry in fileset.items():
        files = {}
        for f, tree in entry["files"].items():
            problem, n_events = _file_problem(f, tree)
            if problem is None:
                files[f] = tree
                continue
            if not skip_bad_files:
                msg = f"dataset {ds!r}: {f}: {problem}"
                raise FilesetError(msg)
            skipped.append({"dataset": ds, "file": f, "entrystart": None, "entrystop": None,
                            "events": n_events, "reason": problem})
        good[ds] = {**entry, "files": files}
    return good, skipped


def make_runner(executor: str, *, client: Any = None, workers: int = 1, chunksize: int = 10000,
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
    elif executor in ("dask", "dask-cuda", "slurm", "htcondor"):
        if client is None:
            msg = "the dask executors need a distributed Client"
            raise ValueError(msg)
        ex = processor.DaskExecutor(client=client, status=status, retries=3, treereduction=8)
    else:
        msg = f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}"
        raise ConfigurationError(msg)
    return processor.Runner(executor=ex, chunksize=chunksize, schema=PFNanoAODSchema,
                            skipbadfiles=False, savemetrics=False)


def stage_report(output: Mapping[str, Any], wall: float | None = None) -> str:
    """Per-stage time and jets/s summed over datasets (a text table)."""
    timing: dict[str, float] = {}
    jets = 0
    events = 0
    for ds in datasets_of(output).values():
        if "timing" not in ds:
            continue
        for k, v in ds["timing"].items():
            timing[k] = timing.get(k, 0.0) + float(v)
        jets += int(ds["cutflow"]["scored"])
        events += int(ds["cutflow"]["events"])
    lines = [f"{'stage':<22}{'seconds':>10}{'jets/s':>14}"]
    for k, v in timing.items():
        lines.append(f"{k:<22}{v:>10.2f}{(jets / v if v > 0 else float('nan')):>14.0f}")
    total = sum(timing.values())
    lines.append(f"{'total (worker time)':<22}{total:>10.2f}{(jets / total if total > 0 else float('nan')):>14.0f}")
    if wall:
        lines.append(f"wall time {wall:.1f} s: {events / wall:.0f} events/s, {jets / wall:.0f} scored jets/s")
    return "\n".join(lines)


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
                cluster, client = make_cluster(config.executor, config.workers, config.dashboard_address,
                                               **config.cluster_options)
            own_client = True
        if client is not None:
            from hepml_coffea.inference.worker import TaggerWarmup

            link = client.dashboard_link
            print(f"Dask dashboard: {link}  (stages: {link.rsplit('/', 1)[0]}/individual-fine-performance-metrics)",
                  flush=True)
            client.register_plugin(TaggerWarmup([t.path for t in processor.taggers], processor.device,
                                                processor.amp))
        runner = make_runner(config.executor if client is None else "dask", client=client,
                             workers=config.workers, chunksize=config.chunksize, status=config.status)
        with_files = {ds: e for ds, e in fs.items() if e["files"]}
        t0 = time.perf_counter()
        result: dict[str, Any] = dict(runner(with_files, processor, treename="Events")) if with_files else {}
        wall = time.perf_counter() - t0
    finally:
        if own_client and client is not None:
            client.close()
        if cluster is not None:
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
        "report": stage_report(output, wall),
    }
    print(output["run"]["report"], flush=True)
    _print_notices(output)
    if out is not None:
        save_output(output, out)
        print(f"wrote {out}", flush=True)
    return output


def _print_notices(output: Mapping[str, Any]) -> None:
    """Say, on stderr, what was skipped and why nothing was scored."""
    run = output["run"]
    if run["skipped"]:
        print(f"{len(run['skipped'])} file(s)/chunk(s) skipped ({run['events_skipped']} events known to be in them):",
              file=sys.stderr)
        for s in run["skipped"]:
            n = "?" if s.get("events") is None else s["events"]
            print(f"  {s['dataset']}: {s['file']} [{s.get('entrystart')}:{s.get('entrystop')}] {n} events: "
                  f"{s['reason']}", file=sys.stderr)
    cut = {k: sum(int(ds["cutflow"].get(k, 0)) for ds in output["datasets"].values())
           for k in ("events", "fat_jets", "selected", "scored")}
    if cut["scored"] == 0:
        print(f"notice: no fat jet was scored. {cut['events']} events had {cut['fat_jets']} fat jets; the selection "
              f"({run['selection']}) rejected {cut['fat_jets'] - cut['selected']} of them and "
              f"{cut['selected'] - cut['scored']} selected jets had no constituents or non-finite kinematics. "
              "Widen the selection (hepml-coffea run --pt-min/--pt-max/--eta-max, or Selection(...)).",
              file=sys.stderr)


def save_output(output: Any, out: str | os.PathLike[str]) -> Path:
    """``coffea.util.save`` under a temporary name, then rename: never a partial file."""
    from coffea.util import save

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save(output, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
