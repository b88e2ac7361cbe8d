"""Inference engine: models loaded once per process, kept on their device, mini-batched.

* :func:`get_tagger` returns the process-wide cached, device-resident tagger for an
  artifact (cache key: artifact hash + device + amp + backend), so a Dask worker loads
  each model once, not once per chunk. :func:`cache_info` reports hits and misses.
  :meth:`Tagger.predict` scores a mapping of named input arrays, whatever the model
  (torch network or the cut-based baseline).
* :func:`predict` runs a model over numpy inputs in mini-batches: pinned host buffers
  and non-blocking copies on CUDA, optional bf16/fp16 autocast on GPU (fp32 default;
  always fp32 on CPU), and on CUDA out-of-memory the batch is halved and retried
  (logged), so results are identical whatever the batch size.
* Device choice: ``"auto"`` takes ``cuda`` when torch sees a GPU - under dask-cuda
  each worker sees exactly one through ``CUDA_VISIBLE_DEVICES`` - else ``cpu``.

Training evaluation and the processor both score through :func:`predict`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from hepml_coffea.artifacts import Artifact, ArtifactError, load_artifact, resolve_artifact

__all__ = [
    "BACKENDS",
    "Tagger",
    "get_tagger",
    "cache_info",
    "clear_cache",
    "predict",
    "default_batch_size",
    "resolve_device",
    "resolve_backend",
    "scores_from_output",
]

log = logging.getLogger("hepml_coffea.inference")

_LOCK = threading.RLock()
_CACHE: dict[tuple[str, str, str, str], Tagger] = {}

#: selectable execution backends; ``"torch"`` is plain eager PyTorch
BACKENDS = ("auto", "onnxruntime", "compile", "torch")
_STATS = {"hits": 0, "misses": 0, "oom_retries": 0}


@dataclass
class Tagger:
    """A device-resident model plus what is needed to feed it.

    Use :func:`get_tagger` to obtain one (cached per process); call :meth:`predict`.

    Attributes
    ----------
    artifact : the verified artifact the model comes from
    model : torch module on ``device`` in eval mode, or a ``CutBasedTopTagger``
    device : ``"cpu"`` or ``"cuda[:i]"``
    amp : autocast dtype name (``"bf16"``, ``"fp16"``) or ``None`` for fp32
    backend : the resolved execution backend (``"torch"``, ``"compile"``,
        ``"onnxruntime"``; ``"numpy"`` for the cut-based baseline)
    """

    artifact: Artifact
    model: Any
    device: str
    amp: str | None = None
    backend: str = "torch"

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def input_names(self) -> tuple[str, ...]:
        """The keys :meth:`predict` reads, in the model's forward() order."""
        return self.artifact.input_names

    @property
    def input_kind(self) -> str:
        return self.artifact.input_kind

    def predict(self, inputs: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        """Top scores of the jets in ``inputs``.

        Parameters
        ----------
        inputs : mapping holding at least :attr:`input_names` (extra keys are ignored),
            each a numpy array whose first axis is the jet
        batch_size : jets per forward pass (default :func:`default_batch_size`)

        Returns
        -------
        np.ndarray
            float32 scores in [0, 1]. For the cut-based baseline, NaN where
            ``msoftdrop`` or ``tau32`` is not finite.

        Shapes:
            image: (N, C, H, W); features: (N, C, P); points: (N, 2, P); mask: (N, 1, P);
            msoftdrop, tau32: (N,) -> (N,)
        """
        arrays = _take_inputs(self, inputs)
        if self.input_kind == "observables":
            return _score_observables(self.model, arrays[0], arrays[1])
        return predict(self.model, arrays, device=self.device, batch_size=batch_size, amp=self.amp)


def _take_inputs(tagger: Tagger, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The arrays named by ``tagger.input_names``, checked for presence and equal length."""
    missing = [k for k in tagger.input_names if k not in inputs]
    if missing:
        msg = (f"tagger {tagger.name!r} ({tagger.input_kind} input) needs inputs {list(tagger.input_names)}; "
               f"missing {missing} (given {sorted(inputs)})")
        raise KeyError(msg)
    arrays = [np.asarray(inputs[k]) for k in tagger.input_names]
    lengths = {k: len(a) for k, a in zip(tagger.input_names, arrays)}
    if len(set(lengths.values())) > 1:
        msg = f"tagger {tagger.name!r}: inputs have different numbers of jets {lengths}"
        raise ValueError(msg)
    return arrays


def _score_observables(model: Any, msd: np.ndarray, tau32: np.ndarray) -> np.ndarray:
    """Cut-based baseline scores; NaN where an input is not finite. Shapes: (N,), (N,) -> (N,)."""
    msd = np.asarray(msd, dtype=np.float64).ravel()
    tau32 = np.asarray(tau32, dtype=np.float64).ravel()
    out = np.full(msd.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(msd) & np.isfinite(tau32)
    if ok.any():
        out[ok] = model.score(msd[ok], tau32[ok]).astype(np.float32)
    return out


def resolve_backend(backend: str, device: str, artifact: Artifact) -> str:
    """The execution backend actually used for ``artifact`` on ``device``.

    ``"auto"`` takes the backend recorded in the artifact for CPU (chosen by measurement
    when the artifact was sealed) and ``"torch"`` on GPU. The cut-based baseline always
    runs on numpy (``"numpy"``) whatever is asked.
    """
    if backend not in BACKENDS:
        msg = f"backend {backend!r} unknown; choose one of {list(BACKENDS)}"
        raise ValueError(msg)
    if artifact.input_kind == "observables":
        return "numpy"
    if backend == "auto":
        return "torch"
    return backend


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU else ``"cpu"``; others pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        msg = f"device {device!r} requested but torch sees no CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        raise RuntimeError(msg)
    return device


def get_tagger(
    name_or_path: str | os.PathLike[str],
    device: str = "auto",
    amp: str | None = None,
    backend: str = "auto",
) -> Tagger:
    """The cached tagger for an artifact on ``device`` (loaded on first use).

    Parameters
    ----------
    name_or_path : shipped tagger name or artifact directory
    device : ``"auto"``, ``"cpu"`` or ``"cuda[:i]"`` (see :func:`resolve_device`)
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast on CUDA
    backend : one of :data:`BACKENDS` (see :func:`resolve_backend`)
    """
    if backend not in BACKENDS:
        msg = f"backend {backend!r} unknown; choose one of {list(BACKENDS)}"
        raise ValueError(msg)
    if amp not in (None, "bf16", "fp16"):
        msg = f"amp {amp!r} unknown; choose None (fp32), 'bf16' or 'fp16'"
        raise ValueError(msg)
    dev = resolve_device(device)
    path = Path(str(name_or_path))
    with _LOCK:
        # cheap key first: the manifest hash (full verification happens on load)
        apath = resolve_artifact(path)
        try:
            digest = json.loads((apath / "manifest.json").read_text())["hash"]
        except (OSError, ValueError, KeyError) as err:
            msg = f"artifact {apath}: unreadable manifest.json ({err})"
            raise ArtifactError(msg) from err
        key = (digest, dev, amp or "fp32", backend)
        hit = _CACHE.get(key)
        if hit is not None:
            _STATS["hits"] += 1
            return hit
        _STATS["misses"] += 1
        art = load_artifact(apath)
        chosen = resolve_backend(backend, dev, art)
        model = art.model
        if art.input_kind != "observables":  # torch model: resident on its device
            model = model.to(dev).eval()
            for p in model.parameters():
                p.requires_grad_(False)
        tagger = Tagger(artifact=art, model=model, device=dev, amp=amp, backend=chosen)
        _CACHE[key] = tagger
        return tagger


def cache_info() -> dict[str, int]:
    """Process-wide cache statistics: ``hits``, ``misses``, ``entries``, ``oom_retries``."""
    with _LOCK:
        return {**_STATS, "entries": len(_CACHE)}


def clear_cache() -> None:
    """Forget cached taggers (tests, or to free GPU memory)."""
    with _LOCK:
        _CACHE.clear()
        for k in _STATS:
            _STATS[k] = 0


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


def _forward(model: Any, args: list[Any]) -> Any:
    """One forward pass (a seam for fault-injection tests)."""
    return model(*args)


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def predict(
    model: Any,
    inputs: list[np.ndarray],
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    amp: str | None = None,
    min_batch_size: int = 1,
    on_oom: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores (float32, (N,)) of ``model`` on ``inputs`` (numpy arrays, first axis = jets).

    Parameters
    ----------
    model : torch module (already on ``device``, eval mode)
    inputs : arrays in forward() order, e.g. ``[points, features, mask]``
    device : ``"cpu"`` or ``"cuda[:i]"``
    batch_size : jets per forward pass (default :func:`default_batch_size`); halved on
        CUDA out-of-memory (down to ``min_batch_size``), which does not change the scores
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast (CUDA only)
    on_oom : called with the new batch size after each halving
    """
    import torch

    n = len(inputs[0]) if inputs else 0
    for a in inputs:
        if len(a) != n:
            msg = f"inputs have different lengths: {[len(x) for x in inputs]}"
            raise ValueError(msg)
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    cuda = device.startswith("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
    tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in inputs]
    bs = max(1, int(batch_size or default_batch_size(device)))
    start = 0
    pinned: list[Any] | None = None
    with torch.inference_mode():
        while start < n:
            stop = min(start + bs, n)
            try:
                if cuda:
                    if pinned is None or pinned[0].shape[0] < stop - start:
                        pinned = [torch.empty((bs, *t.shape[1:]), dtype=torch.float32).pin_memory() for t in tensors]
                    args = []
                    for buf, t in zip(pinned, tensors):
                        view = buf[: stop - start]
                        view.copy_(t[start:stop])
                        args.append(view.to(device, non_blocking=True))
                else:
                    args = [t[start:stop] for t in tensors]
                if cuda and dtype is not None:
                    with torch.autocast("cuda", dtype=dtype):
                        res = _forward(model, args)
                else:
                    res = _forward(model, args)
                out[start:stop] = scores_from_output(res).cpu().numpy()
                start = stop
            except (RuntimeError, MemoryError) as err:
                if not _is_oom(err) or bs <= min_batch_size:
                    raise
                bs = max(min_batch_size, bs // 2)
                pinned = None
                _STATS["oom_retries"] += 1
                log.warning("out of memory at batch size %d: retrying with %d", bs * 2, bs)
                if cuda:
                    torch.cuda.empty_cache()
                if on_oom is not None:
                    on_oom(bs)
    return out
