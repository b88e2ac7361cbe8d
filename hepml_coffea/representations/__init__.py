"""Representations: constituents -> fixed-shape float32 network inputs.

Pure functions of ``(cands, jets, spec)``; training and inference share them.

* :func:`build_sequence` -> ``{"features" (N, C, P), "mask" (N, 1, P), "lengths" (N,)}``
* :func:`build_pointcloud` -> adds ``"points" (N, 2, P)`` (weaver ParticleNet contract)
* :func:`build_image` -> ``(N, n_channels, npix, npix)``
* :func:`knn_edges`, :func:`knn_indices`, :func:`to_pyg_batch`: kNN graphs in pure torch
  (:mod:`~hepml_coffea.representations.graph`, imported on first use: the package itself
  needs no torch)
* :func:`build_blocks` -> one ``(N, C, P)`` array per named input (weaver data configs)
* :func:`build`: dispatch on ``spec.kind``

Features are registered names (:data:`FEATURES`) or expressions written in the spec
(:mod:`~hepml_coffea.representations.expressions`), e.g. ``log(pt / sum(pt))``;
:meth:`InputSpec.required_cand_fields` lists the candidate branches a spec reads.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .expressions import FUNCTIONS, REDUCTIONS, ExpressionError, parse_expression
from .features import (
    FEATURES,
    LOG_FLOOR,
    STANDARD_FEATURES,
    FeatureContext,
    MissingFieldError,
    check_feature,
    feature_fields,
    known_features,
    register_feature,
    safe_log,
    wrap_phi,
)
from .blocks import build_blocks
from .image import build_image
from .pointcloud import build_pointcloud
from .sequence import build_sequence
from .spec import (
    COLLECTIONS,
    IMAGE_CHANNELS,
    BlockSpec,
    InputSpec,
    VarSpec,
    default_image_spec,
    default_pointcloud_spec,
    default_sequence_spec,
)

__all__ = [
    "COLLECTIONS",
    "BlockSpec",
    "build_blocks",
    "FEATURES",
    "FUNCTIONS",
    "IMAGE_CHANNELS",
    "LOG_FLOOR",
    "REDUCTIONS",
    "STANDARD_FEATURES",
    "ExpressionError",
    "FeatureContext",
    "InputSpec",
    "MissingFieldError",
    "VarSpec",
    "build",
    "build_image",
    "build_pointcloud",
    "build_sequence",
    "check_feature",
    "default_image_spec",
    "default_pointcloud_spec",
    "default_sequence_spec",
    "feature_fields",
    "knn_edges",
    "knn_indices",
    "known_features",
    "parse_expression",
    "register_feature",
    "safe_log",
    "to_pyg_batch",
    "wrap_phi",
]


def build(cands: ak.Array, jets: ak.Array, spec: InputSpec, svs: ak.Array | None = None) -> dict[str, np.ndarray]:
    """Build the representation named by ``spec.kind``.

    Parameters
    ----------
    cands
        ``(N, var)`` constituent records carrying :meth:`InputSpec.required_cand_fields`
        (e.g. ``JetConstituents.cands``).
    jets
        ``(N,)`` jet records carrying :meth:`InputSpec.required_jet_fields`.
    spec
        The model's :class:`InputSpec`.

    Returns
    -------
    dict
        ``sequence``: see :func:`build_sequence`; ``pointcloud``: see
        :func:`build_pointcloud`; ``image``: ``{"image": (N, n_channels, npix, npix)}``.

    Shapes:
        sequence: features ``(N, C, P)``, mask ``(N, 1, P)``, lengths ``(N,)``;
        pointcloud: adds points ``(N, D, P)``; image: ``(N, n_channels, npix, npix)``.
    """
    if spec.kind == "sequence":
        return build_sequence(cands, jets, spec)
    if spec.kind == "pointcloud":
        return build_pointcloud(cands, jets, spec)
    if spec.kind == "image":
        return {"image": build_image(cands, jets, spec)}
    if spec.kind == "blocks":
        return build_blocks(cands, jets, spec, svs)
    raise ValueError(f"unknown spec kind {spec.kind!r}")


_GRAPH = ("knn_edges", "knn_indices", "to_pyg_batch")


def __getattr__(name: str) -> object:
    """The torch kNN helpers, imported on first use (:mod:`.graph` needs torch)."""
    if name in _GRAPH:
        from . import graph

        return getattr(graph, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
