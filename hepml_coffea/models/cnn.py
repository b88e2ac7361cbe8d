"""DeepTop-style convolutional network on jet images.

G. Kasieczka, T. Plehn, M. Russell and T. Schell, "Deep-learning Top Taggers
or The End of QCD?", JHEP 05 (2017) 006, arXiv:1701.08784.

Architecture (DeepTop default): four 4x4 convolutions with 'same' padding and
ReLU, 2x2 max-pooling after the 2nd and 4th convolution, then fully connected
layers with ReLU and a linear output layer (logits, class 1 = top).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

__all__ = ["ConvBlock", "JetImageCNN"]


# --------------------------------------------------------------------------- helpers
def _same_pad(kernel_size: int) -> nn.ZeroPad2d:
    """Explicit 'same' zero padding (Keras/PyTorch convention for even kernels:
    the extra row/column goes right/bottom).  Avoids the implicit padded copy of
    ``padding='same'`` with even kernels and exports cleanly to ONNX."""
    total = kernel_size - 1
    lo = total // 2
    hi = total - lo
    return nn.ZeroPad2d((lo, hi, lo, hi))


# --------------------------------------------------------------------------- blocks
class ConvBlock(nn.Module):
    """Two 4x4 'same' convolutions with ReLU, optionally followed by 2x2 max-pool.

    Shapes:
        input: (N, C_in, H, W) -> (N, C_out, H/2, W/2) if pool else (N, C_out, H, W)
    """

    def __init__(self, in_channels: int, channels: List[int], kernel_size: int = 4, pool: bool = True) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        cin = in_channels
        for c in channels:
            layers += [_same_pad(kernel_size), nn.Conv2d(cin, c, kernel_size=kernel_size), nn.ReLU()]
            cin = c
        if pool:
            layers.append(nn.MaxPool2d(2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


# --------------------------------------------------------------------------- model
class JetImageCNN(nn.Module):
    """DeepTop-like CNN tagger on (pre-processed) calorimeter jet images.

    Convolutions are grouped by two; each group ends with a 2x2 max-pool, so
    ``npix`` must be divisible by ``2 ** ceil(len(conv_channels) / 2)``.

    Args:
        in_channels: image channels (1: pT image).
        npix: image side in pixels (H = W = npix).
        conv_channels: output channels of each 4x4 convolution.
        dense: widths of the hidden fully connected layers (ReLU).
        num_classes: output logits.

    Shapes:
        image: (N, in_channels, npix, npix)
        output: (N, num_classes) logits
    """

    input_kind = "image"

    def __init__(
        self,
        in_channels: int = 1,
        npix: int = 40,
        conv_channels: Optional[List[int]] = None,
        dense: Optional[List[int]] = None,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        conv_channels = [int(c) for c in (conv_channels if conv_channels is not None else [8, 8, 8, 8])]
        dense = [int(d) for d in (dense if dense is not None else [64, 64, 64])]
        if not conv_channels:
            raise ValueError("conv_channels must not be empty")
        self._config: Dict[str, Any] = {
            "in_channels": int(in_channels),
            "npix": int(npix),
            "conv_channels": conv_channels,
            "dense": dense,
            "num_classes": int(num_classes),
        }
        npools = (len(conv_channels) + 1) // 2
        if npix % (2**npools) != 0:
            raise ValueError(f"npix={npix} must be divisible by 2**{npools}")
        blocks: List[nn.Module] = []
        cin = int(in_channels)
        for i in range(0, len(conv_channels), 2):
            chs = conv_channels[i : i + 2]
            blocks.append(ConvBlock(cin, chs, pool=True))
            cin = chs[-1]
        self.features = nn.Sequential(*blocks)
        side = npix // (2**npools)
        fc: List[nn.Module] = [nn.Flatten()]
        fin = cin * side * side
        for width in dense:
            fc += [nn.Linear(fin, width), nn.ReLU()]
            fin = width
        fc.append(nn.Linear(fin, int(num_classes)))
        self.classifier = nn.Sequential(*fc)

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor kwargs (plain lists/ints) to rebuild the model."""
        return copy.deepcopy(self._config)

    def forward(self, image: Tensor) -> Tensor:
        return self.classifier(self.features(image))
