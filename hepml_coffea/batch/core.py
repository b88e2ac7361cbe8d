"""What every batch back-end shares: splitting, job files, job status and merging.

The two schedulers (:mod:`~hepml_coffea.batch.htcondor`, :mod:`~hepml_coffea.batch.slurm`)
add only their own syntax on top of this core, the way ``dask_jobqueue.JobQueueCluster``
holds what ``HTCondorCluster`` and ``SLURMCluster`` share:

* **Dask workers as batch jobs** -- :func:`jobqueue_kwargs` builds the keyword arguments
  both ``dask_jobqueue`` job classes take (CPU: one single-threaded worker process per
  core; GPU: ``dask cuda worker``, one worker per GPU; our worker environment first in
  the job script); :func:`start_jobqueue_cluster` / :func:`jobqueue_job_script` start a
  cluster or show one worker's script.
* **Independent jobs** -- :func:`split_fileset` cuts a fileset into per-job filesets,
  :func:`write_job_folder` writes them (``job_<i>.json``, ``out/``, ``logs/``,
  ``status/``), :func:`job_command` is the ``hepml-coffea run`` line each job runs and
  :func:`task_script` the shell body around it (exit status always written).
* **Job folders** -- :func:`write_manifest` records the jobs of a folder,
  :func:`job_status` / :func:`describe_jobs` say which are done, failed or missing, and
  :func:`merge_job_dir` / :func:`merge_outputs` add the outputs back together.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hepml_coffea.environment import export_lines, worker_env
from hepml_coffea.data.filesets import FilesetError, load_fileset
from hepml_coffea.analysis.outputs import nonfinite_summary, save_output, stage_report

__all__ = [
    "IncompleteJobsError", "JOBS_MANIFEST", "MergeError", "check_taggers", "describe_jobs", "job_command",
    "job_outputs", "job_status", "jobqueue_job_script", "jobqueue_kwargs", "merge_job_dir", "merge_outputs",
    "mib", "split_fileset", "start_jobqueue_cluster", "task_script", "write_job_folder", "write_manifest",
]

#: top-level keys of a run output that are not datasets
_TOP_LEVEL = ("skipped", "report", "taggers")


class MergeError(ValueError):
    """Job outputs that cannot be merged (different taggers, missing/unreadable file)."""


class IncompleteJobsError(MergeError):
    """A job folder whose jobs did not all leave an output (failed, cancelled, still running)."""


# --------------------------------------------------------------------------- Dask workers as batch jobs
def jobqueue_kwargs(
    kind: str = "cpu",
    cores: int = 1,
    gpus: int = 1,
    env_setup: Sequence[str] = (),
    python: str | None = None,
    log_directory: str | os.PathLike[str] | None = None,
    worker_extra_args: Sequence[str] = (),
    **kw: Any,
) -> dict[str, Any]:
    """The ``dask_jobqueue`` job keyword arguments every scheduler shares.

    ``kind="cpu"``: ``cores`` single-threaded worker processes per job (the taggers run
    torch per process). ``kind="gpu"``: the ``dask cuda worker`` command, which starts one
    worker per GPU the scheduler gives the job (it sets ``CUDA_VISIBLE_DEVICES``);
    ``processes = gpus`` only divides threads and memory. The job script starts with our
    worker environment (threads, allocator: :func:`hepml_coffea.environment.worker_env`),
    then the user's ``env_setup`` lines, which may override it. ``kw`` (``memory``,
    ``walltime``, ...) is passed on as it is.
    """
    if kind not in ("cpu", "gpu"):
        msg = f"kind must be 'cpu' or 'gpu', got {kind!r}"
        raise ValueError(msg)
    cores = int(cores)
    if cores < 1:
        msg = f"cores must be >= 1, got {cores}"
        raise ValueError(msg)
    if kind == "cpu":
        processes = cores
        worker_command = "distributed.cli.dask_worker"
    else:
        gpus = int(gpus)
        if gpus < 1:
            msg = f"a GPU worker needs gpus >= 1, got {gpus}"
            raise ValueError(msg)
        cores = max(cores, gpus)
        processes = gpus
        # python -m dask cuda worker == the `dask cuda worker` CLI (dask-cuda's entry point
        # of the `dask` command); dask_cuda.cli has no __main__ of its own.
        worker_command = "dask cuda worker"
    return {
        "cores": cores,
        "processes": processes,
        "python": python or sys.executable,
        "worker_command": worker_command,
        "worker_extra_args": list(worker_extra_args),
        "job_script_prologue": [*export_lines(worker_env(max(1, cores // processes))),
                                *(str(line) for line in env_setup)],
        "log_directory": None if log_directory is None else os.fspath(log_directory),
        **kw,
    }


def start_jobqueue_cluster(cluster_class: Any, job_kwargs: Mapping[str, Any], dashboard_address: str,
                           scheduler_options: Mapping[str, Any] | None) -> Any:
    """``cluster_class(scheduler_options=..., **job_kwargs)`` with the dashboard bound where asked
    (localhost by default in the back-ends: tunnel to it with ``ssh -L``)."""
    sched = {"dashboard_address": dashboard_address, **dict(scheduler_options or {})}
    return cluster_class(scheduler_options=sched, **job_kwargs)


def jobqueue_job_script(job_class: Any, make_kwargs: Any, kind: str, scheduler: str, kw: dict[str, Any]) -> str:
    """The script of one worker job of ``job_class``, without starting a scheduler
    (``make_kwargs(kind=kind, **kw)`` builds its keyword arguments; the cluster-only
    options ``dashboard_address`` / ``scheduler_options`` are dropped)."""
    kw = dict(kw)
    kw.pop("dashboard_address", None)
    kw.pop("scheduler_options", None)
    kw.setdefault("log_directory", None)
    return str(job_class(scheduler=scheduler, name="dask-worker", **make_kwargs(kind=kind, **kw)).job_script())


# --------------------------------------------------------------------------- split
def split_fileset(
    fileset: str | os.PathLike[str] | Mapping[str, Any],
    n_jobs: int | None = None,
    files_per_job: int | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """Cut a fileset into per-job filesets; every file lands in exactly one job.

    Give ``n_jobs`` (files spread as evenly as possible) or ``files_per_job``.
    Files keep their order (datasets in order, files of a dataset together); a job
    may hold files of several datasets. Each job fileset is in coffea's form
    ``{dataset: {"files": {path: treename}, "metadata": {...}}}`` with the paths of
    :func:`hepml_coffea.data.filesets.load_fileset`, made absolute (URLs kept as they are).
    """
    if (n_jobs is None) == (files_per_job is None):
        msg = "give exactly one of n_jobs or files_per_job"
        raise ValueError(msg)
    fs = load_fileset(fileset)
    # absolute paths: the job filesets are read from another folder (and another machine)
    flat = [(ds, f if "://" in f else os.path.abspath(f), tree)
            for ds, entry in fs.items() for f, tree in entry["files"].items()]
    if not flat:
        msg = "the fileset has no files"
        raise FilesetError(msg)
    n = len(flat)
    if files_per_job is not None:
        if int(files_per_job) < 1:
            msg = f"files_per_job must be >= 1, got {files_per_job}"
            raise ValueError(msg)
        bounds = list(range(0, n, int(files_per_job))) + [n]
    else:
        if int(n_jobs) < 1:  # type: ignore[arg-type]
            msg = f"n_jobs must be >= 1, got {n_jobs}"
            raise ValueError(msg)
        k = min(int(n_jobs), n)  # type: ignore[arg-type]
        bounds = [round(i * n / k) for i in range(k + 1)]
    jobs: list[dict[str, dict[str, Any]]] = []
    for lo, hi in itertools.pairwise(bounds):
        job: dict[str, dict[str, Any]] = {}
        for ds, f, tree in flat[lo:hi]:
            entry = job.setdefault(ds, {"files": {}, "metadata": dict(fs[ds]["metadata"])})
            entry["files"][f] = tree
        jobs.append(job)
    return jobs


def job_command(python: str | None = None, chunksize: int = 10000, device: str = "auto",
                skip_bad_files: bool = False, taggers: Sequence[str] = (), selection: Any = None,
                backend: str = "auto") -> list[str]:
    """The ``hepml-coffea run --executor iterative ...`` command one batch job runs (its
    ``--fileset`` / ``--out`` come from the job script). ``python``: ``PYTHON -m
    hepml_coffea.cli run`` instead of the ``hepml-coffea`` entry point.

    ``selection`` (a :class:`~hepml_coffea.selection.Selection`; ``None``: the CLI's
    default window) and ``backend`` are written as ``--pt-min/--pt-max/--eta-max
    [--msd-min/--msd-max]`` and ``--backend``, so every job runs the selection and
    runtime of the run that was split."""
    command = ([python, "-m", "hepml_coffea.cli", "run"] if python else ["hepml-coffea", "run"])
    command += ["--executor", "iterative", "--chunksize", str(int(chunksize)), "--device", device,
                "--backend", str(backend)]
    if selection is not None:
        command += ["--pt-min", repr(float(selection.pt_min)), "--pt-max", repr(float(selection.pt_max)),
                    "--eta-max", repr(float(selection.abs_eta_max))]
        for flag, value in (("--msd-min", selection.msd_min), ("--msd-max", selection.msd_max)):
            if value is not None:
                command += [flag, repr(float(value))]
    if skip_bad_files:
        command.append("--skip-bad-files")
    if taggers:
        command += ["--taggers", *taggers]
    return command


def check_taggers(taggers: Sequence[str | os.PathLike[str]] | None) -> list[str]:
    """The ``--taggers`` arguments of a job: artifact directories by absolute path, shipped
    names as they are. Refuses, before any job is written, a tagger that is neither
    (:class:`~hepml_coffea.artifacts.ArtifactError` naming the tagger)."""
    from hepml_coffea.artifacts import resolve_artifact

    args = []
    for t in taggers or ():
        resolve_artifact(t)
        p = Path(t)
        args.append(os.fspath(p.resolve()) if p.is_dir() else str(t))
    return args


def mib(size: str | int) -> int:
    """A size (``"4GB"``, bytes) in whole MiB, at least 1 (what job descriptions ask for)."""
    from dask.utils import parse_bytes

    return max(1, math.ceil(parse_bytes(size) / 2**20))


def write_job_folder(out: Path, jobs: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Create ``out/{out,logs,status}`` and write each job's fileset to ``job_<i>.json``
    (atomically); returns the fileset paths."""
    for sub in ("out", "logs", "status"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, job in enumerate(jobs):
        p = out / f"job_{i}.json"
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(job, indent=1) + "\n")
        os.replace(tmp, p)
        paths.append(p)
    return paths


