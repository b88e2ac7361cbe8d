"""Dask clusters for the TaggerProcessor: local CPU, local GPUs, Slurm and HTCondor.

:func:`make_cluster` is the one entry point the runner and the CLI use:

=============== ======================================================= ======================
executor        cluster                                                 workers
=============== ======================================================= ======================
``dask``        ``distributed.LocalCluster`` (processes, 1 thread each)  ``workers`` processes
``dask-cuda``   ``dask_cuda.LocalCUDACluster`` (one worker per GPU)      one per visible GPU
``slurm``       ``dask_jobqueue.SLURMCluster`` (:mod:`~hepml_coffea.batch.slurm`) ``workers`` Slurm jobs
``htcondor``    ``dask_jobqueue.HTCondorCluster`` (:mod:`~hepml_coffea.batch.htcondor`) ``workers`` HTCondor jobs
=============== ======================================================= ======================

Every worker process gets :func:`worker_env`: one BLAS/OpenMP thread per Dask thread,
plus the allocator settings of
:func:`hepml_coffea.inference.worker.worker_environment` where that exists. Local
workers get them before the worker process is spawned (``distributed.nanny.pre-spawn-environ``),
batch workers as ``export`` lines in the job script, before Python starts.
"""

from __future__ import annotations

import logging
from typing import Any

from hepml_coffea.errors import ConfigurationError
from hepml_coffea.environment import worker_env

log = logging.getLogger(__name__)

__all__ = ["BATCH_EXECUTORS", "CLUSTER_EXECUTORS", "make_cluster", "wait_for_workers", "worker_env"]

#: executors served by a Dask cluster (:func:`make_cluster`)
CLUSTER_EXECUTORS = ("dask", "dask-cuda", "slurm", "htcondor")
#: executors whose workers are batch jobs (dask-jobqueue)
BATCH_EXECUTORS = ("slurm", "htcondor")


def make_cluster(
    executor: str,
    workers: int = 2,
    dashboard_address: str = "127.0.0.1:8787",
    threads_per_worker: int = 1,
    allow_cpu_fallback: bool = False,
    **kw: Any,
) -> tuple[Any, Any]:
    """Start a cluster and a client connected to it.

    Parameters
    ----------
    executor : ``"dask"``, ``"dask-cuda"``, ``"slurm"`` or ``"htcondor"`` (see the module table).
    workers : local worker processes (``dask``) or batch jobs to submit (``slurm``,
        ``htcondor``: ``cluster.scale(jobs=workers)``; each job is one worker with
        ``threads_per_worker`` cores unless ``cores=`` says otherwise). Ignored by
        ``dask-cuda`` (one worker per GPU).
    dashboard_address : the scheduler's dashboard (``/status``,
        ``/individual-fine-performance-metrics``); ``"127.0.0.1:0"`` picks a free port.
    threads_per_worker : Dask threads per worker process.
    allow_cpu_fallback : ``dask-cuda`` only: when dask-cuda, NVML or a GPU is missing,
        start a CPU ``LocalCluster`` of ``workers`` processes with a logged warning
        (logger ``hepml_coffea.batch.clusters``) instead of raising.
    **kw : for ``slurm`` the keywords of :func:`hepml_coffea.batch.slurm.slurm_cluster`
        (``kind``, ``memory``, ``walltime``, ``partition``, ``gpus``, ``env_setup``,
        ``python``, ``log_directory``, ``scheduler_options`` ...), for ``htcondor`` those
        of :func:`hepml_coffea.batch.htcondor.htcondor_cluster`. Not accepted by the local ones.

    Returns
    -------
    (cluster, client) : close the client, then the cluster (for batch clusters this
        cancels the worker jobs).

    Raises
    ------
    ConfigurationError
        ``dask-cuda`` asked for where dask-cuda, NVML or a GPU is missing (unless
        ``allow_cpu_fallback``): GPU workers were asked for and none can start.

    Batch clusters return as soon as the jobs are
    submitted; use :func:`wait_for_workers` to wait for the first ones.
    """
    import dask
    from distributed import Client, LocalCluster

    if executor not in CLUSTER_EXECUTORS:
        msg = f"unknown cluster executor {executor!r}; choose one of {', '.join(CLUSTER_EXECUTORS)}"
        raise ValueError(msg)
    if executor in BATCH_EXECUTORS:
        return _batch_cluster(executor, workers, dashboard_address, threads_per_worker, kw)
    env = worker_env(threads_per_worker)
    if kw:
        msg = f"make_cluster({executor!r}) takes no options {sorted(kw)}; those are for 'slurm' / 'htcondor'"
        raise TypeError(msg)
    cluster = None
    # pre-spawn: set in the environment the worker process is started with (allocator
    # variables are read when the process starts, too late for the Nanny's `env=`)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {
            **dask.config.get("distributed.nanny.pre-spawn-environ", default={}), **env}}):
        if executor == "dask-cuda":
            try:
                from dask_cuda import LocalCUDACluster

                cluster = LocalCUDACluster(dashboard_address=dashboard_address, ip="127.0.0.1",
                                           threads_per_worker=threads_per_worker)
            except Exception as err:  # noqa: BLE001 - no dask-cuda, no NVML, no GPU
                why = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
                if not allow_cpu_fallback:
                    msg = (f"executor 'dask-cuda' asked for but GPU workers cannot start ({why}); install "
                           "dask-cuda on a GPU machine (pip install -e '.[gpu]'), choose --executor dask, or "
                           "pass --allow-cpu-fallback (RunConfig(allow_cpu_fallback=True)) to run on CPU workers")
                    raise ConfigurationError(msg) from err
                log.warning("dask-cuda unavailable (%s); allow_cpu_fallback: running on a CPU LocalCluster "
                            "of %d worker(s)", why, workers)
        if cluster is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=dashboard_address, host="127.0.0.1")
    return cluster, Client(cluster)


