"""What a model's output becomes: class probabilities, and a multi-class model's top score.

* :func:`softmax_rows`: ``(N, C)`` logits -> class probabilities (torch);
* :func:`class_score`: the artifact's score expression (e.g. ``Tbqq / (Tbqq + QCD)``) on
  class probabilities (the parsed expression is cached per process).

(The top score of a two-class model is :func:`hepml_coffea.inference.batching.scores_from_output`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepml_coffea.artifacts import Artifact, ArtifactError
from hepml_coffea.representations.expressions import parse_expression

__all__ = ["class_score", "softmax_rows"]


def softmax_rows(out: Any) -> Any:
    """(N, C) logits -> (N, C) probabilities (torch)."""
    import torch

    return torch.softmax(out.float(), dim=1)


def class_score(artifact: Artifact, probs: np.ndarray) -> np.ndarray:
    """The artifact's score expression (e.g. ``Tbqq / (Tbqq + QCD)``) on class probabilities.

    Shapes:
        probs ``(N, n_classes)`` -> ``(N,)`` float32
    """
    expr = artifact.score_expression
    if not expr:
        msg = f"artifact {artifact.path}: a multi-class model needs a score expression in model.yaml"
        raise ArtifactError(msg)
    return parse_expression(expr).evaluate(_ClassColumns(artifact.classes, probs)).astype(np.float32)


class _ClassColumns:
    """What a score expression reads: one column per class, by name (one row per jet)."""

    def __init__(self, classes: tuple[str, ...], probs: np.ndarray) -> None:
        self.index = {c: i for i, c in enumerate(classes)}
        self.probs = np.asarray(probs, dtype=np.float64)
        n = len(self.probs)
        self.n_constituents = n
        self.counts = np.ones(n, dtype=np.int64)
        self.starts = np.arange(n, dtype=np.int64)

    def cand(self, name: str) -> np.ndarray:
        return self.probs[:, self.index[name]]

    def jet(self, name: str) -> np.ndarray:
        return self.cand(name)

    def jet_of_constituent(self) -> np.ndarray:
        return self.starts
