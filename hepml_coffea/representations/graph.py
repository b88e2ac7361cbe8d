"""k-nearest-neighbour graphs in (deta, dphi) for the representations layer.

The code lives in :mod:`hepml_coffea.knn` (a leaf below both representations and
models, so that neither imports the other); this module re-exports its public names.
"""

from __future__ import annotations

from hepml_coffea.knn import (
    KNN_MODES,
    dense_knn,
    export_mode,
    knn_edges,
    knn_indices,
    pairwise_sqdist,
    to_pyg_batch,
)

__all__ = ["KNN_MODES", "dense_knn", "export_mode", "knn_edges", "knn_indices", "pairwise_sqdist", "to_pyg_batch"]
