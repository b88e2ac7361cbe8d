"""k-nearest-neighbour graphs in (deta, dphi), pure torch: the one kNN of the package.

A leaf module (imports nothing from the package) below both layers that use it:
:mod:`hepml_coffea.representations` re-exports the graph builders (:func:`knn_indices`,
:func:`knn_edges`, :func:`to_pyg_batch`, through :mod:`hepml_coffea.representations.graph`)
and :mod:`hepml_coffea.models` uses :func:`dense_knn` inside ParticleNet's EdgeConv blocks
(dense and torch-geometric paths, through ``hepml_coffea.models._knn``) and
:func:`to_pyg_batch` for its torch-geometric path; the exporters trace inside
:func:`export_mode`.

:func:`dense_knn` is the kNN every path uses. Squared distances from one batched matrix
product, equal distances resolved by the lower index (a stable sort; ONNX's TopK has the
same rule), TorchScript-scriptable and exportable to ONNX.

``torch_geometric.nn.knn_graph`` needs ``torch-cluster``/``pyg-lib``, which are
not installed; these functions use ``torch.cdist`` + ``torch.topk`` on the
padded point cloud instead (chunked over jets to bound memory).

Distances are plain Euclidean in the point coordinates (no phi wrap: the
points are already jet-relative).  Padded slots are neither centres nor
neighbours; there are no self loops.  A jet with ``n <= k`` real particles
connects each particle to its ``n - 1`` others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KNN_MODES", "dense_knn", "export_mode", "knn_edges", "knn_indices", "pairwise_sqdist", "to_pyg_batch"]

_CHUNK = 1024

#: how :func:`dense_knn` picks the k nearest (the same neighbours each way): ``"sort"`` (a
#: stable sort of every row: eager torch, TorchScript), ``"topk"`` (a top-k, lower index first
#: on ties as ONNX's TopK defines it: what ONNX exports need, having no stable sort),
#: ``"keys"`` (a top-k on unique integer keys: ~10x less work than sorting every row, for
#: compiled code such as AOTInductor)
KNN_MODES = ("sort", "topk", "keys")
# the mode of the models traced inside :func:`export_mode` (set only there, one export at a time)
_TRACING = {"mode": "sort"}


@contextmanager
def export_mode(mode: str) -> Iterator[None]:
    """Trace a model for an exporter: inside, :func:`dense_knn` calls that do not name a
    ``mode`` use ``mode`` (one of :data:`KNN_MODES`); the previous mode is restored on leaving."""
    if mode not in KNN_MODES:
        msg = f"kNN mode {mode!r} unknown; choose one of {list(KNN_MODES)}"
        raise ValueError(msg)
    before = _TRACING["mode"]
    _TRACING["mode"] = mode
    try:
        yield
    finally:
        _TRACING["mode"] = before


def _topk_tracing() -> bool:
    """True while tracing for ONNX (TorchScript: always False, the stable sort is scripted)."""
    if torch.jit.is_scripting():
        return False
    # read through globals(): torch.compile breaks its graph here, as it always has, so the
    # compiled kernels (and their rounding) stay as they were: scores bit for bit unchanged
    return globals()["_TRACING"]["mode"] == "topk"


def _keys_tracing() -> bool:
    """True while tracing for compiled code (TorchScript: always False)."""
    if torch.jit.is_scripting():
        return False
    # read through globals(), as above
    return globals()["_TRACING"]["mode"] == "keys"


def _topk_by_key(d: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest entries of each row, equal values by the lower column, as the
    stable sort orders them, from ``torch.topk`` (which leaves ties in any order) on
    integer keys ``(bits of the distance, column)``: the bits of a non-negative float32
    order as the floats do, and the column makes every key unique.

    Shapes:
        d: (N, P, Q) non-negative (``inf`` allowed) -> finite (N, P, k) bool, idx (N, P, k)
    """
    shift = 4294967296  # 2**32: the distance's bits (< 2**31) above the column
    inf_bits = 2139095040  # 0x7F800000, the bits of float32 inf
    bits = (d + 0.0).view(torch.int32).to(torch.int64)  # + 0.0: no -0.0 (its bits are negative)
    cols = torch.arange(d.size(-1), device=d.device, dtype=torch.int64)
    keys, idx = (bits * shift + cols).topk(k, dim=-1, largest=False, sorted=True)
    return keys < inf_bits * shift, idx


