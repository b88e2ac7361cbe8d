"""Dense, batched k-nearest-neighbour helpers shared by the ParticleNet paths.

The kNN itself is :func:`hepml_coffea.knn.dense_knn` (re-exported
here as :func:`knn_indices`), the one kNN of the package; this module adds the
neighbour gathering and EdgeConv edge features.

Everything here works on padded, channel-first tensors as produced by the
representations layer and is TorchScript-scriptable (no torch-cluster /
pyg-lib needed).

Neighbour convention (used by both the dense and the torch-geometric path of
:mod:`hepml_coffea.models.particlenet`):

* a particle is never its own neighbour;
* padded particles (mask 0) are never neighbours;
* if a real particle has fewer than ``k`` other real particles available, the
  missing slots are *phantom* neighbours whose features are all zero, i.e. the
  edge feature becomes ``[x_i, 0 - x_i]``.  This is exactly what weaver-core's
  ParticleNet does in practice (it picks padded particles, pushed 1e9 away,
  whose features are zero), but it no longer depends on how much padding the
  jet happens to have, so results are padding invariant even when ``P <= k``.

Shapes:
    x:    (N, C, P)  coordinates used for the distance
    mask: (N, 1, P)  1.0 real, 0.0 padding
    idx:  (N, P, k)  int64 neighbour indices into the P axis
    valid:(N, P, k)  bool, False for phantom slots
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepml_coffea.knn import dense_knn as knn_indices
from hepml_coffea.knn import pairwise_sqdist

__all__ = ["edge_features", "gather_neighbors", "knn_indices", "pairwise_sqdist"]

def gather_neighbors(x: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
    """Features of the neighbours, zero for phantom (invalid) slots.

    Shapes:
        x: (N, C, P), idx: (N, P, k), valid: (N, P, k) -> (N, C, P, k)
    """
    n, c, p = x.size(0), x.size(1), x.size(2)
    k = idx.size(-1)
    base = torch.arange(n, device=x.device).view(-1, 1, 1) * p
    flat = (idx + base).reshape(-1)
    nb = x.transpose(1, 2).reshape(n * p, c)[flat].view(n, p, k, c)
    nb = nb * valid.unsqueeze(-1).to(x.dtype)
    return nb.permute(0, 3, 1, 2)


def edge_features(x: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
    """EdgeConv edge features ``[x_i, x_j - x_i]``.

    Shapes:
        x: (N, C, P), idx/valid: (N, P, k) -> (N, 2C, P, k)
    """
    k = idx.size(-1)
    nb = gather_neighbors(x, idx, valid)
    xi = x.unsqueeze(-1).expand(-1, -1, -1, k)
    return torch.cat((xi, nb - xi), dim=1)
