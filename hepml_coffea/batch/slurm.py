"""Slurm: Dask workers as Slurm jobs, or a Slurm job array (the same two ways as HTCondor).

(a) **Dask on Slurm** -- :func:`slurm_cluster` configures a
    ``dask_jobqueue.SLURMCluster``: the scheduler runs where you start it (the login
    node), each Slurm job is one Dask worker (CPU: ``cores`` single-threaded worker
    processes; GPU: ``--gres=gpu:N`` and the ``dask cuda worker`` command). Hand the
    client to :func:`hepml_coffea.batch.run.run_fileset` (``client=...``), or use
    ``hepml-coffea run --executor slurm``. :func:`slurm_job_script` shows the batch
    script of one worker job without starting anything.

(b) **A job array** -- :func:`write_array_jobs` cuts a fileset into per-task filesets
    (:func:`hepml_coffea.batch.core.split_fileset`) and writes one ``jobs.sbatch`` with
    ``#SBATCH --array=0-(N-1)``: task ``i`` runs ``hepml-coffea run --executor
    iterative`` on ``job_<i>.json`` and writes ``out/job_<i>.coffea`` and its exit
    status. :func:`submit_array` calls ``sbatch``; :func:`wait_for_array` waits for the
    array to leave the queue; :func:`hepml_coffea.batch.core.merge_job_dir` merges and
    refuses an incomplete set unless told to accept it (``hepml-coffea slurm merge``).

What is not Slurm syntax lives in :mod:`hepml_coffea.batch.core`. Slurm has no file transfer: input files, tagger artifacts, the job folder and the
Python environment must be on a file system the compute nodes see.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hepml_coffea.batch.core import check_taggers, job_command, job_outputs, jobqueue_job_script, mib
from hepml_coffea.batch.core import jobqueue_kwargs, split_fileset, start_jobqueue_cluster, task_script
from hepml_coffea.batch.core import write_job_folder, write_manifest

__all__ = [
    "SlurmError",
    "slurm_available",
    "slurm_cluster",
    "slurm_job_kwargs",
    "slurm_job_script",
    "submit_array",
    "wait_for_array",
    "write_array_jobs",
]


class SlurmError(RuntimeError):
    """A Slurm command failed or is missing (the message has its output)."""


def slurm_available() -> str | None:
    """``None`` when ``sinfo`` answers and shows a usable partition, else the reason."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm client commands (sinfo/sbatch) on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %a %T"], capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo did not answer ({type(err).__name__}: {err})"
    if proc.returncode != 0:
        return f"sinfo failed: {(proc.stderr or proc.stdout).strip()[:300]}"
    usable = [ln for ln in proc.stdout.splitlines() if " up " in f" {ln} " and
              any(s in ln for s in ("idle", "mixed", "allocated"))]
    if not usable:
        return f"no partition is up with a usable node (sinfo: {proc.stdout.strip()[:300]!r})"
    return None


# --------------------------------------------------------------------------- (a) Dask on Slurm
def slurm_job_kwargs(
    kind: str = "cpu",
    memory: str = "4GB",
    walltime: str = "01:00:00",
    partition: str | None = None,
    account: str | None = None,
    job_extra_directives: Sequence[str] = (),
    **kw: Any,
) -> dict[str, Any]:
    """The ``SLURMJob`` keyword arguments of :func:`slurm_cluster` and
    :func:`slurm_job_script`: :func:`~hepml_coffea.batch.core.jobqueue_kwargs` (``cores``,
    ``gpus``, ``env_setup``, ``python``, ``log_directory``, ``worker_extra_args``) plus
    ``--mem``, ``-t``, ``-p``, ``-A`` and, for GPU jobs, ``--gres=gpu:<gpus>`` (Slurm sets
    ``CUDA_VISIBLE_DEVICES`` for ``--gres``)."""
    job = jobqueue_kwargs(kind=kind, memory=memory, walltime=walltime, queue=partition, account=account, **kw)
    extra = [str(d) for d in job_extra_directives]
    if kind == "gpu":
        extra.append(f"--gres=gpu:{job['processes']}")
    return {**job, "job_extra_directives": extra}