def job_outputs(out: Path, n_jobs: int) -> list[Path]:
    """The output every job of a folder writes: ``out/job_<i>.coffea``."""
    return [out / "out" / f"job_{i}.coffea" for i in range(int(n_jobs))]


def task_script(command: Sequence[str], env_setup: Sequence[str], threads: int, hello: str) -> str:
    """The shell body one job runs, after its ``JOB`` id is set and it stands in its folder:
    the exit status always lands in ``status/job_<JOB>.exit`` (also when the environment
    set-up fails), the worker environment is exported, ``env_setup`` runs, ``hello`` is
    echoed and ``command`` runs on ``job_<JOB>.json`` into ``out/job_<JOB>.coffea``."""
    setup = "\n".join(str(s) for s in env_setup) or "# (no environment set-up given)"
    exports = "\n".join(export_lines(worker_env(threads)))
    cmd = " ".join(shlex.quote(c) for c in command)
    return f"""rm -f "status/job_${{JOB}}.exit"
# the exit status of the job, also when the environment set-up fails
trap 'echo $? > "status/job_${{JOB}}.exit"' EXIT
{exports}
export PYTHONUNBUFFERED=1

# --- environment set-up
{setup}
# ---

echo "{hello}"
{cmd} --fileset "job_${{JOB}}.json" --out "out/job_${{JOB}}.coffea"
"""


