"""The environment every worker process we start gets (local Dask workers, batch jobs).

One BLAS/OpenMP thread per Dask thread, plus the allocator settings of
:func:`hepml_coffea.inference.worker.worker_environment` (see BENCHMARKS.md). Used by
:mod:`hepml_coffea.batch.clusters` (local and dask-jobqueue clusters) and by the batch-job writers
in :mod:`hepml_coffea.batch.htcondor` and :mod:`hepml_coffea.batch.slurm`, which import it from here so that
no batch module imports the cluster factory.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["worker_env", "export_lines"]


def worker_env(threads_per_worker: int = 1) -> dict[str, str]:
    """Environment variables every Dask worker process of ours starts with.

    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` equal to the
    worker's Dask threads (torch on CPU runs one chunk per thread), merged with
    ``hepml_coffea.inference.worker.worker_environment()`` (allocator settings) when the
    engine provides it; its values win.
    """
    n = str(max(1, int(threads_per_worker)))
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
    try:
        from hepml_coffea.inference.worker import worker_environment  # type: ignore[attr-defined]
    except ImportError:
        return env
    env.update({str(k): str(v) for k, v in worker_environment().items()})
    return env


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines (shell-quoted) for a batch job script."""
    import shlex

    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
