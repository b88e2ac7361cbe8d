"""ParticleNet: jet tagging via particle clouds.

Why one module of ~500 lines: the architecture with both its paths (dense kNN for export,
PyG EdgeConv) and the weaver-compatible state-dict naming belong together.

H. Qu and L. Gouskos, "ParticleNet: Jet Tagging via Particle Clouds",
Phys. Rev. D 101, 056019 (2020), arXiv:1902.08570.

The module layout, the forward contract ``forward(points, features, mask)``
and the parameter (state-dict) names follow weaver-core's
``weaver/nn/model/ParticleNet.py`` (``bn_fts``, ``edge_convs.{i}.convs/bns/
acts/sc/sc_bn``, ``fusion_block``, ``fc``), so a weaver checkpoint of the same
configuration loads after stripping weaver's ``mod.`` wrapper prefix.

Two execution paths share the *same* ``nn.Module`` weights:

* the dense batched path (:class:`ParticleNet`, main implementation,
  TorchScript-scriptable): kNN from pairwise distances + ``topk``, neighbours
  gathered with index tensors;
* a torch-geometric path (:class:`ParticleNetPyG`,
  :func:`particlenet_pyg_forward`): the same kNN converted to ``edge_index``
  and evaluated with ``torch_geometric.nn.EdgeConv`` (mean aggregation);
* an inference form (:class:`ChannelsLastParticleNet`, built from a model in
  eval mode): channels last, BatchNorm folded into the matrices, one GEMM per
  1x1 convolution over all edges. It is what the ONNX export and
  ``torch.compile`` run on CPU.

Masking / neighbour convention (see :mod:`hepml_coffea.models._knn`): padded
particles are never neighbours, a particle is never its own neighbour, and if
a jet has ``n <= k`` real particles the missing neighbour slots are phantom
neighbours with all-zero features (weaver's de-facto behaviour).  Padded
outputs are zeroed after every block and the global pooling averages over
real particles only, so in eval mode the score does not depend on the amount
of padding nor on the order of the real particles.  BatchNorm statistics in
*training* mode do include padded positions (as in weaver).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from ._knn import edge_features, gather_neighbors, knn_indices

__all__ = [
    "ChannelsLastParticleNet",
    "EdgeConvBlock",
    "ParticleNet",
    "ParticleNetPyG",
    "dense_to_pyg_batch",
    "particlenet_pyg_forward",
]

DEFAULT_CONV_PARAMS: List[List[Any]] = [[16, [64, 64, 64]], [16, [128, 128, 128]], [16, [256, 256, 256]]]
DEFAULT_FC_PARAMS: List[List[Any]] = [[256, 0.1]]
LITE_CONV_PARAMS: List[List[Any]] = [[7, [32, 32, 32]], [7, [64, 64, 64]]]
LITE_FC_PARAMS: List[List[Any]] = [[128, 0.1]]


# --------------------------------------------------------------------------- helpers
def _fusion_channels(in_chn: int) -> int:
    """weaver: ``clip(in_chn // 128 * 128, 128, 1024)``."""
    return int(min(max((in_chn // 128) * 128, 128), 1024))


def _plain(obj: Any) -> Any:
    """Tuples -> lists recursively, so configs are YAML/JSON friendly."""
    if isinstance(obj, (list, tuple)):
        return [_plain(o) for o in obj]
    return obj


# --------------------------------------------------------------------------- blocks
class EdgeConvBlock(nn.Module):
    """One dynamic-graph EdgeConv block.

    kNN (in ``points``) -> edge features ``[x_i, x_j - x_i]`` -> ``len(out_feats)``
    x (Conv2d 1x1, BatchNorm2d, ReLU) -> mean over the k neighbours, plus a
    shortcut (Conv1d 1x1 + BatchNorm1d, identity if the width is unchanged),
    then ReLU.

    Shapes:
        points: (N, D, P) coordinates for the kNN
        features: (N, C_in, P)
        mask: (N, 1, P)
        output: (N, C_out, P)  (padded positions NOT zeroed here)
    """

    def __init__(self, k: int, in_feat: int, out_feats: Sequence[int]) -> None:
        super().__init__()
        self.k = int(k)
        self.in_feat = int(in_feat)
        self.out_feats = [int(c) for c in out_feats]
        self.num_layers = len(self.out_feats)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i, c in enumerate(self.out_feats):
            cin = 2 * self.in_feat if i == 0 else self.out_feats[i - 1]
            self.convs.append(nn.Conv2d(cin, c, kernel_size=1, bias=False))
            self.bns.append(nn.BatchNorm2d(c))
            self.acts.append(nn.ReLU())
        if self.in_feat == self.out_feats[-1]:
            self.sc: Optional[nn.Module] = None
            self.sc_bn: Optional[nn.Module] = None
        else:
            self.sc = nn.Conv1d(self.in_feat, self.out_feats[-1], kernel_size=1, bias=False)
            self.sc_bn = nn.BatchNorm1d(self.out_feats[-1])
        self.sc_act = nn.ReLU()

    def edge_mlp(self, x: Tensor) -> Tensor:
        """Shared per-edge MLP. Shapes: (N, 2C_in, P, k) -> (N, C_out, P, k)."""
        for conv, bn, act in zip(self.convs, self.bns, self.acts):
            x = act(bn(conv(x)))
        return x

    def shortcut(self, features: Tensor) -> Tensor:
        """Shapes: (N, C_in, P) -> (N, C_out, P)."""
        sc = self.sc
        sc_bn = self.sc_bn
        if sc is not None and sc_bn is not None:
            return sc_bn(sc(features))
        return features

    def edge_mlp_factored(self, features: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
        """:meth:`edge_mlp` of the edge features without building them (inference).

        The first 1x1 convolution is linear in ``[x_i, x_j - x_i]``:
        ``W [x_i; x_j - x_i] = (W_i - W_j) x_i + W_j x_j`` with ``W = [W_i | W_j]``, so it
        is applied once per particle and the ``x_j`` term gathered per edge: ``k`` times
        fewer multiply-adds for that layer and no ``(N, 2C, P, k)`` tensor. Phantom
        neighbours (``x_j = 0``) get a zero ``W_j x_j`` from :func:`gather_neighbors`.
        Equal to ``edge_mlp(edge_features(...))`` up to float rounding.

        Shapes:
            features: (N, C_in, P), idx/valid: (N, P, k) -> (N, C_out, P, k)
        """
        w = self.convs[0].weight  # (C_0, 2 C_in, 1, 1)
        c = self.in_feat
        w = w.reshape(w.shape[0], 2 * c)
        w_i, w_j = w[:, :c], w[:, c:]
        both = torch.nn.functional.conv1d(features, torch.cat((w_i - w_j, w_j), dim=0).unsqueeze(-1))
        own, other = both[:, : w.shape[0]], both[:, w.shape[0] :]
        x = own.unsqueeze(-1) + gather_neighbors(other, idx, valid)
        first = True
        for conv, bn, act in zip(self.convs, self.bns, self.acts):
            if first:
                x = act(bn(x))
                first = False
            else:
                x = act(bn(conv(x)))
        return x

    def forward(self, points: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        idx, valid = knn_indices(points, mask, self.k)
        if self.training:
            fts = self.edge_mlp(edge_features(features, idx, valid)).mean(dim=-1)
        else:
            fts = self.edge_mlp_factored(features, idx, valid).mean(dim=-1)
        return self.sc_act(self.shortcut(features) + fts)

    def extra_repr(self) -> str:
        return f"k={self.k}, in_feat={self.in_feat}, out_feats={self.out_feats}"


# --------------------------------------------------------------------------- model
class ParticleNet(nn.Module):
    """ParticleNet (dense batched implementation, TorchScript-scriptable).

    Args:
        input_dims: number of per-particle input features C.
        conv_params: ``[[k, [c1, c2, ...]], ...]`` one entry per EdgeConv block.
        fc_params: ``[[width, dropout], ...]`` fully connected layers.
        use_fusion: concatenate all block outputs and fuse them with a 1x1 conv
            to ``clip(sum(channels)//128*128, 128, 1024)`` channels.
        use_fts_bn: BatchNorm1d on the input features.
        num_classes: output logits (2: class 0 = QCD, class 1 = top).

    Shapes:
        points: (N, 2, P)  (deta, dphi); first-block kNN coordinates
        features: (N, C, P)
        mask: (N, 1, P)  1.0 real, 0.0 padding
        output: (N, num_classes) logits
    """

    input_kind = "pointcloud"

    def __init__(
        self,
        input_dims: int = 7,
        conv_params: Optional[List[List[Any]]] = None,
        fc_params: Optional[List[List[Any]]] = None,
        use_fusion: bool = True,
        use_fts_bn: bool = True,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        conv_params = _plain(copy.deepcopy(conv_params if conv_params is not None else DEFAULT_CONV_PARAMS))
        fc_params = _plain(copy.deepcopy(fc_params if fc_params is not None else DEFAULT_FC_PARAMS))
        if not conv_params:
            raise ValueError("conv_params must contain at least one EdgeConv block")
        self._config: Dict[str, Any] = {
            "input_dims": int(input_dims),
            "conv_params": [[int(k), [int(c) for c in chs]] for k, chs in conv_params],
            "fc_params": [[int(w), float(d)] for w, d in fc_params],
            "use_fusion": bool(use_fusion),
            "use_fts_bn": bool(use_fts_bn),
            "num_classes": int(num_classes),
        }
        cfg = self._config
        self.use_fusion = cfg["use_fusion"]
        self.bn_fts: nn.Module = nn.BatchNorm1d(cfg["input_dims"]) if cfg["use_fts_bn"] else nn.Identity()

        self.edge_convs = nn.ModuleList()
        in_feat = cfg["input_dims"]
        for k, channels in cfg["conv_params"]:
            self.edge_convs.append(EdgeConvBlock(k=k, in_feat=in_feat, out_feats=channels))
            in_feat = channels[-1]

        if self.use_fusion:
            in_chn = sum(chs[-1] for _, chs in cfg["conv_params"])
            out_chn = _fusion_channels(in_chn)
            self.fusion_block: nn.Module = nn.Sequential(
                nn.Conv1d(in_chn, out_chn, kernel_size=1, bias=False), nn.BatchNorm1d(out_chn), nn.ReLU()
            )
            fc_in = out_chn
        else:
            self.fusion_block = nn.Identity()
            fc_in = in_feat

        fcs: List[nn.Module] = []
        for width, drop in cfg["fc_params"]:
            fcs.append(nn.Sequential(nn.Linear(fc_in, width), nn.ReLU(), nn.Dropout(drop)))
            fc_in = width
        fcs.append(nn.Linear(fc_in, cfg["num_classes"]))
        self.fc = nn.Sequential(*fcs)

    @classmethod
    def lite(cls, input_dims: int = 7, num_classes: int = 2) -> "ParticleNet":
        """ParticleNet-Lite: k=7, [[7,[32,32,32]],[7,[64,64,64]]], fc [[128,0.1]]."""
        return cls(
            input_dims=input_dims,
            conv_params=copy.deepcopy(LITE_CONV_PARAMS),
            fc_params=copy.deepcopy(LITE_FC_PARAMS),
            num_classes=num_classes,
        )

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor kwargs (plain lists/ints/floats/bools) to rebuild the model."""
        return copy.deepcopy(self._config)

    def forward(self, points: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(features.dtype)
        points = points * mask
        features = features * mask
        counts = mask.sum(dim=-1).clamp_min(1.0)  # (N, 1)
        fts = self.bn_fts(features) * mask
        outputs: List[Tensor] = []
        for i, conv in enumerate(self.edge_convs):
            pts = points if i == 0 else fts
            fts = conv(pts, fts, mask) * mask
            outputs.append(fts)
        if self.use_fusion:
            fts = self.fusion_block(torch.cat(outputs, dim=1)) * mask
        x = fts.sum(dim=-1) / counts
        return self.fc(x)


# --------------------------------------------------------------------------- inference form
def _fold_bn(weight: Tensor, bn: nn.Module) -> tuple[Tensor, Tensor]:
    """A bias-free 1x1 convolution followed by BatchNorm in eval mode, as one affine map.

    Shapes:
        weight: (C_out, C_in, ...) -> (C_in, C_out) matrix for ``x @ W``, (C_out,) bias
    """
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    w = weight.reshape(weight.shape[0], -1)
    var = bn.running_var if bn.running_var is not None else torch.ones_like(w[:, 0])
    mean = bn.running_mean if bn.running_mean is not None else torch.zeros_like(w[:, 0])
    scale = (bn.weight if bn.weight is not None else torch.ones_like(mean)) / torch.sqrt(var + bn.eps)
    shift = (bn.bias if bn.bias is not None else torch.zeros_like(mean)) - mean * scale
    return (w * scale[:, None]).t().contiguous(), shift.contiguous()


class _FoldedEdgeConv(nn.Module):
    """One :class:`EdgeConvBlock` at inference, channels last, BatchNorm folded."""

    def __init__(self, block: EdgeConvBlock) -> None:
        super().__init__()
        self.k = block.k
        c = block.in_feat
        w0, b0 = _fold_bn(block.convs[0].weight, block.bns[0])  # (2C, C_0): rows [x_i | x_j - x_i]
        w_i, w_j = w0[:c], w0[c:]
        # W [x_i; x_j - x_i] = (W_i - W_j) x_i + W_j x_j: one matmul per particle for both terms
        self.register_buffer("w_first", torch.cat((w_i - w_j, w_j), dim=1).contiguous())  # (C, 2 C_0)
        self.register_buffer("b_first", b0)
        ws, bs = [], []
        for conv, bn in zip(list(block.convs)[1:], list(block.bns)[1:]):
            w, b = _fold_bn(conv.weight, bn)
            ws.append(w)
            bs.append(b)
        self.ws = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in ws])
        self.bs = nn.ParameterList([nn.Parameter(b, requires_grad=False) for b in bs])
        self.c0 = int(w0.shape[1])
        if block.sc is not None and block.sc_bn is not None:
            w, b = _fold_bn(block.sc.weight, block.sc_bn)
            self.register_buffer("w_sc", w)
            self.register_buffer("b_sc", b)
        else:
            self.w_sc = None
            self.b_sc = None

    def forward(self, coords: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        """Shapes: coords (N, D, P), x (N, P, C_in), mask (N, 1, P) -> (N, P, C_out)."""
        n, p, c = x.shape
        idx, valid = knn_indices(coords, mask, self.k)  # (N, P, k)
        # 2-D matrix products (bias and ReLU fuse into one GEMM in ONNX Runtime)
        x2 = x.reshape(n * p, c)
        both = torch.matmul(x2, self.w_first)  # (N P, 2 C_0)
        own = (both[:, : self.c0] + self.b_first).view(n, p, 1, self.c0)
        # phantom neighbours read an all-zero row appended to the table
        table = torch.cat((both[:, self.c0 :], both.new_zeros(1, self.c0)), dim=0)
        base = torch.arange(n, device=x.device).view(-1, 1, 1) * p
        flat = torch.where(valid, idx + base, torch.full_like(idx, n * p))
        h = torch.relu(own + table[flat.reshape(-1)].view(n, p, self.k, self.c0)).view(n * p * self.k, self.c0)
        for w, b in zip(self.ws, self.bs):
            h = torch.relu(torch.matmul(h, w) + b)
        fts = h.view(n, p, self.k, h.shape[-1]).mean(dim=2)
        sc = x if self.w_sc is None else (torch.matmul(x2, self.w_sc) + self.b_sc).view(n, p, -1)
        return torch.relu(sc + fts)


class ChannelsLastParticleNet(nn.Module):
    """A :class:`ParticleNet` in eval mode, evaluated channels last with BatchNorm folded
    into the matrices (the form exported to ONNX and compiled; same weights, equal scores
    up to float rounding).

    Every per-edge tensor is ``(N, P, k, C)``, so each 1x1 convolution is one matrix
    product over all edges and the neighbour gather needs no transpose; the kNN is the
    model's own (:func:`knn_indices` on ``(N, C, P)`` coordinates, the same tie-breaking).
    Measured on CPU with ONNX Runtime it removes the layout reorders, transposes and
    separate BatchNorm passes that the channels-first graph spends a third of its time on.

    Shapes:
        points: (N, 2, P), features: (N, C, P), mask: (N, 1, P) -> (N, num_classes)
    """

    input_kind = "pointcloud"

    def __init__(self, model: ParticleNet) -> None:
        super().__init__()
        if model.training:
            msg = "ChannelsLastParticleNet folds BatchNorm running statistics: put the model in eval mode first"
            raise ValueError(msg)
        with torch.no_grad():
            self.bn_fts = copy.deepcopy(model.bn_fts)
            self.blocks = nn.ModuleList([_FoldedEdgeConv(b) for b in model.edge_convs])
            self.use_fusion = model.use_fusion
            if self.use_fusion:
                conv, bn = model.fusion_block[0], model.fusion_block[1]
                w, b = _fold_bn(conv.weight, bn)
                self.register_buffer("w_fusion", w)
                self.register_buffer("b_fusion", b)
            else:
                self.w_fusion = None
                self.b_fusion = None
        self.fc = copy.deepcopy(model.fc)
        self.eval()

    def forward(self, points: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(features.dtype)
        points = points * mask
        features = features * mask
        counts = mask.sum(dim=-1).clamp_min(1.0)  # (N, 1)
        mask_cl = mask.transpose(1, 2)  # (N, P, 1)
        fts = (self.bn_fts(features) * mask).transpose(1, 2)  # (N, P, C)
        outputs: List[Tensor] = []
        for i, block in enumerate(self.blocks):
            coords = points if i == 0 else fts.transpose(1, 2)
            fts = block(coords, fts, mask) * mask_cl
            outputs.append(fts)
        if self.w_fusion is not None and self.b_fusion is not None:
            cat = torch.cat(outputs, dim=-1)
            n, p = cat.shape[0], cat.shape[1]
            fused = torch.relu(torch.matmul(cat.reshape(n * p, -1), self.w_fusion) + self.b_fusion)
            fts = fused.view(n, p, -1) * mask_cl
        x = fts.sum(dim=1) / counts
        return self.fc(x)


# --------------------------------------------------------------------------- torch-geometric path
def dense_to_pyg_batch(points: Tensor, features: Tensor, mask: Tensor) -> Any:
    """Convert padded tensors to a ``torch_geometric.data.Batch`` of real particles
    (:func:`hepml_coffea.knn.to_pyg_batch`, the one converter, without
    a fixed graph: ParticleNet builds its kNN per block).

    Each jet becomes a graph of its real particles, ``x (n, C)`` and ``pos (n, 2)``; jets
    with zero real particles become empty graphs (kept so graph ``j`` is jet ``j``).

    Shapes:
        points: (N, 2, P), features: (N, C, P), mask: (N, 1, P) -> Batch with N graphs
    """
    from hepml_coffea.knn import to_pyg_batch

    return to_pyg_batch({"points": points, "features": features, "mask": mask}, k=None)


class _EdgeMLPAdapter(nn.Module):
    """Applies an :class:`EdgeConvBlock`'s per-edge MLP to ``(E, 2C)`` messages.

    Holds a plain (unregistered) reference to the block, so the weights are the
    very same modules *and* ``torch_geometric.nn.EdgeConv.reset_parameters()``
    (called in its constructor, and recursing into children) cannot
    re-initialise them.
    """

    def __init__(self, block: EdgeConvBlock) -> None:
        super().__init__()
        self._block = [block]  # a list hides it from .children()/state_dict

    def reset_parameters(self) -> None:
        """No-op: the weights belong to the wrapped ParticleNet."""

    def forward(self, e: Tensor) -> Tensor:
        h = e.t().unsqueeze(0).unsqueeze(-1)  # (1, 2C, E, 1)
        return self._block[0].edge_mlp(h)[0, :, :, 0].t()


class ParticleNetPyG(nn.Module):
    """torch-geometric execution of a :class:`ParticleNet`, sharing its weights.

    Uses ``torch_geometric.nn.EdgeConv`` (mean aggregation) with a self-built
    kNN (the dense :func:`knn_indices` on ``to_dense_batch`` output, converted
    to ``edge_index``).  Phantom neighbours (jets with ``n <= k``) are realised
    as edges from one extra all-zero node, so the result equals the dense path.
    Only guaranteed to equal the dense path in eval mode (BatchNorm statistics
    differ in training mode).  Not scriptable.

    Shapes:
        data.x: (M, C), data.pos: (M, 2), data.batch: (M,) -> (num_graphs, num_classes)
    """

    input_kind = "pyg"

    def __init__(self, model: ParticleNet) -> None:
        super().__init__()
        from torch_geometric.nn import EdgeConv

        self.model = model
        self.edge_convs = nn.ModuleList(
            [EdgeConv(nn=_EdgeMLPAdapter(b), aggr="mean") for b in model.edge_convs]  # type: ignore[arg-type]
        )

    @staticmethod
    def _knn_edge_index(coords: Tensor, batch: Tensor, ptr: Tensor, k: int, num_graphs: int) -> Tensor:
        from torch_geometric.utils import to_dense_batch

        num_nodes = coords.size(0)
        dense, dmask = to_dense_batch(coords, batch, batch_size=num_graphs)  # (B, Pmax, D), (B, Pmax)
        if dense.size(1) == 0:
            return torch.zeros(2, 0, dtype=torch.long, device=coords.device)
        idx, valid = knn_indices(dense.transpose(1, 2), dmask.unsqueeze(1).to(coords.dtype), k)
        offs = ptr[:-1].view(-1, 1, 1)
        pos = torch.arange(dense.size(1), device=coords.device).view(1, -1, 1)
        target = (offs + pos).expand_as(idx)
        source = torch.where(valid, offs + idx, torch.full_like(idx, num_nodes))  # phantom node = num_nodes
        keep = dmask.unsqueeze(-1).expand_as(idx)
        return torch.stack([source[keep], target[keep]], dim=0)

    def forward(self, data: Any) -> Tensor:
        from torch_geometric.nn import global_mean_pool

        m = self.model
        x, pos, batch, ptr = data.x, data.pos, data.batch, data.ptr
        num_graphs = int(data.num_graphs)
        if x.size(0) == 0:  # only empty jets: pooled features are zero, as in the dense path
            first = m.fc[0]
            lin = first[0] if isinstance(first, nn.Sequential) else first
            return m.fc(x.new_zeros(num_graphs, lin.in_features))
        fts = m.bn_fts(x)
        outputs: List[Tensor] = []
        for i, (block, econv) in enumerate(zip(m.edge_convs, self.edge_convs)):
            coords = pos if i == 0 else fts
            edge_index = self._knn_edge_index(coords, batch, ptr, block.k, num_graphs)
            x_ext = torch.cat([fts, fts.new_zeros(1, fts.size(1))], dim=0)
            agg = econv(x_ext, edge_index)[: fts.size(0)]
            sc = block.shortcut(fts.t().unsqueeze(0)).squeeze(0).t()
            fts = block.sc_act(agg + sc)
            outputs.append(fts)
        if m.use_fusion:
            fts = m.fusion_block(torch.cat(outputs, dim=1).t().unsqueeze(0)).squeeze(0).t()
        pooled = global_mean_pool(fts, batch, size=num_graphs)
        return m.fc(pooled)


def particlenet_pyg_forward(model: ParticleNet, data: Any) -> Tensor:
    """Evaluate ``model`` through the torch-geometric path on a pyg ``Batch``.

    Shapes:
        data: Batch with N graphs -> (N, num_classes)
    """
    return ParticleNetPyG(model)(data)
