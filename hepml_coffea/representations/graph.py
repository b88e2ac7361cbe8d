"""k-nearest-neighbour graphs in (deta, dphi), pure torch.

``torch_geometric.nn.knn_graph`` needs ``torch-cluster``/``pyg-lib``, which are
not installed; these functions use ``torch.cdist`` + ``torch.topk`` on the
padded point cloud instead (chunked over jets to bound memory).

Distances are plain Euclidean in the point coordinates (no phi wrap: the
points are already jet-relative).  Padded slots are neither centres nor
neighbours; there are no self loops.  A jet with ``n <= k`` real particles
connects each particle to its ``n - 1`` others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["knn_edges", "knn_indices", "to_pyg_batch"]

_CHUNK = 1024


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _mask_bool(mask: Any, n: int, P: int) -> torch.Tensor:
    m = _as_tensor(mask)
    return m.reshape(n, P) != 0


def _knn(points: torch.Tensor, m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, k) local neighbour indices and validity, for one chunk."""
    N, _, P = points.shape
    pts = points.transpose(1, 2).contiguous()
    if not pts.is_floating_point():
        pts = pts.float()
    d = torch.cdist(pts, pts, compute_mode="donot_use_mm_for_euclid_dist")
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    d = torch.where(m[:, None, :], d, inf)  # padded neighbours excluded
    eye = torch.eye(P, dtype=torch.bool, device=d.device)
    d = d.masked_fill(eye, float("inf"))  # no self loops
    kk = min(k, P)
    vals, idx = torch.topk(d, kk, dim=-1, largest=False, sorted=True)
    valid = torch.isfinite(vals) & m[:, :, None]
    self_idx = torch.arange(P, device=d.device).view(1, P, 1).expand(N, P, kk)
    idx = torch.where(valid, idx, self_idx)
    if kk < k:
        extra = k - kk
        idx = torch.cat([idx, self_idx[:, :, :1].expand(N, P, extra)], dim=-1)
        valid = torch.cat([valid, torch.zeros(N, P, extra, dtype=torch.bool, device=d.device)], -1)
    return idx, valid


def knn_indices(
    points: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    k: int,
    return_valid: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dense kNN neighbour indices within each jet.

    Parameters
    ----------
    points
        ``(N, D, P)`` coordinates (``D = 2``: deta, dphi).
    mask
        ``(N, 1, P)`` or ``(N, P)``; nonzero = real particle.
    k
        Number of neighbours.
    return_valid
        Also return the ``(N, P, k)`` bool validity mask.

    Returns
    -------
    torch.LongTensor
        ``(N, P, k)`` slot indices (into the ``P`` axis) of the nearest real
        neighbours, closest first.  Slots with no valid neighbour (padded
        centres, or real centres with fewer than ``k`` other real particles)
        hold the centre's own index ``p``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pts = _as_tensor(points)
    N, _, P = pts.shape
    m = _mask_bool(mask, N, P).to(pts.device)
    if N == 0 or P == 0:
        idx = torch.zeros((N, P, k), dtype=torch.long)
        valid = torch.zeros((N, P, k), dtype=torch.bool)
    else:
        parts = [_knn(pts[s : s + _CHUNK], m[s : s + _CHUNK], k) for s in range(0, N, _CHUNK)]
        idx = torch.cat([p[0] for p in parts])
        valid = torch.cat([p[1] for p in parts])
    return (idx, valid) if return_valid else idx


def knn_edges(
    points: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor, k: int
) -> torch.Tensor:
    """Batched kNN ``edge_index`` over the real particles of all jets.

    Parameters
    ----------
    points
        ``(N, D, P)`` coordinates.
    mask
        ``(N, 1, P)`` or ``(N, P)``; nonzero = real particle.
    k
        Number of neighbours per centre.

    Returns
    -------
    torch.LongTensor
        ``(2, E)`` edge index.  Nodes are the real particles numbered in
        row-major ``(jet, slot)`` order (as ``features.transpose(0, 2, 1)[mask]``).
        ``edge_index[0]`` is the neighbour (source) and ``edge_index[1]`` the
        centre (target), the ``flow="source_to_target"`` convention of
        ``torch_geometric.nn.knn_graph``.  Edges are grouped by centre, closest
        neighbour first.
    """
    pts = _as_tensor(points)
    N, _, P = pts.shape
    m = _mask_bool(mask, N, P).to(pts.device)
    idx, valid = knn_indices(pts, m, k, return_valid=True)  # type: ignore[misc]
    node = torch.cumsum(m.reshape(-1).long(), 0) - 1  # global id of each real slot
    jet = torch.arange(N, device=pts.device).view(N, 1, 1) * P
    centre = (jet + torch.arange(P, device=pts.device).view(1, P, 1)).expand_as(idx)
    nbr = jet + idx
    sel = valid
    src = node[nbr[sel]]
    dst = node[centre[sel]]
    return torch.stack([src, dst]).long()


def to_pyg_batch(pointcloud: dict[str, Any], k: int = 16) -> Any:
    """Convert a :func:`build_pointcloud` dict into a ``torch_geometric`` batch.

    Parameters
    ----------
    pointcloud
        Dict with ``points (N, 2, P)``, ``features (N, C, P)``, ``mask (N, 1, P)``.
    k
        Neighbours per particle.

    Returns
    -------
    torch_geometric.data.Batch
        ``x (n_real, C)`` float32, ``pos (n_real, 2)``, ``edge_index (2, E)``
        (see :func:`knn_edges`), ``batch (n_real,)`` jet index, ``ptr (N + 1,)``;
        ``num_graphs == N`` including jets without particles.
    """
    from torch_geometric.data import Batch

    points = _as_tensor(pointcloud["points"])
    feats = _as_tensor(pointcloud["features"])
    N, _, P = points.shape
    m = _mask_bool(pointcloud["mask"], N, P)
    x = feats.transpose(1, 2)[m].contiguous()
    pos = points.transpose(1, 2)[m].contiguous()
    counts = m.sum(1)
    batch = torch.repeat_interleave(torch.arange(N), counts)
    ptr = torch.zeros(N + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    edge_index = knn_edges(points, m, k)
    out = Batch(x=x, pos=pos, edge_index=edge_index, batch=batch, ptr=ptr)
    out._num_graphs = N
    return out