def pairwise_sqdist(x: Tensor) -> Tensor:
    """Squared Euclidean distances between all pairs of points of each jet.

    Shapes:
        x: (N, C, P) -> (N, P, P)
    """
    xx = (x * x).sum(dim=1, keepdim=True)  # (N, 1, P)
    inner = torch.bmm(x.transpose(1, 2), x)  # (N, P, P)
    return (xx.transpose(1, 2) - 2.0 * inner + xx).clamp_min(0.0)


def dense_knn(x: Tensor, mask: Tensor, k: int, mode: Optional[str] = None) -> tuple[Tensor, Tensor]:  # noqa: UP007 - TorchScript
    """Indices of the ``k`` nearest *other real* particles of every particle.

    ``mode``: one of :data:`KNN_MODES` (the same neighbours, computed as an exporter
    needs them); ``None``: ``"sort"``, or inside :func:`export_mode` that mode.

    Distances are computed on ``x`` detached (indices carry no gradient).
    Slots that cannot be filled (fewer than ``k`` other real particles) are
    flagged ``valid=False``; their index is clamped into range and must be
    ignored by the caller (see ``hepml_coffea.models._knn.gather_neighbors``).

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
    how = "sort"
    if mode is not None:
        how = mode
    elif _topk_tracing():
        how = "topk"
    elif _keys_tracing():
        how = "keys"
    if how == "topk":  # ONNX TopK takes the lower index first on ties by definition (and has no stable sort)
        dist, idx = d.topk(k, dim=-1, largest=False, sorted=True)
        valid = torch.isfinite(dist)
    elif how == "keys":  # compiled code: a top-k, ~10x less work than sorting every row
        valid, idx = _topk_by_key(d, k)
    else:
        dist, idx = torch.sort(d, dim=-1, stable=True)
        dist, idx = dist[..., :k], idx[..., :k]
        valid = torch.isfinite(dist)
    idx = idx.clamp(max=num_points - 1)
    return idx, valid




def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _mask_bool(mask: Any, n: int, P: int) -> torch.Tensor:
    m = _as_tensor(mask)
    return m.reshape(n, P) != 0


def _knn(points: torch.Tensor, m: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, k) local neighbour indices and validity, for one chunk (:func:`dense_knn`;
    unfilled slots and padded centres hold the centre's own index)."""
    N, _, P = points.shape
    pts = points if points.is_floating_point() else points.float()
    idx, valid = dense_knn(pts, m.view(N, 1, P).to(pts.dtype), k)
    valid = valid & m[:, :, None]
    self_idx = torch.arange(P, device=pts.device).view(1, P, 1).expand(N, P, k)
    return torch.where(valid, idx, self_idx), valid


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


def to_pyg_batch(pointcloud: dict[str, Any], k: int | None = 16) -> Any:
    """Convert a :func:`build_pointcloud` dict into a ``torch_geometric`` batch.

    Parameters
    ----------
    pointcloud
        Dict with ``points (N, 2, P)``, ``features (N, C, P)``, ``mask (N, 1, P)``.
    k
        Neighbours per particle; ``None``: no ``edge_index`` (models that build their
        own graphs, e.g. ParticleNet's dynamic kNN).

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
    if k is None:
        out = Batch(x=x, pos=pos, batch=batch, ptr=ptr)
    else:
        out = Batch(x=x, pos=pos, edge_index=knn_edges(points, m, k), batch=batch, ptr=ptr)
    out._num_graphs = N
    return out
