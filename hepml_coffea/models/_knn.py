"""Dense, batched k-nearest-neighbour helpers shared by the ParticleNet paths.

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

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pairwise_sqdist", "knn_indices", "gather_neighbors", "edge_features"]

#: True only while :mod:`hepml_coffea.inference.backends` exports a model to ONNX
ONNX_EXPORT = False


def _onnx_topk() -> bool:
    """True while exporting to ONNX (TorchScript: always False, the stable sort is scripted)."""
    if torch.jit.is_scripting():
        return False
    return bool(globals()["ONNX_EXPORT"])


def pairwise_sqdist(x: Tensor) -> Tensor:
    """Squared Euclidean distances between all pairs of points of each jet.

    Shapes:
        x: (N, C, P) -> (N, P, P)
    """
    xx = (x * x).sum(dim=1, keepdim=True)  # (N, 1, P)
    inner = torch.bmm(x.transpose(1, 2), x)  # (N, P, P)
    return (xx.transpose(1, 2) - 2.0 * inner + xx).clamp_min(0.0)


def knn_indices(x: Tensor, mask: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """Indices of the ``k`` nearest *other real* particles of every particle.

    Distances are computed on ``x`` detached (indices carry no gradient).
    Slots that cannot be filled (fewer than ``k`` other real particles) are
    flagged ``valid=False``; their index is clamped into range and must be
    ignored by the caller (see :func:`gather_neighbors`).

    Shapes:
        x: (N, C, P), mask: (N, 1, P) -> idx (N, P, k) int64, valid (N, P, k) bool
    """
    d = pairwise_sqdist(x.detach())
    num_points = d.size(-1)
    invalid_col = mask < 0.5  # (N, 1, P): padded particles as candidates
    # the diagonal (a particle is not its own neighbour) from an index comparison, not
    # torch.eye: ONNX Runtime has no boolean EyeLike kernel, so this keeps the model exportable
    pos = torch.arange(num_points, device=x.device)
    self_pair = (pos.view(1, -1, 1) == pos.view(1, 1, -1))
    d = d.masked_fill(invalid_col | self_pair, float("inf"))
    # k extra always-invalid columns: topk(k) works even when P <= k, without a
    # data-dependent Python branch (so torch.jit.trace generalises over P).
    d = F.pad(d, (0, k), value=float("inf"))
    # equal distances are common (particles whose features are all zero after a ReLU):
    # a stable sort takes the lower index first, as ONNX's TopK does, so torch, the
    # ONNX export and trimmed batches pick the same neighbours
    if _onnx_topk():  # ONNX TopK takes the lower index first on ties by definition (and has no stable sort)
        dist, idx = d.topk(k, dim=-1, largest=False, sorted=True)
    else:
        dist, idx = torch.sort(d, dim=-1, stable=True)
        dist, idx = dist[..., :k], idx[..., :k]
    valid = torch.isfinite(dist)
    idx = idx.clamp(max=num_points - 1)
    return idx, valid


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
