"""LSTM tagger on the pT-ordered sequence of jet constituents.

S. Egan, W. Fedorko, A. Lister, J. Pearkes and C. Gay, "Long Short-Term
Memory (LSTM) networks with jet constituents for boosted top tagging at the
LHC", arXiv:1711.09059 (2017).

The constituents are read in the order given by the representations layer
(real particles first, decreasing pT).  Padding is removed with
``pack_padded_sequence(enforce_sorted=False)`` using ``lengths = mask.sum``,
so the result does not depend on the padded length P.  The jet vector is the
final hidden state of the last layer (``pool="last"``, as in the paper; both
directions concatenated if bidirectional) or the mean (and max) of the outputs
at the real particles (``"mean"``, ``"meanmax"``); it feeds a small ReLU MLP and
a linear output layer.  An optional per-particle ReLU MLP (``embed``) maps the
inputs before the LSTM.  The registry's ``lstm`` (the shipped tagger since
session 8) is ``embed=[64, 64], pool="meanmax"``: on 20k jets per class it gave
about 2x the rejection of the final-state LSTM at eS = 30 % (TAGGERS.md); the
paper's form stays available (``pool="last"``, no ``embed``).  Jets with zero real particles are
given length 1 (they read one all-zero particle) so the output stays finite.

The mask is assumed to be contiguous (real particles first), as produced by
the representations layer.  The model is TorchScript-scriptable
(``torch.jit.script``); ``torch.jit.trace`` is NOT suitable because the
packing depends on the data.

Packed sequences cannot be exported to ONNX.  For a unidirectional LSTM the
same result is obtained without packing: run the whole padded sequence and take
each jet's hidden state at its last real particle (an LSTM reading left to
right never sees the padding that follows).  :meth:`JetLSTM.forward_unpacked`
does that and :class:`UnpackedJetLSTM` wraps it for ``torch.onnx.export`` and
``torch.compile``; a bidirectional LSTM (whose backward direction would start in
the padding) has no such form and stays on the packed torch path.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["POOLS", "JetLSTM", "UnpackedJetLSTM"]

#: how the per-particle LSTM outputs become one jet vector: the final hidden state
#: (``"last"``, Egan et al.), or the mean / mean and max of the outputs at every real
#: particle (``"mean"``, ``"meanmax"``: every step gets a direct gradient)
POOLS = ("last", "mean", "meanmax")


# --------------------------------------------------------------------------- model
class JetLSTM(nn.Module):
    """LSTM jet tagger.

    Args:
        input_dim: per-particle features C.
        hidden: LSTM hidden size.
        num_layers: stacked LSTM layers.
        bidirectional: read the sequence in both directions.
        dense: widths of the hidden fully connected layers (ReLU).
        num_classes: output logits.
        reverse: read the real particles in increasing pT (hardest last, closest to the
            final hidden state); the shipped tagger uses it.
        pool: ``"last"`` (final hidden state), ``"mean"`` or ``"meanmax"`` (:data:`POOLS`).
        embed: widths of a per-particle ReLU MLP applied before the LSTM (none by default).

    Shapes:
        features: (N, C, P)
        mask: (N, 1, P)  1.0 real, 0.0 padding (contiguous, real first)
        output: (N, num_classes) logits
    """

    input_kind = "sequence"

    def __init__(
        self,
        input_dim: int = 7,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dense: Optional[List[int]] = None,
        num_classes: int = 2,
        reverse: bool = False,
        pool: str = "last",
        embed: Optional[List[int]] = None,
    ) -> None:
        super().__init__()
        dense = [int(d) for d in (dense if dense is not None else [64])]
        self._config: Dict[str, Any] = {
            "input_dim": int(input_dim),
            "hidden": int(hidden),
            "num_layers": int(num_layers),
            "bidirectional": bool(bidirectional),
            "dense": dense,
            "num_classes": int(num_classes),
            "reverse": bool(reverse),
            "pool": str(pool),
            "embed": [int(w) for w in (embed or [])],
        }
        if pool not in POOLS:
            msg = f"JetLSTM pool {pool!r}: expected one of {POOLS}"
            raise ValueError(msg)
        self.pool = str(pool)
        self.reverse = bool(reverse)
        self.bidirectional = bool(bidirectional)
        emb: List[nn.Module] = []
        fin = int(input_dim)
        for width in self._config["embed"]:
            emb += [nn.Linear(fin, width), nn.ReLU()]
            fin = width
        self.embed = nn.Sequential(*emb)  # per particle, before the LSTM (empty: identity)
        self.lstm = nn.LSTM(
            input_size=fin,
            hidden_size=int(hidden),
            num_layers=int(num_layers),
            batch_first=True,
            bidirectional=self.bidirectional,
        )
        layers: List[nn.Module] = []
        fin = int(hidden) * (2 if self.bidirectional else 1) * (2 if self.pool == "meanmax" else 1)
        for width in dense:
            layers += [nn.Linear(fin, width), nn.ReLU()]
            fin = width
        layers.append(nn.Linear(fin, int(num_classes)))
        self.head = nn.Sequential(*layers)

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor kwargs (plain lists/ints/bools) to rebuild the model."""
        return copy.deepcopy(self._config)

    def _sequence(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Masked, time-major-last input and per-jet lengths (>= 1), reversed if asked.

        Shapes:
            features: (N, C, P), mask: (N, 1, P) -> x (N, P, C), lengths (N,) int64
        """
        mask = mask.to(features.dtype)
        lengths = mask.sum(dim=(1, 2)).round().clamp_min(1.0).to(torch.int64)
        x = self.embed((features * mask).transpose(1, 2))  # (N, P, C) -> (N, P, C')
        if self.reverse:
            # read the real particles softest first, so the hardest are read last
            steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
            n_real = lengths.unsqueeze(1)
            order = torch.where(steps < n_real, n_real - 1 - steps, steps)
            x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        return x, lengths

    def _pooled(self, out: Tensor, lengths: Tensor) -> Tensor:
        """Mean (and max) of the outputs at the real particles.

        Shapes:
            out: (N, P, H'), lengths: (N,) -> (N, H') or (N, 2 H')
        """
        steps = torch.arange(out.shape[1], device=out.device).unsqueeze(0)
        real = (steps < lengths.to(out.device).unsqueeze(1)).unsqueeze(-1)  # (N, P, 1)
        realf = real.to(out.dtype)
        mean = (out * realf).sum(dim=1) / realf.sum(dim=1)
        if self.pool == "mean":
            return mean
        peak = torch.where(real, out, torch.full_like(out, -1e4)).amax(dim=1)
        return torch.cat((mean, peak), dim=1)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        x, lengths = self._sequence(features, mask)
        lengths = lengths.cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out_packed, (h_n, _) = self.lstm(packed)  # h_n: (num_layers * dirs, N, H), original batch order
        if self.pool != "last":
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])
            return self.head(self._pooled(out, lengths))
        if self.bidirectional:
            last = torch.cat((h_n[-2], h_n[-1]), dim=1)
        else:
            last = h_n[-1]
        return self.head(last)

    @torch.jit.unused
    def forward_unpacked(self, features: Tensor, mask: Tensor) -> Tensor:
        """:meth:`forward` without sequence packing (exportable; unidirectional only).

        Runs the LSTM over all ``P`` positions and takes the last layer's output at each
        jet's last real particle, which equals the packed final hidden state.

        Shapes:
            features: (N, C, P), mask: (N, 1, P) -> (N, num_classes)
        """
        if self.bidirectional:
            msg = "a bidirectional JetLSTM has no unpacked form (its backward pass would start in the padding)"
            raise NotImplementedError(msg)
        x, lengths = self._sequence(features, mask)
        out, _ = self.lstm(x)  # (N, P, H)
        if self.pool != "last":
            return self.head(self._pooled(out, lengths))
        at = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return self.head(torch.gather(out, 1, at).squeeze(1))


class UnpackedJetLSTM(nn.Module):
    """A :class:`JetLSTM` evaluated with :meth:`JetLSTM.forward_unpacked` (same weights),
    for ONNX export and ``torch.compile``.

    Shapes:
        features: (N, C, P), mask: (N, 1, P) -> (N, num_classes)
    """

    def __init__(self, model: JetLSTM) -> None:
        super().__init__()
        if model.bidirectional:
            msg = "a bidirectional JetLSTM has no unpacked form (its backward pass would start in the padding)"
            raise NotImplementedError(msg)
        self.model = model

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        return self.model.forward_unpacked(features, mask)
