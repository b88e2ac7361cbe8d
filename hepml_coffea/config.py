"""Typed configuration: what a tagger is (from its artifact) and how a run is executed.

* :class:`TaggerConfig` — one tagger as the scoring layer needs it: name, artifact path
  and hash, input kind, input spec (plain data, parsed once: :attr:`TaggerConfig.input_spec`)
  and working points. Made from a verified artifact by :meth:`TaggerConfig.from_artifact`
  (no model is built); frozen, small, picklable.
* :class:`RunConfig` — how :func:`hepml_coffea.batch.run.run_fileset` executes: executor,
  workers, chunk size, scheduler address, dashboard, bad-file policy.
* :class:`ConfigurationError` — a mistake in the configuration (a device that does not
  exist, an unknown executor, contradictory options). It is never turned into a
  skipped chunk, whatever the skip policy.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hepml_coffea.errors import ConfigurationError
from hepml_coffea.selection import TrainingDomain

if TYPE_CHECKING:
    from hepml_coffea.representations import InputSpec

__all__ = ["ConfigurationError", "TaggerConfig", "RunConfig", "EXECUTORS"]

#: executors :func:`hepml_coffea.batch.run.run_fileset` knows
EXECUTORS: tuple[str, ...] = ("iterative", "futures", "dask", "dask-cuda", "slurm", "htcondor")


def _freeze(obj: Any) -> Any:
    return json.loads(json.dumps(obj)) if obj is not None else None


@dataclass(frozen=True)
class TaggerConfig:
    """One tagger, as the scoring layer and the histograms need it.

    Parameters
    ----------
    name : tagger name (field name of its score column, histogram category)
    path : absolute path of the artifact directory
    hash : the artifact's content hash (checked again when a worker loads it)
    input_kind : ``"image"``, ``"sequence"``, ``"pointcloud"``, ``"blocks"`` or ``"observables"``
    spec : the artifact's input spec as plain data (``None`` for observables)
    working_points : working-point name (e.g. ``"eS50"``) -> score threshold
    classes : output classes of a multi-class (imported) model, empty otherwise
    domain : the training domain the artifact records (``None`` if it records none)
    """

    name: str
    path: str
    hash: str
    input_kind: str
    spec: dict[str, Any] | None = None
    working_points: dict[str, float] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    domain: TrainingDomain | None = None

    @classmethod
    def from_artifact(cls, name_or_path: str | os.PathLike[str]) -> TaggerConfig:
        """Verify an artifact (hashes, spec vs the model's recorded sizes, weights bound to
        its runtimes) and describe it; no torch model is built (see
        :func:`hepml_coffea.artifacts.load_artifact` with ``model=False``)."""
        from hepml_coffea.artifacts import load_artifact

        art = load_artifact(name_or_path, model=False)
        return cls(
            name=art.name,
            path=os.fspath(art.path.resolve()),
            hash=art.hash,
            input_kind=art.input_kind,
            spec=_freeze(art.spec.to_dict()) if art.spec is not None else None,
            working_points={k: float(v) for k, v in art.working_points().items()},
            classes=tuple(art.classes),
            domain=art.domain,
        )

    @functools.cached_property
    def input_spec(self) -> InputSpec | None:
        """:attr:`spec` parsed (once per object; ``None`` for observables)."""
        if self.input_kind == "observables" or self.spec is None:
            return None
        from hepml_coffea.representations.spec import InputSpec

        return InputSpec.from_dict(dict(self.spec))

    @functools.cached_property
    def build_key(self) -> str:
        """Taggers with equal keys are fed from one representation build (computed once).

        Sequence and point-cloud taggers share a key when they read the same particle
        features (the point-cloud build also holds the sequence arrays).
        """
        if self.input_kind == "observables" or self.spec is None:
            return "observables"
        if self.input_kind in ("image", "blocks"):
            return f"{self.input_kind}:" + json.dumps(self.spec, sort_keys=True)
        particles = {k: self.spec.get(k) for k in ("features", "length", "points", "pad_mode")}
        return "particles:" + json.dumps(particles, sort_keys=True)

    def describe(self) -> dict[str, str]:
        """Name, hash and path (what a run output records about each tagger)."""
        return {"name": self.name, "hash": self.hash, "path": self.path}


@dataclass(frozen=True)
class RunConfig:
    """How a fileset is executed (:func:`hepml_coffea.batch.run.run_fileset`).

    Parameters
    ----------
    executor : one of :data:`EXECUTORS`; ``"dask"`` starts a local CPU cluster,
        ``"dask-cuda"`` one worker per GPU, ``"slurm"``/``"htcondor"`` batch workers
    workers : local worker processes (dask, futures) or batch worker jobs
    scheduler : address of an existing Dask scheduler (then no cluster is started)
    chunksize : events per chunk
    skip_bad_files : leave out unreadable files and corrupt chunks, listing each with its
        reason and event count in the output; configuration errors still fail the run
    dashboard_address : where the local cluster serves its dashboard
    status : progress bar
    cluster_options : extra keyword arguments for the batch cluster (cores, memory, ...)
    allow_cpu_fallback : ``dask-cuda`` where dask-cuda / a GPU is missing: run on a CPU
        ``LocalCluster`` with a logged warning instead of failing (the default)
    """

    executor: str = "dask"
    workers: int = 2
    scheduler: str | None = None
    chunksize: int = 10_000
    skip_bad_files: bool = False
    dashboard_address: str = "127.0.0.1:8787"
    status: bool = True
    cluster_options: dict[str, Any] = field(default_factory=dict)
    allow_cpu_fallback: bool = False

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            msg = f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}"
            raise ConfigurationError(msg)
        if int(self.workers) < 1:
            msg = f"workers must be >= 1, got {self.workers}"
            raise ConfigurationError(msg)
        if int(self.chunksize) < 1:
            msg = f"chunksize must be >= 1, got {self.chunksize}"
            raise ConfigurationError(msg)

    @property
    def uses_dask(self) -> bool:
        return self.executor in ("dask", "dask-cuda", "slurm", "htcondor")
