"""Running the TaggerProcessor: filesets, the coffea Runner and its executors, local clusters.

* :func:`load_fileset` reads ``{dataset: [files]}`` or coffea's
  ``{dataset: {"files": {path: treename}, "metadata": {...}}}`` (dict or JSON path).
* :func:`check_fileset` opens every file before the run and names what is wrong
  (missing file, unreadable/truncated file, missing tree); with ``skip_bad_files`` the
  file is left out and recorded instead.
* :func:`make_cluster` starts a ``distributed.LocalCluster`` (CPU, one thread per
  worker, dashboard on localhost) or a ``dask_cuda.LocalCUDACluster`` (one worker per
  GPU); with ``scheduler=ADDR`` it connects to an existing cluster (e.g. HTCondor).
* :func:`run_fileset` runs everything and writes the output atomically.
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
from hepml_coffea.processor import TaggerProcessor

__all__ = ["FilesetError", "load_fileset", "check_fileset", "make_cluster", "make_runner", "run_fileset",
           "stage_report", "save_output"]


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


def check_fileset(fileset: Mapping[str, Any], skip_bad_files: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open every file; return (usable fileset, skipped records). Raise unless skipping."""
    good: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    for ds, entry in fileset.items():
        files = {}
        for f, tree in entry["files"].items():
            problem = None
            if "://" not in f and not Path(f).is_file():
                problem = "file does not exist"
            else:
                try:
                    with uproot.open(f) as fh:
                        if tree not in fh:
                            trees = [k.split(";")[0] for k, c in fh.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
                            problem = f"no tree {tree!r} in the file (trees: {trees})"
                        else:
                            _ = fh[tree].num_entries
                            size = os.path.getsize(f) if "://" not in f else None
                            if size is not None and size < fh.file.fEND:
                                problem = f"truncated ({size} bytes, its header says {fh.file.fEND})"
                except Exception as err:  # noqa: BLE001 - any read failure names the file
                    problem = f"cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
            if problem is None:
                files[f] = tree
                continue
            if not skip_bad_files:
                msg = f"dataset {ds!r}: {f}: {problem}"
                raise FilesetError(msg)
            skipped.append({"dataset": ds, "file": f, "entrystart": None, "entrystop": None, "reason": problem})
        if files:
            good[ds] = {**entry, "files": files}
    return good, skipped


def make_runner(executor: str, *, client: Any = None, workers: int = 1, chunksize: int = 10000,
                skip_bad_files: bool = False, status: bool = True) -> Any:
    """A coffea ``Runner`` for ``iterative``, ``futures`` or ``dask``/``dask-cuda`` (needs ``client``)."""
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    if executor == "iterative":
        ex = processor.IterativeExecutor(status=status)
    elif executor == "futures":
        ex = processor.FuturesExecutor(workers=workers, status=status)
    elif executor in ("dask", "dask-cuda"):
        if client is None:
            msg = "the dask executors need a distributed Client"
            raise ValueError(msg)
        ex = processor.DaskExecutor(client=client, status=status, retries=3, treereduction=8)
    else:
        msg = f"unknown executor {executor!r}; choose iterative, futures, dask or dask-cuda"
        raise ValueError(msg)
    return processor.Runner(executor=ex, chunksize=chunksize, schema=PFNanoAODSchema,
                            skipbadfiles=False, savemetrics=False)


def stage_report(output: Mapping[str, Any], wall: float | None = None) -> str:
    """Per-stage time and jets/s summed over datasets (a text table)."""
    timing: dict[str, float] = {}
    jets = 0
    events = 0
    for ds in output.values():
        if not isinstance(ds, Mapping) or "timing" not in ds:
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
    out: str | os.PathLike[str] | None = None,
    executor: str = "dask",
    workers: int = 2,
    scheduler: str | None = None,
    chunksize: int = 10000,
    taggers: list[str] | None = None,
    skip_bad_files: bool = False,
    save_scores: str | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    device: str = "auto",
    processor_instance: TaggerProcessor | None = None,
    client: Any = None,
    status: bool = True,
) -> dict[str, Any]:
    """Run the TaggerProcessor over ``fileset``; write ``out`` (coffea.util.save) atomically.

    Returns the output dict; ``output["skipped"]`` lists files or chunks left out
    (only with ``skip_bad_files``), ``output["report"]`` the stage report.
    """
    proc = processor_instance or TaggerProcessor(taggers=taggers, device=device,
                                                 skip_bad_inputs=skip_bad_files, save_scores=save_scores)
    fs, skipped = check_fileset(load_fileset(fileset), skip_bad_files=skip_bad_files)
    cluster = None
    own_client = False
    try:
        if executor in ("dask", "dask-cuda") and client is None:
            if scheduler:
                from distributed import Client

                client = Client(scheduler)
            else:
                cluster, client = make_cluster(executor, workers, dashboard_address)
            own_client = True
        if client is not None:
            from hepml_coffea.inference.worker import TaggerWarmup

            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            client.register_plugin(TaggerWarmup([t["path"] for t in proc.taggers], proc.device, proc.amp))
        runner = make_runner(executor, client=client, workers=workers, chunksize=chunksize,
                             skip_bad_files=skip_bad_files, status=status)
        t0 = time.perf_counter()
        result: dict[str, Any] = dict(runner(fs, proc, treename="Events")) if fs else {}
        wall = time.perf_counter() - t0
    finally:
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    for ds in list(result):
        skipped.extend({"dataset": ds, **s} for s in result[ds].get("skipped", []))
    result["skipped"] = skipped
    result["report"] = stage_report(result, wall)
    result["taggers"] = [{k: t[k] for k in ("name", "hash", "path")} for t in proc.taggers]
    print(result["report"], flush=True)
    if skipped:
        print(f"{len(skipped)} file(s)/chunk(s) skipped:", file=sys.stderr)
        for s in skipped:
            print(f"  {s['dataset']}: {s['file']} [{s.get('entrystart')}:{s.get('entrystop')}] {s['reason']}", file=sys.stderr)
    if out is not None:
        save_output(result, out)
        print(f"wrote {out}", flush=True)
    return result


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
