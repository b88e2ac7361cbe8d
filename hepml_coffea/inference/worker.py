"""Per-worker set-up for Dask: allocator settings, torch threads, taggers loaded at start.

Tagging on a CPU worker spends most of its time in forward passes whose large temporary
tensors are allocated and freed every batch. Dask's nanny starts every worker with
``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``), which makes
glibc hand those buffers back to the kernel after each batch and fault them in again:
ParticleNet-Lite spends ~3x more CPU time per jet (benchmarks/probe_malloc.py).
:func:`worker_environment` gives the settings measured best instead; our clusters
(:mod:`hepml_coffea.clusters`) start every worker with them, and :class:`TaggerWarmup`
applies what can still be applied at run time (:func:`apply_allocator_settings`) on a
cluster we did not start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = [
    "TaggerWarmup",
    "allocator_problems",
    "apply_allocator_settings",
    "limit_torch_threads",
    "warm_up",
    "worker_environment",
]

log = logging.getLogger("hepml_coffea.inference")

#: freed memory above this much at the top of the heap is returned to the kernel
TRIM_THRESHOLD = 1 << 30

# glibc mallopt() parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def worker_environment() -> dict[str, str]:
    """Environment variables a CPU tagging worker should be started with.

    * ``MALLOC_ARENA_MAX=1``: the task thread allocates from glibc's main heap (grown with
      ``brk``) instead of a per-thread arena made of 64 MiB ``mmap`` heaps that glibc
      creates and deletes as the forward-pass temporaries come and go;
    * ``MALLOC_MMAP_MAX_=0``: large blocks are not served by a fresh ``mmap`` (zeroed and
      faulted in again on every batch) but from the heap, where freed blocks are reused;
    * ``MALLOC_TRIM_THRESHOLD_=1073741824``: the heap is trimmed only when more than 1 GiB
      is free at its top. This replaces Dask's default 65536, which returns the
      temporaries to the kernel after every batch.

    Measured on the shipped ParticleNet-Lite, one torch thread, the model run in a
    worker thread as Dask does (``benchmarks/probe_malloc.py``): system time 250 -> 25 us
    per jet against glibc's defaults, ~3x less total CPU time than with Dask's default,
    and a lower peak RSS. The variables are read when the process starts: set them
    before the worker process is spawned (``distributed.nanny.pre-spawn-environ``, or
    the job script of a batch worker). ``GLIBC_TUNABLES``, when set, takes precedence.

    Returns
    -------
    dict
        variable -> value, to merge into a worker's environment.
    """
    return {
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    }


def allocator_problems(environ: dict[str, str] | None = None) -> list[str]:
    """What in ``environ`` (default: this process's) differs from :func:`worker_environment`.

    Returns
    -------
    list of str
        one sentence per variable that is missing or set otherwise; empty when the
        process runs with the recommended settings.
    """
    env = dict(os.environ if environ is None else environ)
    out = []
    for key, want in worker_environment().items():
        have = env.get(key)
        if have != want:
            out.append(f"{key}={have!r} (recommended {want})" if have is not None else f"{key} unset (recommended {want})")
    return out


def apply_allocator_settings() -> bool:
    """Apply :func:`worker_environment`'s settings to the running process with ``mallopt``.

    For workers started without them (a cluster the user brought). The trim threshold and
    the mmap limit take effect at once; the arena limit only for threads that have not
    allocated yet, so starting the worker with the variables set is still better.

    Returns
    -------
    bool
        True if glibc accepted the settings, False where there is no glibc ``mallopt``.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    ok &= bool(mallopt(_M_MMAP_MAX, 0))
    ok &= bool(mallopt(_M_ARENA_MAX, 1))
    return ok


def limit_torch_threads(n: int) -> None:
    """Limit torch intra-op threads (CPU workers: one per Dask thread)."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class TaggerWarmup(WorkerPlugin):  # type: ignore[misc]
    """Loads the configured taggers into the worker process's cache at start-up.

    On a CPU worker it also limits torch to the worker's Dask threads and, if the worker
    was started without :func:`worker_environment`, applies the allocator settings at run
    time (:func:`apply_allocator_settings`) and logs which variables were missing.

    Parameters
    ----------
    paths : artifact directories (``TaggerConfig.path``) or shipped tagger names
    device : ``"auto"``, ``"cpu"`` or ``"cuda"``; under dask-cuda each worker sees one
        GPU through ``CUDA_VISIBLE_DEVICES`` and ``"auto"`` picks it
    amp : autocast dtype name or ``None``
    backend : execution backend (see :func:`hepml_coffea.inference.engine.get_tagger`)
    rntuple_index : install :func:`hepml_coffea.data.io.index_rntuple_fields` in the worker;
        ``None`` (default): do what the process that made the plugin did (the command
        line installs it; a library user who called it gets it on the workers too)
    """

    name = "hepml-coffea-tagger-warmup"

    def __init__(self, paths: Sequence[str], device: str = "auto", amp: str | None = None,
                 backend: str = "auto", rntuple_index: bool | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.device = device
        self.amp = amp
        self.backend = backend
        if rntuple_index is None:
            import sys

            io = sys.modules.get("hepml_coffea.data.io")
            rntuple_index = bool(io is not None and io.rntuple_index_installed())
        self.rntuple_index = rntuple_index

    def setup(self, worker: Any) -> None:
        from hepml_coffea.inference.engine import get_tagger, resolve_device

        if self.rntuple_index:
            from hepml_coffea.data.io import index_rntuple_fields

            index_rntuple_fields()

        dev = resolve_device(self.device)
        if dev == "cpu":
            limit_torch_threads(getattr(worker.state, "nthreads", None) or getattr(worker, "nthreads", 1) or 1)
            problems = allocator_problems()
            if problems:
                applied = apply_allocator_settings()
                log.warning(
                    "worker %s started without the recommended allocator settings (%s); %s. Start workers "
                    "with hepml_coffea.inference.worker.worker_environment() (see BENCHMARKS.md)",
                    worker.address, "; ".join(problems),
                    "applied at run time with mallopt" if applied else "could not apply them at run time")
        for p in self.paths:
            t = get_tagger(p, self.device, self.amp, backend=self.backend)
            warm_up(t)
            log.info("worker %s: %s loaded on %s, backend %s (pid %d)", worker.address, t.name, t.device,
                     t.backend, os.getpid())


def warm_up(tagger: Any) -> None:
    """Run a tagger once on a synthetic two-particle jet: compiles the numba kernels of
    its representation, initialises the device and the backend, so the first chunk is
    not slower. The jet carries every candidate, jet and secondary-vertex field the
    tagger's spec reads (extra fields 1.0), so any input spec warms up."""
    import awkward as ak
    import numpy as np

    from hepml_coffea.representations import build

    spec = tagger.artifact.spec
    if spec is None:
        tagger.predict({"msoftdrop": np.array([170.0]), "tau32": np.array([0.5])})
        return
    jet = {"pt": 600.0, "eta": 0.0, "phi": 0.0, "mass": 170.0, "energy": 625.0}
    jet.update({f: 1.0 for f in spec.required_jet_fields() if f not in jet})
    parts = [
        {"pt": 400.0, "eta": 0.05, "phi": 0.02, "mass": 0.0, "energy": 400.5, "charge": 1.0, "pdgId": 211.0},
        {"pt": 200.0, "eta": -0.1, "phi": -0.05, "mass": 0.0, "energy": 201.0, "charge": 0.0, "pdgId": 22.0},
    ]
    for p in parts:
        p.update({f: 1.0 for f in spec.required_cand_fields() if f not in p})
    sv_fields = spec.required_sv_fields()
    svs = ak.Array([[{**{f: 1.0 for f in sv_fields}, "eta": 0.01}]]) if sv_fields else None
    built = build(ak.Array([parts]), ak.Array([jet]), spec, svs=svs)
    tagger.predict({k: np.asarray(built[k]) for k in tagger.input_names}, batch_size=1)
