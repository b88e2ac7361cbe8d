"""Per-worker set-up for Dask: load and warm the taggers when a worker starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["TaggerWarmup", "limit_torch_threads"]

log = logging.getLogger("hepml_coffea.inference")


def limit_torch_threads(n: int) -> None:
    """Limit torch intra-op threads (CPU workers: one per Dask thread)."""
    import torch

    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class TaggerWarmup(WorkerPlugin):  # type: ignore[misc]
    """Loads the configured taggers into the worker process's cache at start-up.

    Parameters
    ----------
    paths : artifact directories (as held by ``TaggerProcessor.taggers[i]["path"]``)
    device : ``"auto"``, ``"cpu"`` or ``"cuda"``; under dask-cuda each worker sees one
        GPU through ``CUDA_VISIBLE_DEVICES`` and ``"auto"`` picks it
    amp : autocast dtype name or ``None``
    """

    name = "hepml-coffea-tagger-warmup"

    def __init__(self, paths: Sequence[str], device: str = "auto", amp: str | None = None) -> None:
        self.paths = list(paths)
        self.device = device
        self.amp = amp

    def setup(self, worker: Any) -> None:
        from hepml_coffea.inference.engine import get_tagger, resolve_device

        dev = resolve_device(self.device)
        if dev == "cpu":
            limit_torch_threads(getattr(worker.state, "nthreads", None) or getattr(worker, "nthreads", 1) or 1)
        for p in self.paths:
            t = get_tagger(p, self.device, self.amp)
            log.info("worker %s: %s loaded on %s (pid %d)", worker.address, t.name, t.device, os.getpid())
