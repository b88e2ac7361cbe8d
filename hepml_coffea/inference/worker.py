"""Per-worker set-up for Dask: load and warm the taggers when a worker starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["TaggerWarmup", "limit_torch_threads", "warm_up"]

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
            warm_up(t)
            log.info("worker %s: %s loaded on %s (pid %d)", worker.address, t.name, t.device, os.getpid())


def warm_up(tagger: Any) -> None:
    """Run a tagger once on a synthetic two-particle jet: compiles the numba kernels of
    its representation and initialises the device, so the first chunk is not slower."""
    import awkward as ak
    import numpy as np

    from hepml_coffea.inference.engine import predict
    from hepml_coffea.representations import build

    spec = tagger.artifact.spec
    if spec is None:
        return
    jets = ak.Array([{"pt": 600.0, "eta": 0.0, "phi": 0.0, "mass": 170.0, "energy": 625.0}])
    cands = ak.Array([[
        {"pt": 400.0, "eta": 0.05, "phi": 0.02, "mass": 0.0, "energy": 400.5, "charge": 1.0, "pdgId": 211.0},
        {"pt": 200.0, "eta": -0.1, "phi": -0.05, "mass": 0.0, "energy": 201.0, "charge": 0.0, "pdgId": 22.0},
    ]])
    built = build(cands, jets, spec)
    arrays = [np.asarray(built[k]) for k in tagger.input_names]
    predict(tagger.model, arrays, device=tagger.device, batch_size=1, amp=tagger.amp)
