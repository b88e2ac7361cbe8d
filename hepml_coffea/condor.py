"""Running the TaggerProcessor on an HTCondor pool, two ways.

(a) **Dask on HTCondor** -- :func:`htcondor_cluster` configures a
    ``dask_jobqueue.HTCondorCluster``: the scheduler runs where you start it (the
    submit/login node), each HTCondor job is one Dask worker (CPU: one thread per
    worker process; GPU: ``dask cuda worker`` with ``request_gpus``). Pass the client
    to :func:`hepml_coffea.run.run_fileset` (``client=...``) or its address
    (``scheduler=cluster.scheduler_address``). :func:`htcondor_job_script` shows the
    submit description a worker job gets, without starting anything.

(b) **Independent batch jobs** -- :func:`split_fileset` cuts a fileset into per-job
    filesets, :func:`write_jobs` writes them with a ``run_job.sh`` wrapper and a plain
    ``jobs.sub`` submit description (``condor_submit jobs.sub``); each job runs
    ``hepml-coffea run --executor iterative``; :func:`merge_outputs` adds the job
    outputs back together (``hepml-coffea condor merge``).

Nothing here needs HTCondor installed until a cluster is scaled or ``jobs.sub`` is
submitted.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hepml_coffea.config import ConfigurationError
from hepml_coffea.environment import export_lines as _export_lines
from hepml_coffea.environment import worker_env
from hepml_coffea.filesets import FilesetError, load_fileset
from hepml_coffea.outputs import nonfinite_summary, save_output, stage_report

__all__ = [
    "IncompleteJobsError",
    "MergeError",
    "describe_jobs",
    "htcondor_cluster",
    "htcondor_job_kwargs",
    "htcondor_job_script",
    "job_command",
    "job_status",
    "merge_job_dir",
    "merge_outputs",
    "split_fileset",
    "write_jobs",
    "write_manifest",
]

#: top-level keys of a run output that are not datasets
_TOP_LEVEL = ("skipped", "report", "taggers")


class MergeError(ValueError):
    """Job outputs that cannot be merged (different taggers, missing/unreadable file)."""


class IncompleteJobsError(MergeError):
    """A job folder whose jobs did not all leave an output (failed, cancelled, still running)."""


# --------------------------------------------------------------------------- (a) Dask on HTCondor
def htcondor_job_kwargs(
    kind: str = "cpu",
    cores: int = 1,
    memory: str = "4GB",
    disk: str = "4GB",
    gpus: int = 1,
    env_setup: Sequence[str] = (),
    python: str | None = None,
    log_directory: str | os.PathLike[str] | None = None,
    job_extra_directives: Mapping[str, Any] | None = None,
    worker_extra_args: Sequence[str] = (),
    **kw: Any,
) -> dict[str, Any]:
    """The ``HTCondorJob`` keyword arguments shared by :func:`htcondor_cluster` and
    :func:`htcondor_job_script` (see there for the parameters)."""
    if kind not in ("cpu", "gpu"):
        msg = f"kind must be 'cpu' or 'gpu', got {kind!r}"
        raise ValueError(msg)
    cores = int(cores)
    if cores < 1:
        msg = f"cores must be >= 1, got {cores}"
        raise ValueError(msg)
    extra = {str(k): v for k, v in (job_extra_directives or {}).items()}
    if kind == "cpu":
        # one single-threaded worker process per core: the taggers run torch per process
        processes = cores
        worker_command = "distributed.cli.dask_worker"
        extra.setdefault("environment", '"OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"')
    else:
        gpus = int(gpus)
        if gpus < 1:
            msg = f"a GPU worker needs gpus >= 1, got {gpus}"
            raise ValueError(msg)
        cores = max(cores, gpus)
        # `dask cuda worker` starts one worker per visible GPU by itself; dask-jobqueue only
        # uses `processes` to divide --nthreads and --memory-limit, so processes = gpus gives
        # each GPU worker cores/gpus threads and memory/gpus host memory. HTCondor sets
        # CUDA_VISIBLE_DEVICES to the GPU(s) it assigned; it is deliberately not set here.
        processes = gpus
        # python -m dask cuda worker == the `dask cuda worker` CLI (dask-cuda's entry point
        # of the `dask` command); dask_cuda.cli has no __main__ of its own.
        worker_command = "dask cuda worker"
        extra["request_gpus"] = gpus
    # our worker environment first (threads, allocator: hepml_coffea.environment.worker_env),
    # then the user's lines, which may override it
    prologue = [*_export_lines(worker_env(max(1, cores // processes))), *(str(line) for line in env_setup)]
    return {
        "cores": cores,
        "processes": processes,
        "memory": memory,
        "disk": disk,
        "python": python or sys.executable,
        "worker_command": worker_command,
        "worker_extra_args": list(worker_extra_args),
        "job_extra_directives": extra,
        "job_script_prologue": prologue,
        "log_directory": None if log_directory is None else os.fspath(log_directory),
        **kw,
    }


def htcondor_cluster(
    kind: str = "cpu",
    cores: int = 1,
    memory: str = "4GB",
    disk: str = "4GB",
    gpus: int = 1,
    env_setup: Sequence[str] = (),
    python: str | None = None,
    log_directory: str | os.PathLike[str] | None = "dask-condor-logs",
    dashboard_address: str = "127.0.0.1:8787",
    scheduler_options: Mapping[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """A ``dask_jobqueue.HTCondorCluster`` for the taggers (no job is submitted until
    ``cluster.scale(n)`` / ``cluster.adapt(...)``).

    Parameters
    ----------
    kind : ``"cpu"``: ``cores`` single-threaded workers per job (``--nthreads 1``);
        ``"gpu"``: ``request_gpus = gpus`` and the ``dask cuda worker`` command (needs
        ``dask-cuda`` in the worker environment; one worker per GPU, HTCondor chooses
        the GPU through ``CUDA_VISIBLE_DEVICES``).
    cores, memory, disk : per job (``request_cpus``, ``request_memory``, ``request_disk``).
    env_setup : shell lines run before the worker starts, e.g.
        ``[". /path/to/venv/bin/activate"]``. HTCondor jobs of dask-jobqueue run
        ``/bin/sh -c "line1; line2; python -m ..."``: use POSIX ``.``, not ``source``.
    python : the interpreter **on the worker nodes** (default ``sys.executable``, right
        when the environment sits on a shared file system).
    log_directory : worker stdout/stderr/log files (created; must be on a path the
        submit node can write).
    dashboard_address : scheduler dashboard, bound to localhost by default; reach it
        with ``ssh -L 8787:localhost:8787 submit-node``.
    scheduler_options : more ``distributed.Scheduler`` options (e.g. ``{"port": 8786,
        "interface": "eth0"}`` -- the scheduler itself must be reachable from the
        worker nodes, only the dashboard is kept local).
    **kw : passed to ``HTCondorCluster`` (``job_extra_directives``, ``death_timeout``,
        ``worker_extra_args``, ``protocol``, ``security``, ``submit_command_extra`` ...).

    Security
    --------
    The scheduler port is open to the pool's network (anyone who reaches it can run
    code on the workers). To encrypt and authenticate, pass a
    ``distributed.security.Security`` with ``protocol="tls"``: either your own
    certificates (``Security(tls_ca_file=..., tls_scheduler_cert=..., tls_scheduler_key=...,
    tls_worker_cert=..., tls_worker_key=..., tls_client_cert=..., tls_client_key=...,
    require_encryption=True)``, files readable on the worker nodes) or
    ``security=Security.temporary()`` (or ``security=True``): throw-away CA and keys that
    dask-jobqueue writes to ``shared_temp_directory=`` (default: the current folder), which
    must be on a file system the workers see and other users cannot read. dask-jobqueue
    adds ``--protocol tls:// --tls-ca-file/--tls-cert/--tls-key`` to the worker command
    (``dask cuda worker`` takes the same options). Connect with
    ``Client(cluster, security=cluster.security)``.
    """
    from dask_jobqueue import HTCondorCluster

    job_kw = htcondor_job_kwargs(kind=kind, cores=cores, memory=memory, disk=disk, gpus=gpus,
                                 env_setup=env_setup, python=python, log_directory=log_directory, **kw)
    sched = {"dashboard_address": dashboard_address, **dict(scheduler_options or {})}
    return HTCondorCluster(scheduler_options=sched, **job_kw)


def htcondor_job_script(kind: str = "cpu", scheduler: str = "tcp://SCHEDULER:8786", **kw: Any) -> str:
    """The submit description of one worker job, without starting a scheduler (for a
    look before using :func:`htcondor_cluster`; same parameters)."""
    from dask_jobqueue.htcondor import HTCondorJob

    kw.pop("dashboard_address", None)
    kw.pop("scheduler_options", None)
    kw.setdefault("log_directory", None)
    return str(HTCondorJob(scheduler=scheduler, name="dask-worker", **htcondor_job_kwargs(kind=kind, **kw)).job_script())


# --------------------------------------------------------------------------- (b) batch jobs
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
    :func:`hepml_coffea.run.load_fileset`, made absolute (URLs kept as they are).
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


def _check_tagger(tagger: str | os.PathLike[str]) -> None:
    """Refuse, before any job is written, a tagger that is neither an artifact directory nor
    a shipped name (:class:`~hepml_coffea.artifacts.ArtifactError` naming the tagger)."""
    from hepml_coffea.artifacts import resolve_artifact

    resolve_artifact(tagger)


def _mib(size: str | int) -> int:
    from dask.utils import parse_bytes

    return max(1, math.ceil(parse_bytes(size) / 2**20))


def _run_job_sh(command: list[str], env_setup: Sequence[str], threads: int) -> str:
    setup = "\n".join(str(s) for s in env_setup) or "# (no environment set-up given)"
    exports = "\n".join(_export_lines(worker_env(threads)))
    cmd = " ".join(shlex.quote(c) for c in command)
    return f"""#!/bin/bash
