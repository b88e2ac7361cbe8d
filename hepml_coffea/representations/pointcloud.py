"""Point clouds in weaver's ParticleNet ``forward(points, features, mask)`` layout.

Shares the flattening / feature / padding path of
:mod:`~hepml_coffea.representations.sequence`.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .sequence import _flatten, _mask_lengths, _padded
from .spec import InputSpec, VarSpec

__all__ = ["build_pointcloud"]


def build_pointcloud(cands: ak.Array, jets: ak.Array, spec: InputSpec) -> dict[str, np.ndarray]:
    """Point-cloud input for ParticleNet-style networks.

    Parameters
    ----------
    cands, jets
        As in :func:`~hepml_coffea.representations.sequence.build_sequence`.
    spec
        :class:`InputSpec`; uses ``points``, ``features`` and ``length``.

    Returns
    -------
    dict
        ``points``: ``(n_jets, len(spec.points), P)`` float32 geometric
        coordinates (default (deta, dphi)), *not* transformed, zero on padding;
        ``features``: ``(n_jets, C, P)`` float32 (as in ``build_sequence``);
        ``mask``: ``(n_jets, 1, P)`` float32; ``lengths``: ``(n_jets,)`` int64.

    Shapes:
        cands ``(N, var)`` records, jets ``(N,)`` records ->
        points ``(N, D, P)``, features ``(N, C, P)``, mask ``(N, 1, P)``, lengths ``(N,)``,
        with ``D = len(spec.points)``, ``C = len(spec.features)``, ``P = spec.length``.
    """
    flat = _flatten(cands, jets)
    P = spec.length
    mask, lengths = _mask_lengths(flat.counts, P)
    points = _padded(flat, [VarSpec(p) for p in spec.points], P, transform=False, pad_mode=spec.pad_mode)
    features = _padded(flat, spec.features, P, pad_mode=spec.pad_mode)
    return {"points": points, "features": features, "mask": mask, "lengths": lengths}
