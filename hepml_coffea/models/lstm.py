"""LSTM tagger on the pT-ordered sequence of jet constituents.

S. Egan, W. Fedorko, A. Lister, J. Pearkes and C. Gay, "Long Short-Term
Memory (LSTM) networks with jet constituents for boosted top tagging at the
LHC", arXiv:1711.09059 (2017).

The constituents are read in the order given by the representations layer
(real particles first, decreasing pT).  Padding is removed with
``pack_padded_sequence(enforce_sorted=False)`` using ``lengths = mask.sum``,
so the result does not depend on the padded length P; the final hidden state
of the last layer (both directions concatenated if bidirectional) feeds a
small ReLU MLP and a linear output layer.  Jets with zero real particles are
given length 1 (they read one all-zero particle) so the output stays finite.

The mask is assumed to be contiguous (real particles first), as produced by
the representations layer.  The model is TorchScript-scriptable
(``torch.jit.script``); ``torch.jit.trace`` is NOT suitable because the
packing depends on the data.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["JetLSTM"]


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
        }
        self.reverse = bool(reverse)
        self.bidirectional = bool(bidirectional)
        self.lstm = nn.LSTM(
            input_size=int(input_dim),
            hidden_size=int(hidden),
            num_layers=int(num_layers),
            batch_first=True,
            bidirectional=self.bidirectional,
        )
        layers: List[nn.Module] = []
        fin = int(hidden) * (2 if self.bidirectional else 1)
        for width in dense:
            layers += [nn.Linear(fin, width), nn.ReLU()]
            fin = width
        layers.append(nn.Linear(fin, int(num_classes)))
        self.head = nn.Sequential(*layers)

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor kwargs (plain lists/ints/bools) to rebuild the model."""
        return copy.deepcopy(self._config)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(features.dtype)
        lengths = mask.sum(dim=(1, 2)).round().clamp_min(1.0).to(torch.int64).cpu()
        x = (features * mask).transpose(1, 2)  # (N, P, C)
        if self.reverse:
            # read the real particles softest first, so the hardest are read last
            steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
            n_real = lengths.to(x.device).unsqueeze(1)
            order = torch.where(steps < n_real, n_real - 1 - steps, steps)
            x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n: (num_layers * dirs, N, H), original batch order
        if self.bidirectional:
            last = torch.cat((h_n[-2], h_n[-1]), dim=1)
        else:
            last = h_n[-1]
        return self.head(last)