# One HTCondor job of hepml-coffea (written by `hepml-coffea condor split`).
# Usage: run_job.sh JOB_ID   -- reads job_<ID>.json, writes out/job_<ID>.coffea and its
# exit status status/job_<ID>.exit under the job's working directory; HTCondor transfers
# the folders out/ and status/ back into the job folder (they always exist, so a failed
# job's exit status comes back too and `hepml-coffea slurm merge` reports it).
set -eo pipefail
JOB="${{1:?usage: run_job.sh JOB_ID}}"
mkdir -p out status
rm -f "status/job_${{JOB}}.exit"
# the exit status of the job, also when the environment set-up fails
trap 'echo $? > "status/job_${{JOB}}.exit"' EXIT
{exports}
export PYTHONUNBUFFERED=1

# --- environment set-up
{setup}
# ---

echo "job $JOB on $(hostname) in $(pwd), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
{cmd} --fileset "job_${{JOB}}.json" --out "out/job_${{JOB}}.coffea"
"""


def write_jobs(
    fileset_json: str | os.PathLike[str] | Mapping[str, Any],
    outdir: str | os.PathLike[str],
    files_per_job: int | None = 1,
    taggers: Sequence[str | os.PathLike[str]] | None = None,
    chunksize: int = 10000,
    python: str | None = None,
    env_setup: Sequence[str] = (),
    request_memory: str = "4GB",
    request_gpus: int = 0,
    request_cpus: int = 1,
    request_disk: str = "4GB",
    n_jobs: int | None = None,
    device: str = "auto",
    skip_bad_files: bool = False,
    transfer_taggers: bool = False,
    extra_directives: Mapping[str, Any] | None = None,
    selection: Any = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """Write an HTCondor batch submission for ``fileset_json`` into ``outdir``.

    Writes ``job_<i>.json`` (one fileset per job, see :func:`split_fileset`; give
    ``n_jobs`` to split by count instead of ``files_per_job``), ``jobs.txt`` (the job
    ids, one a line), ``run_job.sh`` (sets up the environment, runs ``hepml-coffea run
    --executor iterative`` on one job fileset), ``jobs.sub`` (vanilla universe, ``queue
    job from jobs.txt``) and the folders ``out/``, ``logs/`` and ``status/`` (each job's
    exit status, ``status/job_<i>.exit``, read by :func:`job_status` / :func:`merge_job_dir`).
    ``selection`` and ``backend`` are passed to every job (:func:`job_command`).

    The job reads its input files where the fileset says: paths must be visible on the
    worker nodes (shared file system) or be URLs (``root://...``). Tagger artifact
    directories likewise, unless ``transfer_taggers`` (HTCondor copies each directory
    into the job and the job refers to it by its folder name).
    ``python``: the interpreter on the worker nodes (the job runs ``python -m
    hepml_coffea.cli run``); default: the ``hepml-coffea`` command that ``env_setup``
    puts on the PATH.

    Returns ``{"submit": path, "script": path, "jobs": [paths], "joblist": path,
    "out": dir, "outputs": [expected output paths]}``.
    """
    out = Path(outdir).resolve()
    jobs = split_fileset(fileset_json, n_jobs=n_jobs, files_per_job=None if n_jobs is not None else files_per_job)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("out", "logs", "status"):
        (out / sub).mkdir(exist_ok=True)

    tagger_args: list[str] = []
    transfer = ["job_$(job).json"]
    if taggers:
        for t in taggers:
            p = Path(t)
            _check_tagger(t)
            if transfer_taggers:
                if not p.is_dir():
                    msg = f"transfer_taggers needs artifact directories; tagger {t} is a shipped name, not one"
                    raise ConfigurationError(msg)
                if p.name in tagger_args:
                    msg = f"two tagger directories are named {p.name!r}; they would overwrite each other in the job"
                    raise ValueError(msg)
                tagger_args.append(p.name)
                transfer.append(os.fspath(p.resolve()))  # no trailing slash: the folder itself
            else:
                tagger_args.append(os.fspath(p.resolve()) if p.is_dir() else str(t))

    command = job_command(python=python, chunksize=chunksize, device=device, skip_bad_files=skip_bad_files,
                          taggers=tagger_args, selection=selection, backend=backend)

    job_paths = []
    for i, job in enumerate(jobs):
        p = out / f"job_{i}.json"
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(job, indent=1) + "\n")
        os.replace(tmp, p)
        job_paths.append(p)
    joblist = out / "jobs.txt"
    joblist.write_text("".join(f"{i}\n" for i in range(len(jobs))))

    script = out / "run_job.sh"
    script.write_text(_run_job_sh(command, env_setup, int(request_cpus)))
    script.chmod(0o755)

    lines = [
        "# HTCondor submit description written by `hepml-coffea condor split`.",
        "# Submit from this folder:  condor_submit jobs.sub",
        "# Resubmit some jobs: put their ids in a file and queue from it instead of jobs.txt.",
        "universe                = vanilla",
        "executable              = run_job.sh",
        "arguments               = $(job)",
        "",
        f"request_cpus            = {int(request_cpus)}",
        f"request_memory          = {_mib(request_memory)}",
        f"request_disk            = {_mib(request_disk) * 1024}",
    ]
    if int(request_gpus) > 0:
        lines.append(f"request_gpus            = {int(request_gpus)}")
    lines += [
        "",
        "# the environment is set up by run_job.sh, not copied from the submit shell",
        "getenv                  = false",
        f'environment             = "PYTHONUNBUFFERED=1 OMP_NUM_THREADS={int(request_cpus)}"',
        "",
        "should_transfer_files   = YES",
        "when_to_transfer_output = ON_EXIT",
        f"transfer_input_files    = {', '.join(transfer)}",
        "# folders the job always creates: out/job_<i>.coffea (when it succeeded) and",
        "# status/job_<i>.exit (always) land in this folder's out/ and status/",
        "transfer_output_files   = out, status",
        "",
        "output                  = logs/job_$(job).out",
        "error                   = logs/job_$(job).err",
        "log                     = logs/jobs.log",
        "",
        "# a job that exits non-zero is run again, up to 2 more times; its last exit status",
        "# is in status/job_<i>.exit (hepml-coffea slurm merge names the failed jobs)",
        "max_retries             = 2",
    ]
    for k, v in (extra_directives or {}).items():
        lines.append(f"{k:<23} = {v}")
    lines += ["", "queue job from jobs.txt", ""]
    submit = out / "jobs.sub"
    submit.write_text("\n".join(lines))
    write_manifest(out, "htcondor", len(jobs), submit)
    return {
        "submit": submit,
        "script": script,
        "jobs": job_paths,
        "joblist": joblist,
        "out": out / "out",
        "outputs": [out / "out" / f"job_{i}.coffea" for i in range(len(jobs))],
    }


# --------------------------------------------------------------------------- job folders
MANIFEST = "manifest.json"


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
    path = out / MANIFEST
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _read_manifest(jobdir: Path) -> dict[str, Any]:
    path = jobdir / MANIFEST
    if not path.is_file():
        msg = (f"{jobdir} is not a job folder written by `hepml-coffea slurm split` / `condor split` "
               f"(no {MANIFEST}); merge the .coffea files by name instead (hepml-coffea condor merge FILES)")
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


def _meta(doc: Mapping[str, Any]) -> Any:
    """The run metadata of an output: ``doc["run"]`` (new layout) or the document itself."""
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
    :func:`hepml_coffea.run.stage_report` (worker time; no wall time). With ``out``,
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
    summed: dict[str, Any] = dict(accumulate(datasets) or {}) if len(datasets) > 1 else _copy(datasets[0])
    skipped = [s for _, doc in outputs for s in _meta(doc).get("skipped", [])]
    report = stage_report(summed) + f"\nmerged from {len(outputs)} job output(s)"
    taggers = [dict(t) for t in _meta(ref).get("taggers", [])]
    if _is_new_layout(ref):
        run_meta = _copy(ref["run"])
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


def _copy(doc: Mapping[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(doc))
