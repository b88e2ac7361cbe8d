"""Typed configuration: what a tagger is (from its artifact) and how a run is executed.

* :class:`TaggerConfig` — one tagger as the scoring layer needs it: name, artifact path
  and hash, input kind, input spec (plain data) and working points. Made from a verified
  artifact by :meth:`TaggerConfig.from_artifact`; frozen, small, picklable, no model.
* :class:`RunConfig` — how :func:`hepml_coffea.batch.run.run_fileset` executes: executor,
  workers, chunk size, scheduler address, dashboard, bad-file policy.
* :class:`ConfigurationError` — a mistake in the configuration (a device that does not
  exist, an unknown executor, contradictory options). It is never turned into a
  skipped chunk, whatever the skip policy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from hepml_coffea.selection import TrainingDomain

__all__ = ["ConfigurationError", "TaggerConfig", "RunConfig", "EXECUTORS", "load_taggers"]

#: executors :func:`hepml_coffea.batch.run.run_fileset` knows
EXECUTORS: tuple[str, ...] = ("iterative", "futures", "dask", "dask-cuda", "slurm", "htcondor")


class ConfigurationError(RuntimeError):
    """A configuration mistake (never skipped as bad input)."""


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
        """Verify an artifact (hash, spec vs model) and describe it; the model is dropped."""
        from hepml_coffea.artifacts import load_artifact, resolve_artifact

        art = load_artifact(name_or_path)
        return cls(
            name=art.name,
            path=os.fspath(resolve_artifact(name_or_path).resolve()),
            hash=art.hash,
            input_kind=art.input_kind,
            spec=_freeze(art.spec.to_dict()) if art.spec is not None else None,
            working_points={k: float(v) for k, v in art.working_points().items()},
            classes=tuple(art.classes),
            domain=art.domain,
        )

    @property
    def build_key(self) -> str:
        """Taggers with equal keys are fed from one representation build.

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


def load_taggers(taggers: Any = None, default: tuple[str, ...] = ()) -> tuple[TaggerConfig, ...]:
    """Tagger configs for names / artifact paths / ready :class:`TaggerConfig`s.

    ``None`` means the ``default`` names that are shipped. Names must be unique.
    """
    from hepml_coffea.artifacts import ArtifactError, shipped_taggers

    if taggers is None:
        shipped = shipped_taggers()
        taggers = [t for t in default if t in shipped]
        if not taggers:
            msg = "no shipped taggers found in the package; pass artifact paths with taggers=[...]"
            raise ArtifactError(msg)
    if isinstance(taggers, (str, os.PathLike, TaggerConfig)):
        taggers = [taggers]
    out: list[TaggerConfig] = []
    for t in taggers:
        cfg = t if isinstance(t, TaggerConfig) else TaggerConfig.from_artifact(t)
        if any(o.name == cfg.name for o in out):
            msg = f"two taggers are named {cfg.name!r}; tagger names must be unique"
            raise ValueError(msg)
        out.append(cfg)
    if not out:
        msg = "no taggers given: pass shipped tagger names or artifact directories"
        raise ConfigurationError(msg)
    return tuple(out)


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