def slurm_cluster(kind: str = "cpu", *, log_directory: str | os.PathLike[str] | None = "dask-slurm-logs",
                  dashboard_address: str = "127.0.0.1:8787", scheduler_options: Mapping[str, Any] | None = None,
                  **kw: Any) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` for the taggers (no job is submitted until
    ``cluster.scale(jobs=n)`` / ``cluster.adapt(...)``).

    Parameters
    ----------
    kind : ``"cpu"``: ``cores`` single-threaded worker processes per job;
        ``"gpu"``: ``#SBATCH --gres=gpu:<gpus>`` and the ``dask cuda worker`` command
        (needs ``dask-cuda`` on the compute nodes), one worker per GPU.
    cores, memory, walltime, gpus : per job (``--cpus-per-task``, ``--mem``, ``-t``).
    partition, account : ``-p`` and ``-A`` (default: the cluster's defaults).
    env_setup : shell lines run in the job before the worker starts, e.g.
        ``[". /path/to/venv/bin/activate"]`` or ``["module load cuda"]``.
    python : the interpreter on the compute nodes (default ``sys.executable``, right on
        a shared file system).
    log_directory : worker job stdout/stderr (``<name>-<jobid>.out/.err``).
    dashboard_address : scheduler dashboard, bound to localhost by default; tunnel with
        ``ssh -L 8787:localhost:8787 login-node``.
    scheduler_options : more ``distributed.Scheduler`` options, e.g.
        ``{"interface": "ib0"}`` or ``{"host": "127.0.0.1"}`` for a one-node cluster;
        the scheduler port must be reachable from the compute nodes.
    **kw : passed to ``SLURMCluster`` (``job_extra_directives`` as a list of ``--opt``
        strings, ``death_timeout``, ``protocol``, ``security``, ``local_directory`` ...).
    """
    from dask_jobqueue import SLURMCluster

    job_kw = slurm_job_kwargs(kind=kind, log_directory=log_directory, **kw)
    return start_jobqueue_cluster(SLURMCluster, job_kw, dashboard_address, scheduler_options)


def slurm_job_script(kind: str = "cpu", scheduler: str = "tcp://SCHEDULER:8786", **kw: Any) -> str:
    """The batch script of one worker job, without starting a scheduler (same
    parameters as :func:`slurm_cluster`)."""
    from dask_jobqueue.slurm import SLURMJob

    return jobqueue_job_script(SLURMJob, slurm_job_kwargs, kind, scheduler, kw)


# --------------------------------------------------------------------------- (b) job array
def _slurm_time(walltime: str) -> str:
    parts = walltime.replace("-", ":").split(":")
    if not walltime or not all(p.isdigit() for p in parts):
        msg = f"walltime {walltime!r} is not a Slurm time (MM, HH:MM:SS or D-HH:MM:SS)"
        raise ValueError(msg)
    return walltime


def _sbatch_script(
    outdir: Path, n: int, command: list[str], env_setup: Sequence[str], cpus: int, memory_mib: int,
    walltime: str, partition: str | None, account: str | None, gpus: int, max_parallel: int | None,
    job_name: str, extra_directives: Sequence[str],
) -> str:
    array = f"0-{n - 1}" + (f"%{int(max_parallel)}" if max_parallel else "")
    head = [
        "#!/bin/bash",
        "# A Slurm job array of hepml-coffea (written by `hepml-coffea slurm split`).",
        "# Submit:    sbatch jobs.sbatch          (from anywhere: paths are absolute)",
        "# Rerun some tasks:  sbatch --array=3,7 jobs.sbatch",
        "# Task i reads job_<i>.json and writes out/job_<i>.coffea and status/job_<i>.exit.",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array={array}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={int(cpus)}",
        f"#SBATCH --mem={int(memory_mib)}M",
        f"#SBATCH --time={_slurm_time(walltime)}",
        f"#SBATCH --chdir={outdir}",
        f"#SBATCH --output={outdir}/logs/job_%a.out",
        f"#SBATCH --error={outdir}/logs/job_%a.err",
    ]
    if partition:
        head.append(f"#SBATCH --partition={partition}")
    if account:
        head.append(f"#SBATCH --account={account}")
    if gpus > 0:
        head.append(f"#SBATCH --gres=gpu:{int(gpus)}")
    head += [f"#SBATCH {d}" for d in extra_directives]
    head += [
        "set -eo pipefail",
        'JOB="${1:-${SLURM_ARRAY_TASK_ID:?not an array task: give the task id as argument}}"',
        f"cd {shlex.quote(str(outdir))}",
        "mkdir -p status out logs",
    ]
    hello = ("task $JOB of array ${SLURM_ARRAY_JOB_ID:-?} (job ${SLURM_JOB_ID:-?}) on $(hostname), "
             "$(date -u +%Y-%m-%dT%H:%M:%SZ)")
    return "\n".join(head) + "\n" + task_script(command, env_setup, cpus, hello)


def write_array_jobs(
    fileset: str | os.PathLike[str] | Mapping[str, Any],
    outdir: str | os.PathLike[str],
    files_per_job: int | None = 1,
    n_jobs: int | None = None,
    taggers: Sequence[str | os.PathLike[str]] | None = None,
    chunksize: int = 10000,
    python: str | None = None,
    env_setup: Sequence[str] = (),
    cpus_per_task: int = 1,
    memory: str = "4GB",
    walltime: str = "01:00:00",
    partition: str | None = None,
    account: str | None = None,
    gpus: int = 0,
    max_parallel: int | None = None,
    device: str = "auto",
    skip_bad_files: bool = False,
    job_name: str = "hepml-coffea",
    extra_directives: Sequence[str] = (),
    selection: Any = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """Write a Slurm job array for ``fileset`` into ``outdir``.

    Writes ``job_<i>.json`` (one fileset per task, :func:`hepml_coffea.batch.core.split_fileset`;
    ``n_jobs`` splits by count instead of ``files_per_job``), ``jobs.sbatch`` (the array,
    ``--array=0-(N-1)`` with ``%max_parallel`` when given; ``--cpus-per-task``, ``--mem``,
    ``--time``, ``--partition``, ``--account``, ``--gres=gpu:<gpus>``), ``manifest.json``
    (:func:`hepml_coffea.batch.core.write_manifest`) and the folders ``out/``, ``logs/`` and
    ``status/``. Task ``i`` logs to ``logs/job_<i>.out/.err``, writes its exit status to
    ``status/job_<i>.exit`` and its output (atomically) to ``out/job_<i>.coffea``.

    Tagger artifact directories are given by absolute path; shipped tagger names are
    passed as they are (anything else is refused here, an
    :class:`~hepml_coffea.artifacts.ArtifactError` naming it). ``selection`` and ``backend``
    are passed to every task (:func:`hepml_coffea.batch.core.job_command`). ``python``: the interpreter on the compute nodes (``python -m
    hepml_coffea.cli run``); default: the ``hepml-coffea`` command ``env_setup`` puts on
    the PATH.

    Returns ``{"script": path, "jobs": [paths], "manifest": path, "out": dir,
    "outputs": [expected output paths]}``.
    """
    out = Path(outdir).resolve()
    jobs = split_fileset(fileset, n_jobs=n_jobs, files_per_job=None if n_jobs is not None else files_per_job)
    if int(cpus_per_task) < 1:
        msg = f"cpus_per_task must be >= 1, got {cpus_per_task}"
        raise ValueError(msg)
    if max_parallel is not None and int(max_parallel) < 1:
        msg = f"max_parallel must be >= 1 (or None), got {max_parallel}"
        raise ValueError(msg)
    tagger_args = check_taggers(taggers)
    job_paths = write_job_folder(out, jobs)
    command = job_command(python=python, chunksize=chunksize, device=device, skip_bad_files=skip_bad_files,
                          taggers=tagger_args, selection=selection, backend=backend)
    script = out / "jobs.sbatch"
    script.write_text(_sbatch_script(out, len(jobs), command, env_setup, int(cpus_per_task), mib(memory),
                                     walltime, partition, account, int(gpus), max_parallel, job_name,
                                     extra_directives))
    script.chmod(0o755)
    manifest = write_manifest(out, "slurm", len(jobs), script)
    return {"script": script, "jobs": job_paths, "manifest": manifest, "out": out / "out",
            "outputs": job_outputs(out, len(jobs))}


def _run(cmd: list[str], timeout: float = 60) -> str:
    if shutil.which(cmd[0]) is None:
        msg = f"{cmd[0]} not found: is this a Slurm login node (or run .ci/slurm-up.sh for a test cluster)?"
        raise SlurmError(msg)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        msg = f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:500]}"
        raise SlurmError(msg)
    return proc.stdout


def submit_array(script: str | os.PathLike[str], array: str | None = None,
                 extra_args: Sequence[str] = ()) -> str:
    """``sbatch --parsable [--array=ARRAY] script``; returns the array job id.

    ``array`` overrides the script's ``--array`` (e.g. ``"2,5"`` to rerun two tasks).
    The id is also appended to ``submitted.txt`` beside the script.
    """
    script = Path(script).resolve()
    if not script.is_file():
        msg = f"{script} does not exist; write it with write_array_jobs / `hepml-coffea slurm split`"
        raise FileNotFoundError(msg)
    cmd = ["sbatch", "--parsable", *([f"--array={array}"] if array else []), *extra_args, str(script)]
    job_id = _run(cmd).strip().split(";")[0]
    with open(script.parent / "submitted.txt", "a") as fh:
        fh.write(f"{job_id} {array or 'all'} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return job_id


def wait_for_array(job_id: str, timeout: float = 3600, poll: float = 1.0) -> None:
    """Wait until no task of array ``job_id`` is pending or running (``squeue``).

    Raises
    ------
    TimeoutError : naming the tasks still in the queue.
    """
    deadline = time.monotonic() + timeout
    left = ""
    while time.monotonic() < deadline:
        left = _run(["squeue", "-h", "-r", "-j", str(job_id), "-o", "%i %T"]).strip()
        if not left:
            return
        time.sleep(poll)
    msg = f"Slurm array {job_id} still has tasks after {timeout:.0f} s:\n{left}"
    raise TimeoutError(msg)
