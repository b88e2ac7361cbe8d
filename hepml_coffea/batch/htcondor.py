"""HTCondor: Dask workers as HTCondor jobs, or independent HTCondor jobs.

(a) **Dask on HTCondor** -- :func:`htcondor_cluster` configures a
    ``dask_jobqueue.HTCondorCluster``: the scheduler runs where you start it (the
    submit/login node), each HTCondor job is one Dask worker (CPU: one thread per
    worker process; GPU: ``dask cuda worker`` with ``request_gpus``). Pass the client
    to :func:`hepml_coffea.batch.run.run_fileset` (``client=...``) or its address
    (``scheduler=cluster.scheduler_address``). :func:`htcondor_job_script` shows the
    submit description a worker job gets, without starting anything.

(b) **Independent batch jobs** -- :func:`write_jobs` cuts a fileset into per-job
    filesets (:func:`hepml_coffea.batch.core.split_fileset`) and writes them with a
    ``run_job.sh`` wrapper and a plain ``jobs.sub`` submit description (``condor_submit
    jobs.sub``); each job runs ``hepml-coffea run --executor iterative``;
    :func:`hepml_coffea.batch.core.merge_outputs` / ``merge_job_dir`` add the job outputs
    back together (``hepml-coffea condor merge``).

What is not HTCondor syntax (splitting, job files, status, merging, the worker job
options) lives in :mod:`hepml_coffea.batch.core`. Nothing here needs HTCondor installed
until a cluster is scaled or ``jobs.sub`` is submitted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hepml_coffea.batch.core import check_taggers, job_command, job_outputs, jobqueue_job_script, mib
from hepml_coffea.batch.core import jobqueue_kwargs, split_fileset, start_jobqueue_cluster, task_script
from hepml_coffea.batch.core import write_job_folder, write_manifest
from hepml_coffea.errors import ConfigurationError

__all__ = ["htcondor_cluster", "htcondor_job_kwargs", "htcondor_job_script", "write_jobs"]

_RUN_JOB_HEAD = """#!/bin/bash
# One HTCondor job of hepml-coffea (written by `hepml-coffea condor split`).
# Usage: run_job.sh JOB_ID   -- reads job_<ID>.json, writes out/job_<ID>.coffea and its
# exit status status/job_<ID>.exit under the job's working directory; HTCondor transfers
# the folders out/ and status/ back into the job folder (they always exist, so a failed
# job's exit status comes back too and `hepml-coffea slurm merge` reports it).
set -eo pipefail
JOB="${1:?usage: run_job.sh JOB_ID}"
mkdir -p out status
"""


# --------------------------------------------------------------------------- (a) Dask on HTCondor
def htcondor_job_kwargs(
    kind: str = "cpu",
    memory: str = "4GB",
    disk: str = "4GB",
    job_extra_directives: Mapping[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """The ``HTCondorJob`` keyword arguments of :func:`htcondor_cluster` and
    :func:`htcondor_job_script`: :func:`~hepml_coffea.batch.core.jobqueue_kwargs` (``cores``,
    ``gpus``, ``env_setup``, ``python``, ``log_directory``, ``worker_extra_args``) plus
    ``request_memory``/``request_disk`` and, for GPU jobs, ``request_gpus``. HTCondor sets
    ``CUDA_VISIBLE_DEVICES`` to the GPU(s) it assigned; it is deliberately not set here."""
    job = jobqueue_kwargs(kind=kind, memory=memory, disk=disk, **kw)
    extra = {str(k): v for k, v in (job_extra_directives or {}).items()}
    if kind == "cpu":
        extra.setdefault("environment", '"OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"')
    else:
        extra["request_gpus"] = job["processes"]
    return {**job, "job_extra_directives": extra}


def htcondor_cluster(kind: str = "cpu", *, log_directory: str | os.PathLike[str] | None = "dask-condor-logs",
                     dashboard_address: str = "127.0.0.1:8787", scheduler_options: Mapping[str, Any] | None = None,
                     **kw: Any) -> Any:
    """A ``dask_jobqueue.HTCondorCluster`` for the taggers (no job is submitted until
    ``cluster.scale(n)`` / ``cluster.adapt(...)``).

    Parameters
    ----------
    kind : ``"cpu"``: ``cores`` single-threaded workers per job (``--nthreads 1``);
        ``"gpu"``: ``request_gpus = gpus`` and the ``dask cuda worker`` command (needs
        ``dask-cuda`` in the worker environment; one worker per GPU, HTCondor chooses
        the GPU through ``CUDA_VISIBLE_DEVICES``).
    cores, memory, disk, gpus : per job (``request_cpus``, ``request_memory``, ``request_disk``).
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

    job_kw = htcondor_job_kwargs(kind=kind, log_directory=log_directory, **kw)
    return start_jobqueue_cluster(HTCondorCluster, job_kw, dashboard_address, scheduler_options)


def htcondor_job_script(kind: str = "cpu", scheduler: str = "tcp://SCHEDULER:8786", **kw: Any) -> str:
    """The submit description of one worker job, without starting a scheduler (for a
    look before using :func:`htcondor_cluster`; same parameters)."""
    from dask_jobqueue.htcondor import HTCondorJob

    return jobqueue_job_script(HTCondorJob, htcondor_job_kwargs, kind, scheduler, kw)


# --------------------------------------------------------------------------- (b) batch jobs
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
    tagger_args = check_taggers(taggers)
    transfer = ["job_$(job).json"]
    if transfer_taggers:  # HTCondor copies each directory into the job: refer to it by its folder name
        tagger_args = []
        for t in taggers or ():
            p = Path(t)
            if not p.is_dir():
                msg = f"transfer_taggers needs artifact directories; tagger {t} is a shipped name, not one"
                raise ConfigurationError(msg)
            if p.name in tagger_args:
                msg = f"two tagger directories are named {p.name!r}; they would overwrite each other in the job"
                raise ValueError(msg)
            tagger_args.append(p.name)
            transfer.append(os.fspath(p.resolve()))  # no trailing slash: the folder itself
    job_paths = write_job_folder(out, jobs)
    command = job_command(python=python, chunksize=chunksize, device=device, skip_bad_files=skip_bad_files,
                          taggers=tagger_args, selection=selection, backend=backend)
    joblist = out / "jobs.txt"
    joblist.write_text("".join(f"{i}\n" for i in range(len(jobs))))
    script = out / "run_job.sh"
    script.write_text(_RUN_JOB_HEAD + task_script(command, env_setup, int(request_cpus),
                                                  'job $JOB on $(hostname) in $(pwd), $(date -u +%Y-%m-%dT%H:%M:%SZ)'))
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
        f"request_memory          = {mib(request_memory)}",
        f"request_disk            = {mib(request_disk) * 1024}",
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
    return {"submit": submit, "script": script, "jobs": job_paths, "joblist": joblist, "out": out / "out",
            "outputs": job_outputs(out, len(jobs))}
