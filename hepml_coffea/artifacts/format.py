"""The artifact format: what an artifact directory holds and the loaded :class:`Artifact`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepml_coffea.representations import InputSpec
from hepml_coffea.selection import TrainingDomain

__all__ = ["FORMAT", "HASHED", "INPUT_NAMES", "ONNX_ONLY", "Artifact", "ArtifactError", "ArtifactIntegrityError"]

FORMAT = "hepml-coffea-artifact/1"
HASHED = ("model.yaml", "weights.safetensors", "baseline.json", "metrics.json", "model.ts", "model.onnx",
          "model.pt2", "weaver_preprocess.json", "weaver_data_config.yaml", "LICENSE", "PROVENANCE.md",
          "probe.npz")

#: class_name of an imported ONNX graph without torch weights (runs in ONNX Runtime only)
ONNX_ONLY = "ONNX"

#: forward() argument names per input kind, in order
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "sequence": ("features", "mask"),
    "pointcloud": ("points", "features", "mask"),
    "observables": ("msoftdrop", "tau32"),
    "blocks": (),  # named by the spec's blocks (InputSpec.input_names)
}


class ArtifactError(ValueError):
    """An artifact is missing, malformed, or does not fit the request."""


class ArtifactIntegrityError(ArtifactError):
    """An artifact's files do not match their recorded checksums."""


@dataclass
class Artifact:
    """A loaded artifact (model built on CPU, in eval mode)."""

    path: Path
    name: str
    hash: str
    class_name: str
    input_kind: str
    spec: InputSpec | None
    model: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: manifest.json's file -> sha256, read once when the artifact was verified
    files: dict[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's inputs in forward() order (a ``blocks`` spec names its own)."""
        if self.input_kind == "blocks" and self.spec is not None:
            return tuple(self.spec.input_names or ())
        return INPUT_NAMES[self.input_kind]

    @property
    def classes(self) -> tuple[str, ...]:
        """Output class names of a multi-class model (empty for a top-vs-QCD model)."""
        return tuple(self.meta.get("classes") or ())

    @property
    def score_expression(self) -> str | None:
        """The top score as an expression over :attr:`classes` (multi-class models)."""
        rec = self.meta.get("score")
        return str(rec) if rec else None

    def working_points(self) -> dict[str, float]:
        return dict(self.metrics.get("working_points", {}))

    @property
    def domain(self) -> TrainingDomain | None:
        """The phase space the model was trained on (``None`` if the artifact records none)."""
        return TrainingDomain.from_meta(self.meta)

    @property
    def cpu_backend(self) -> str | None:
        """The CPU execution backend recorded at sealing time (``"torch"``, ``"compile"``,
        ``"onnxruntime"``, ``"aoti"``), or ``None`` if none was measured."""
        rec = self.meta.get("cpu_backend")
        return str(rec["chosen"]) if isinstance(rec, dict) and rec.get("chosen") else None

    def file_digest(self, fname: str) -> str | None:
        """The sha256 that manifest.json records for ``fname`` (None if not part of it), as
        verified when the artifact was loaded (the manifest is not read again)."""
        if not self.files:  # an Artifact made by hand, not by load_artifact
            self.files.update(json.loads((self.path / "manifest.json").read_text()).get("files", {}))
        return self.files.get(fname)
