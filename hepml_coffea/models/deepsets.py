"""Particle Flow Network (Deep Sets on jet constituents).

P. T. Komiske, E. M. Metodiev and J. Thaler, "Energy Flow Networks: Deep Sets
for Particle Jets", JHEP 01 (2019) 121, arXiv:1810.05165.

``PFN(x) = F( sum_i mask_i * Phi(x_i) )``: a per-particle MLP ``Phi`` (ReLU on
every layer, as in EnergyFlow), a masked sum over the real particles, and an
MLP ``F`` (ReLU) followed by a linear output layer.  Permutation invariant by
construction; padding invariant because padded particles are masked out of the
sum (``Phi(0) != 0`` because of the biases, so the mask is essential).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

__all__ = ["ParticleFlowNetwork"]


# --------------------------------------------------------------------------- helpers
def _pointwise_mlp(in_dim: int, sizes: List[int]) -> nn.Sequential:
    """1x1 Conv1d + ReLU stack acting on each particle. Shapes: (N, C, P) -> (N, sizes[-1], P)."""
    layers: List[nn.Module] = []
    for s in sizes:
        layers += [nn.Conv1d(in_dim, s, kernel_size=1), nn.ReLU()]
        in_dim = s
    return nn.Sequential(*layers)


def _mlp(in_dim: int, sizes: List[int]) -> nn.Sequential:
    """Linear + ReLU stack. Shapes: (N, in_dim) -> (N, sizes[-1])."""
    layers: List[nn.Module] = []
    for s in sizes:
        layers += [nn.Linear(in_dim, s), nn.ReLU()]
        in_dim = s
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- model
class ParticleFlowNetwork(nn.Module):
    """Particle Flow Network (PFN).

    Args:
        input_dims: per-particle features C.
        phi_sizes: widths of the per-particle network Phi (latent size = last).
        f_sizes: widths of the jet-level network F.
        num_classes: output logits.

    Shapes:
        features: (N, C, P)
        mask: (N, 1, P)  1.0 real, 0.0 padding
        output: (N, num_classes) logits
    """

    input_kind = "sequence"

    def __init__(
        self,
        input_dims: int = 7,
        phi_sizes: Optional[List[int]] = None,
        f_sizes: Optional[List[int]] = None,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        phi_sizes = [int(s) for s in (phi_sizes if phi_sizes is not None else [100, 100, 256])]
        f_sizes = [int(s) for s in (f_sizes if f_sizes is not None else [100, 100, 100])]
        if not phi_sizes:
            raise ValueError("phi_sizes must not be empty")
        self._config: Dict[str, Any] = {
            "input_dims": int(input_dims),
            "phi_sizes": phi_sizes,
            "f_sizes": f_sizes,
            "num_classes": int(num_classes),
        }
        self.phi = _pointwise_mlp(int(input_dims), phi_sizes)
        self.f = _mlp(phi_sizes[-1], f_sizes)
        self.out = nn.Linear(f_sizes[-1] if f_sizes else phi_sizes[-1], int(num_classes))

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor kwargs (plain lists/ints) to rebuild the model."""
        return copy.deepcopy(self._config)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(features.dtype)
        latent = (self.phi(features * mask) * mask).sum(dim=-1)  # (N, latent)
        return self.out(self.f(latent))