def _batch_cluster(executor: str, workers: int, dashboard_address: str, threads_per_worker: int,
                   kw: dict[str, Any]) -> tuple[Any, Any]:
    from distributed import Client

    kw = dict(kw)
    kw.setdefault("cores", threads_per_worker)
    # the worker environment (``env``) is written into each job script by
    # slurm_job_kwargs / htcondor_job_kwargs, before the user's env_setup lines
    if executor == "slurm":
        from hepml_coffea.batch.slurm import slurm_cluster

        cluster = slurm_cluster(dashboard_address=dashboard_address, **kw)
    else:
        from hepml_coffea.batch.htcondor import htcondor_cluster

        cluster = htcondor_cluster(dashboard_address=dashboard_address, **kw)
    try:
        cluster.scale(jobs=int(workers))
        client = Client(cluster, security=cluster.security)
    except BaseException:
        cluster.close()
        raise
    return cluster, client


def wait_for_workers(client: Any, n: int = 1, timeout: float = 600.0, cluster: Any = None) -> None:
    """Wait until ``n`` workers joined; on timeout say where the batch job logs are.

    Raises
    ------
    TimeoutError : naming the scheduler, the number of workers seen and, for a
        dask-jobqueue ``cluster``, its log directory and job ids.
    """
    try:
        client.wait_for_workers(int(n), timeout=timeout)
    except TimeoutError as err:
        seen = len(client.scheduler_info().get("workers", {}))
        where = ""
        if cluster is not None and hasattr(cluster, "workers"):
            jobs = [getattr(j, "job_id", None) for j in cluster.workers.values()]
            logdir = getattr(cluster, "_job_kwargs", {}).get("log_directory")
            where = f"; batch jobs {jobs}, worker logs in {logdir or 'the submit folder'}"
        msg = (f"only {seen} of {n} Dask worker(s) joined {client.scheduler.address} within {timeout:.0f} s"
               f"{where}; are the jobs still queued (squeue / condor_q), or can the workers not reach the scheduler?")
        raise TimeoutError(msg) from err
