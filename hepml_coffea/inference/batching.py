"""Batching primitives shared by the engine and the backends (no imports of either).

* :func:`scores_from_output`: top score from (N, 2) logits or (N,)/(N, 1) logits;
* :func:`default_batch_size`: jets per forward pass by device;
* :func:`padded_lengths` and :data:`PADDING_FREE`: the padding trim of masked models;
* :func:`is_oom`: whether an error is an out-of-memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PADDING_FREE", "default_batch_size", "is_oom", "padded_lengths", "scores_from_output"]

#: model classes whose output does not depend on the padded length (masked pooling,
#: masked kNN, packed LSTM), so their batches may be trimmed to the longest jet
PADDING_FREE = frozenset({"ParticleFlowNetwork", "JetLSTM", "ParticleNet"})


def scores_from_output(out: Any) -> Any:
    """Top score from a model output: softmax[:, 1] of (N, 2) logits, sigmoid of (N,)/(N, 1)."""
    import torch

    out = out.float()
    if out.ndim == 2 and out.shape[1] == 2:
        return torch.softmax(out, dim=1)[:, 1]
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim == 1:
        return torch.sigmoid(out)
    msg = f"model output of shape {tuple(out.shape)}: expected (N, 2) logits or (N,)/(N, 1)"
    raise ValueError(msg)


def default_batch_size(device: str) -> int:
    """1024 jets on GPU; 128 on CPU, where large batches are slower: every forward pass
    maps its big temporary tensors afresh and page-faults them (benchmarks/probe_malloc.py:
    particlenet-lite 4x faster at 64 than at 1024 on one core) and the peak memory grows."""
    return 1024 if device.startswith("cuda") else 128


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is a CUDA (or other) out-of-memory error."""
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def padded_lengths(mask: np.ndarray) -> np.ndarray:
    """Per jet, one past the last real particle (0 for a jet without particles).

    Equal to the particle count for the contiguous masks the representations build
    (real particles first); for any other mask it is still the shortest prefix of the
    padded axis that holds every real particle, so trimming to it drops only padding.

    Shapes:
        mask: (N, 1, P) -> (N,) int64
    """
    mask = np.asarray(mask)
    m = mask.reshape(mask.shape[0], int(np.prod(mask.shape[1:], dtype=np.int64))) > 0
    if m.shape[1] == 0:
        return np.zeros(len(m), dtype=np.int64)
    last = m.shape[1] - np.argmax(m[:, ::-1], axis=1)
    return np.where(m.any(axis=1), last, 0).astype(np.int64)