# --------------------------------------------------------------------------- job folders
#: the file of a job folder that lists its jobs (:func:`write_manifest`)
JOBS_MANIFEST = "manifest.json"


def write_manifest(outdir: str | os.PathLike[str], scheduler: str, n_jobs: int,
                   submit: str | os.PathLike[str]) -> Path:
    """Write ``manifest.json`` into a job folder: which jobs exist and where each one's
    fileset, output, logs and exit-status file are (paths relative to the folder).

    :func:`job_status` and :func:`merge_job_dir` read it, so a merge knows which job
    outputs are missing instead of merging whatever happens to be there.
    """
    out = Path(outdir)
    doc = {
        "format": "hepml-coffea jobs 1",
        "scheduler": scheduler,
        "submit": Path(submit).name,
        "jobs": [{"id": i, "fileset": f"job_{i}.json", "output": f"out/job_{i}.coffea",
                  "stdout": f"logs/job_{i}.out", "stderr": f"logs/job_{i}.err",
                  "exit_status": f"status/job_{i}.exit"} for i in range(int(n_jobs))],
    }
    path = out / JOBS_MANIFEST
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _read_manifest(jobdir: Path) -> dict[str, Any]:
    path = jobdir / JOBS_MANIFEST
    if not path.is_file():
        msg = (f"{jobdir} is not a job folder written by `hepml-coffea slurm split` / `condor split` "
               f"(no {JOBS_MANIFEST}); merge the .coffea files by name instead (hepml-coffea condor merge FILES)")
        raise MergeError(msg)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        msg = f"{path} is not valid JSON ({err}); rewrite the job folder with `split`"
        raise MergeError(msg) from err
    return dict(doc)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def job_status(jobdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The state of every job of a job folder (see :func:`write_manifest`).

    Returns one dict per job: ``id``, ``state`` (``"done"``: its output exists;
    ``"failed"``: it wrote a non-zero exit status; ``"missing"``: neither -- still
    queued or running, cancelled, killed, or (HTCondor) not transferred back),
    ``exit_status`` (int or None), ``output``, ``stdout``, ``stderr`` (absolute paths)
    and ``last_error`` (the last non-empty line of its stderr log, "" if none).
    """
    root = Path(jobdir).resolve()
    manifest = _read_manifest(root)
    rows = []
    for job in manifest["jobs"]:
        output = root / job["output"]
        stderr = root / job["stderr"]
        exit_status = None
        status_file = root / job["exit_status"]
        if status_file.is_file():
            text = status_file.read_text().strip()
            exit_status = int(text) if text.lstrip("-").isdigit() else None
        if output.is_file() and exit_status in (None, 0):
            state = "done"
        elif exit_status not in (None, 0):
            state = "failed"
        else:
            state = "missing"
        rows.append({"id": int(job["id"]), "state": state, "exit_status": exit_status, "output": output,
                     "stdout": root / job["stdout"], "stderr": stderr,
                     "last_error": _last_line(stderr) if state != "done" else ""})
    return rows


def describe_jobs(rows: Sequence[Mapping[str, Any]]) -> str:
    """A text line per job that is not done: state, exit status, log path, last error line."""
    lines = []
    for r in rows:
        if r["state"] == "done":
            continue
        what = (f"failed (exit status {r['exit_status']})" if r["state"] == "failed"
                else "no output and no exit status (queued, running, cancelled or killed)")
        line = f"  job {r['id']}: {what}; log {r['stderr']}"
        if r["last_error"]:
            line += f"\n      last line: {r['last_error']}"
        lines.append(line)
    return "\n".join(lines)


def merge_job_dir(
    jobdir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """Merge the outputs of a job folder (``slurm split`` / ``condor split``).

    Refuses -- :class:`IncompleteJobsError` listing each missing or failed job with its
    log path and last error line -- unless every job left its output, or
    ``allow_incomplete`` is given; then the jobs that are not done are recorded in the
    merged output (``missing_jobs``: ids, states, log paths) and the merge goes on.
    """
    rows = job_status(jobdir)
    done = [r for r in rows if r["state"] == "done"]
    not_done = [r for r in rows if r["state"] != "done"]
    if not_done and not allow_incomplete:
        msg = (f"{len(not_done)} of {len(rows)} job(s) in {Path(jobdir).resolve()} have no output:\n"
               f"{describe_jobs(not_done)}\n"
               "rerun them (e.g. `sbatch --array=IDS jobs.sbatch`), or merge what is there with --allow-incomplete")
        raise IncompleteJobsError(msg)
    if not done:
        msg = f"no job in {Path(jobdir).resolve()} has an output yet:\n{describe_jobs(not_done)}"
        raise IncompleteJobsError(msg)
    missing = [{"id": r["id"], "state": r["state"], "exit_status": r["exit_status"], "log": str(r["stderr"])}
               for r in not_done]
    merged = merge_outputs([r["output"] for r in done], out=None)
    _meta(merged)["missing_jobs"] = missing
    if missing:
        merged_report = f"\nINCOMPLETE: {len(missing)} of {len(rows)} job(s) missing: {[m['id'] for m in missing]}"
        _meta(merged)["report"] = str(_meta(merged).get("report", "")) + merged_report
    if out is not None:
        save_output(merged, out)
    return merged


# --------------------------------------------------------------------------- merging
def _is_new_layout(doc: Mapping[str, Any]) -> bool:
    return isinstance(doc.get("datasets"), Mapping)


def _meta(doc: Mapping[str, Any]) -> Any:  # the run metadata: doc["run"] (new layout) or the document
    return doc["run"] if _is_new_layout(doc) else doc


def _datasets(doc: Mapping[str, Any]) -> dict[str, Any]:
    if _is_new_layout(doc):
        return dict(doc["datasets"])
    return {k: v for k, v in doc.items() if k not in _TOP_LEVEL and k != "missing_jobs"}


def _tagger_ids(output: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(t["name"]), str(t["hash"])) for t in _meta(output).get("taggers", [])]


def merge_outputs(
    paths: Sequence[str | os.PathLike[str]] | Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Add job outputs (``.coffea`` paths or loaded dicts) into one output.

    Histograms add, cutflows / tagger counts / timings add, ``skipped`` lists
    concatenate, per-dataset ``chunks`` add. All jobs must have run the same taggers
    (names and artifact hashes, in the same order) -- otherwise :class:`MergeError`;
    ``taggers`` is kept from the first job, ``report`` is rebuilt with
    :func:`hepml_coffea.analysis.outputs.stage_report` (worker time; no wall time). With ``out``,
    the merged output is written atomically (``coffea.util.save`` to a temporary file,
    then ``os.replace``).

    Both output layouts are read: ``{"datasets": {...}, "run": {...}}`` and the older
    flat ``{dataset: {...}, "taggers": ..., "skipped": ..., "report": ...}``; the merged
    output has the layout of the first job output.
    """
    from coffea.processor import accumulate
    from coffea.util import load

    if not paths:
        msg = "nothing to merge: no job outputs given"
        raise MergeError(msg)
    outputs: list[tuple[str, Mapping[str, Any]]] = []
    for p in paths:
        if isinstance(p, Mapping):
            outputs.append((f"<output {len(outputs)}>", p))
            continue
        path = Path(p)
        if path.is_dir():
            msg = f"{path} is a folder; merge a job folder with merge_job_dir / `hepml-coffea slurm merge {path}`"
            raise MergeError(msg)
        if not path.is_file():
            msg = f"job output {path} does not exist (job not finished, failed, or not transferred back?)"
            raise MergeError(msg)
        try:
            doc = load(path)
        except Exception as err:
            msg = f"job output {path} cannot be read ({type(err).__name__}: {err})"
            raise MergeError(msg) from err
        if not isinstance(doc, Mapping) or "taggers" not in _meta(doc):
            msg = f"{path} is not a hepml-coffea run output (no 'taggers' entry)"
            raise MergeError(msg)
        outputs.append((str(path), doc))

    ref_name, ref = outputs[0]
    ref_ids = _tagger_ids(ref)
    for name, doc in outputs[1:]:
        ids = _tagger_ids(doc)
        if ids != ref_ids:
            lines = [f"cannot merge {name} with {ref_name}: different taggers (name, artifact hash):",
                     f"  {ref_name}: {ref_ids}", f"  {name}: {ids}",
                     "every job must run the same tagger artifacts; rerun the jobs that differ"]
            raise MergeError("\n".join(lines))

    datasets = [_datasets(doc) for _, doc in outputs]
    summed: dict[str, Any] = dict(accumulate(datasets) or {}) if len(datasets) > 1 else copy.deepcopy(dict(datasets[0]))
    skipped = [s for _, doc in outputs for s in _meta(doc).get("skipped", [])]
    report = stage_report(summed) + f"\nmerged from {len(outputs)} job output(s)"
    taggers = [dict(t) for t in _meta(ref).get("taggers", [])]
    if _is_new_layout(ref):
        run_meta = copy.deepcopy(dict(ref["run"]))
        run_meta.update({"taggers": taggers, "report": report, "merged_from": len(outputs)})
        if "skipped" in ref["run"]:
            run_meta["skipped"] = skipped
        if "nonfinite_inputs" in ref["run"]:  # over every job, from the merged per-chunk records
            run_meta["nonfinite_inputs"] = nonfinite_summary(summed)
        merged: dict[str, Any] = {"datasets": summed, "run": run_meta}
    else:
        merged = {**summed, "skipped": skipped, "taggers": taggers, "report": report}

    if out is not None:
        save_output(merged, out)
    return merged
