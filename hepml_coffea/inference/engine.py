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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.inference.batching import (
    PADDING_FREE,
    default_batch_size,
    padded_lengths,
    scores_from_output,
)
from hepml_coffea.inference.batching import is_oom as _is_oom
from hepml_coffea.artifacts import (
    Artifact,
    ArtifactError,
    load_artifact,
    resolve_artifact,
)

__all__ = [
    "BACKENDS",
    "PADDING_FREE",
    "class_score",
    "Tagger",
    "cache_info",
    "clear_cache",
    "default_batch_size",
    "get_tagger",
    "padded_lengths",
    "predict",
    "predict_numpy",
    "resolve_backend",
    "resolve_device",
    "scores_from_output",
]

log = logging.getLogger("hepml_coffea.inference")

_LOCK = threading.RLock()
_CACHE: dict[tuple[str, str, str, str], Tagger] = {}


#: selectable execution backends; ``"torch"`` is plain eager PyTorch
BACKENDS = ("auto", "onnxruntime", "aoti", "compile", "torch")
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
        ``"onnxruntime"``, ``"aoti"``; ``"numpy"`` for the cut-based baseline)
    runner : what runs a batch (:func:`hepml_coffea.inference.backends.make_runner`);
        ``None`` means ``model`` in torch eager
    """

    artifact: Artifact
    model: Any
    device: str
    amp: str | None = None
    backend: str = "torch"
    runner: Any = None

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
        if self.artifact.classes:
            return class_score(self.artifact, self.predict_classes(inputs, batch_size=batch_size))
        return self._run(inputs, batch_size, head=None)

    def predict_classes(self, inputs: Mapping[str, np.ndarray], *, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of a multi-class model (an imported weaver model).

        Returns
        -------
        np.ndarray
            float32 ``(N, len(artifact.classes))``, rows summing to 1.

        Shapes:
            each input ``(N, C_b, P_b)`` -> ``(N, n_classes)``
        """
        if not self.artifact.classes:
            msg = f"tagger {self.name!r} is a top-vs-QCD model without classes; use predict()"
            raise ValueError(msg)
        return self._run(inputs, batch_size, head=_softmax_rows)

    def _run(self, inputs: Mapping[str, np.ndarray], batch_size: int | None, head: Any) -> np.ndarray:
        arrays = _take_inputs(self, inputs)
        if self.input_kind == "observables":
            return _score_observables(self.model, arrays[0], arrays[1])
        lengths = None
        if self.trims_padding:
            lengths = padded_lengths(arrays[self.input_names.index(self.mask_name)])
        runner = self.model if self.runner is None else self.runner
        width = len(self.artifact.classes) if head is not None else None
        if getattr(runner, "takes_numpy", False):
            return predict_numpy(runner, arrays, batch_size=batch_size, lengths=lengths, width=width)
        return predict(runner, arrays, device=self.device, batch_size=batch_size, amp=self.amp, lengths=lengths,
                       head=head, width=width)

    @property
    def mask_name(self) -> str:
        """The input holding the constituent mask (``mask``, or a blocks spec's mask block)."""
        spec = self.artifact.spec
        if self.input_kind == "blocks" and spec is not None and spec.mask_block:
            return spec.mask_block
        return "mask"

    @property
    def trims_padding(self) -> bool:
        """Whether batches are sorted by constituent count and trimmed to their longest jet:
        only for the registry's masked models, whose scores do not depend on padding
        (a TorchScript model brought by the user is run on its inputs as given)."""
        if self.input_kind == "blocks":  # measured at import: outputs equal trimmed and untrimmed
            return bool(self.artifact.meta.get("trim_padding")) and self.mask_name in self.input_names
        return self.artifact.class_name in PADDING_FREE and "mask" in self.input_names


def _softmax_rows(out: Any) -> Any:
    """(N, C) logits -> (N, C) probabilities (torch)."""
    import torch

    return torch.softmax(out.float(), dim=1)


def class_score(artifact: Artifact, probs: np.ndarray) -> np.ndarray:
    """The artifact's score expression (e.g. ``Tbqq / (Tbqq + QCD)``) on class probabilities.

    Shapes:
        probs ``(N, n_classes)`` -> ``(N,)`` float32
    """
    from hepml_coffea.representations.expressions import parse_expression

    expr = artifact.score_expression
    if not expr:
        msg = f"artifact {artifact.path}: a multi-class model needs a score expression in model.yaml"
        raise ArtifactError(msg)
    return parse_expression(expr).evaluate(_ClassColumns(artifact.classes, probs)).astype(np.float32)


class _ClassColumns:
    """What a score expression reads: one column per class, by name (one row per jet)."""

    def __init__(self, classes: tuple[str, ...], probs: np.ndarray) -> None:
        self.index = {c: i for i, c in enumerate(classes)}
        self.probs = np.asarray(probs, dtype=np.float64)
        n = len(self.probs)
        self.n_constituents = n
        self.counts = np.ones(n, dtype=np.int64)
        self.starts = np.arange(n, dtype=np.int64)

    def cand(self, name: str) -> np.ndarray:
        return self.probs[:, self.index[name]]

    def jet(self, name: str) -> np.ndarray:
        return self.cand(name)

    def jet_of_constituent(self) -> np.ndarray:
        return self.starts


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
    if artifact.model is None:  # an imported ONNX graph without torch weights
        if backend not in ("auto", "onnxruntime"):
            msg = (f"tagger {artifact.name!r} is an imported ONNX graph without torch weights: it runs only "
                   f"in ONNX Runtime (backend 'auto' or 'onnxruntime', not {backend!r})")
            raise ValueError(msg)
        return "onnxruntime"
    cuda = device.startswith("cuda")
    if backend == "auto":
        return "torch" if cuda else (artifact.cpu_backend or "torch")
    if backend in ("onnxruntime", "aoti") and cuda:
        msg = (f"backend {backend!r} runs on CPU only (device {device!r}); use backend 'torch' or 'compile' "
               "on a GPU, or 'auto'")
        raise ValueError(msg)
    return backend


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU else ``"cpu"``; others pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from hepml_coffea.config import ConfigurationError

        msg = f"device {device!r} requested but torch sees no CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        raise ConfigurationError(msg)
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
        if model is None and dev != "cpu":
            log.info("tagger %s is an ONNX graph: it runs in ONNX Runtime on the CPU of this %s worker", art.name, dev)
            dev = "cpu"
        if model is not None and art.input_kind != "observables":  # torch model: resident on its device
            model = model.to(dev).eval()
            for p in model.parameters():
                p.requires_grad_(False)
        runner = None
        if chosen not in ("numpy", "torch"):
            from hepml_coffea.inference.backends import make_runner

            runner = make_runner(art, model, chosen, strict=backend != "auto")
            if runner is model:  # "auto" fell back to eager (logged)
                chosen, runner = "torch", None
            else:  # "auto" may have fallen back to another runner (logged)
                chosen = getattr(runner, "backend", chosen)
        tagger = Tagger(artifact=art, model=model, device=dev, amp=amp, backend=chosen, runner=runner)
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


def _forward(model: Any, args: list[Any]) -> Any:
    """One forward pass (a seam for fault-injection tests)."""
    return model(*args)


@dataclass(frozen=True)
class _Batch:
    """One mini-batch: positions of its jets in the input (slice or index array) and the
    padded length its inputs are trimmed to (``None``: untrimmed)."""

    rows: Any
    length: int | None


class _Planner:
    """Mini-batches in order of constituent count (when lengths are given).

    ``lengths`` None: consecutive slices, inputs untouched. Otherwise jets are taken in
    increasing padded length (stable sort) and each batch is trimmed to its longest
    jet (at least one position, so a batch of empty jets still has a padded axis).
    """

    def __init__(self, n: int, lengths: np.ndarray | None) -> None:
        self.n = n
        if lengths is None:
            self.order = None
            self.sorted_len = None
        else:
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != (n,):
                msg = f"lengths has shape {lengths.shape}, expected ({n},)"
                raise ValueError(msg)
            self.order = np.argsort(lengths, kind="stable")
            self.sorted_len = lengths[self.order]

    def batch(self, start: int, stop: int) -> _Batch:
        if self.order is None or self.sorted_len is None:
            return _Batch(slice(start, stop), None)
        return _Batch(self.order[start:stop], max(1, int(self.sorted_len[stop - 1])))


def _gather(a: np.ndarray, b: _Batch) -> np.ndarray:
    """Rows of one batch, padded axis (last) trimmed; a contiguous float32 copy or view.

    One indexing operation that copies only the batch's trimmed rows (``np.take`` on the
    trimmed view would first copy the whole trimmed array, every batch: quadratic in the
    chunk's jets).

    Shapes:
        a: (N, ..., P) -> (n_batch, ..., length)
    """
    if b.length is None:
        return a[b.rows]
    return a[b.rows, ..., : b.length]


def predict(
    model: Any,
    inputs: list[np.ndarray],
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    amp: str | None = None,
    min_batch_size: int = 1,
    on_oom: Callable[[int], None] | None = None,
    lengths: np.ndarray | None = None,
    head: Callable[[Any], Any] | None = None,
    width: int | None = None,
) -> np.ndarray:
    """Scores (float32, (N,)) of ``model`` on ``inputs`` (numpy arrays, first axis = jets).

    Parameters
    ----------
    model : torch module (already on ``device``, eval mode), or any callable taking
        torch tensors and returning logits
    inputs : arrays in forward() order, e.g. ``[points, features, mask]``
    device : ``"cpu"`` or ``"cuda[:i]"``
    batch_size : jets per forward pass (default :func:`default_batch_size`); halved on
        out-of-memory (down to ``min_batch_size``), which does not change the scores
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast (CUDA only)
    on_oom : called with the new batch size after each halving
    lengths : per-jet padded length (:func:`padded_lengths` of the mask). When given,
        jets are batched in order of length and every input is trimmed on its last
        axis to the longest jet of its batch: only for models whose output does not
        depend on padding (the registry's PFN, LSTM and ParticleNet)
    head : maps the model's output tensor to per-jet rows (default
        :func:`scores_from_output`: the top score); with ``width`` the rows are
        ``(width,)`` (e.g. class probabilities) and the result ``(N, width)``

    Shapes:
        inputs: each (N, ...) -> (N,), or (N, width) with ``width``

    On CUDA the batches go through two pinned host buffers and a side copy stream, so
    the copy of batch ``i + 1`` overlaps the computation of batch ``i``; the scores
    stay on the GPU until one copy back at the end (one synchronisation per call).
    """
    import torch

    n = _n_jets(inputs)
    out = np.empty((n,) if width is None else (n, width), dtype=np.float32)
    head = head or scores_from_output
    if n == 0:
        return out
    if amp not in (None, "bf16", "fp16"):
        msg = f"amp {amp!r} unknown; choose None (fp32), 'bf16' or 'fp16'"
        raise ValueError(msg)
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    plan = _Planner(n, lengths)
    bs = max(1, int(batch_size or default_batch_size(device)))
    with torch.inference_mode():
        if device.startswith("cuda"):
            _predict_cuda(model, arrays, plan, out, device, bs, amp, min_batch_size, on_oom, head)
        else:
            _predict_host(lambda args: head(_forward(model, [torch.from_numpy(x) for x in args])).numpy(),
                          arrays, plan, out, bs, min_batch_size, on_oom)
    return out


def _n_jets(inputs: list[np.ndarray]) -> int:
    """The common first-axis length of ``inputs`` (a clear error if they differ)."""
    n = len(inputs[0]) if inputs else 0
    if any(len(a) != n for a in inputs):
        msg = f"inputs have different lengths: {[len(x) for x in inputs]}"
        raise ValueError(msg)
    return n


def predict_numpy(
    run: Callable[[list[np.ndarray]], np.ndarray],
    inputs: list[np.ndarray],
    *,
    batch_size: int | None = None,
    lengths: np.ndarray | None = None,
    min_batch_size: int = 1,
    on_oom: Callable[[int], None] | None = None,
    width: int | None = None,
) -> np.ndarray:
    """Like :func:`predict` on CPU for a runner that takes numpy arrays (ONNX Runtime):
    ``run(batch_arrays) -> scores`` (or ``(n, width)`` rows, e.g. class probabilities, with
    ``width``); same batching, bucketing and trimming.

    Shapes:
        inputs: each (N, ...) -> (N,), or (N, width) with ``width``
    """
    n = _n_jets(inputs)
    out = np.empty((n,) if width is None else (n, width), dtype=np.float32)
    if n == 0:
        return out
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    bs = max(1, int(batch_size or default_batch_size("cpu")))
    _predict_host(run, arrays, _Planner(n, lengths), out, bs, min_batch_size, on_oom)
    return out


def _halve(bs: int, min_batch_size: int, err: BaseException, on_oom: Callable[[int], None] | None) -> int:
    """The next batch size after an out-of-memory error (re-raises what is not one)."""
    if not _is_oom(err) or bs <= min_batch_size:
        raise err
    new = max(min_batch_size, bs // 2)
    _STATS["oom_retries"] += 1
    log.warning("out of memory at batch size %d: retrying with %d", bs, new)
    if on_oom is not None:
        on_oom(new)
    return new


def _predict_host(
    run: Callable[[list[np.ndarray]], np.ndarray],
    arrays: list[np.ndarray],
    plan: _Planner,
    out: np.ndarray,
    bs: int,
    min_batch_size: int,
    on_oom: Callable[[int], None] | None,
) -> None:
    """CPU loop shared by every backend: ``run`` maps one batch's arrays to its scores."""
    start = 0
    n = len(out)
    while start < n:
        stop = min(start + bs, n)
        b = plan.batch(start, stop)
        try:
            out[b.rows] = run([_gather(a, b) for a in arrays])
        except (RuntimeError, MemoryError) as err:
            bs = _halve(bs, min_batch_size, err, on_oom)
            continue
        start = stop


class _PinnedSlot:
    """One pinned host staging buffer per input plus the event of its last copy."""

    def __init__(self, torch: Any, arrays: list[np.ndarray], bs: int) -> None:
        self.bufs = [torch.empty(bs * int(np.prod(a.shape[1:], dtype=np.int64)), dtype=torch.float32).pin_memory()
                     for a in arrays]
        self.event: Any = None


def _predict_cuda(
    model: Any,
    arrays: list[np.ndarray],
    plan: _Planner,
    out: np.ndarray,
    device: str,
    bs: int,
    amp: str | None,
    min_batch_size: int,
    on_oom: Callable[[int], None] | None,
    head: Callable[[Any], Any] = scores_from_output,
) -> None:
    """CUDA loop: double-buffered pinned staging, copies on a side stream, one sync."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
    hosts = [torch.from_numpy(a) for a in arrays]
    compute = torch.cuda.current_stream(device)
    copier = torch.cuda.Stream(device)
    n = len(out)

    def stage(slot: _PinnedSlot, start: int, size: int) -> tuple[_Batch, list[Any], Any]:
        stop = min(start + size, n)
        b = plan.batch(start, stop)
        if slot.event is not None:  # this buffer's previous copy (two batches ago) must be done
            slot.event.synchronize()
        views = []
        for buf, h in zip(slot.bufs, hosts):
            src = h if b.length is None else h[..., : b.length]
            shape = (stop - start, *src.shape[1:])
            view = buf[: int(np.prod(shape))].view(shape)
            if b.length is None:
                view.copy_(src[start:stop])
            else:  # gather the batch's jets, trimmed, straight into pinned memory
                torch.index_select(src, 0, torch.from_numpy(b.rows), out=view)
            views.append(view)
        with torch.cuda.stream(copier):
            dev = [v.to(device, non_blocking=True) for v in views]
            slot.event = torch.cuda.Event()
            slot.event.record(copier)
        return b, dev, slot.event

    results: list[tuple[Any, Any]] = []  # (positions, scores on the GPU)
    start = 0
    while start < n:
        slots = [_PinnedSlot(torch, arrays, bs), _PinnedSlot(torch, arrays, bs)]
        try:
            cur = stage(slots[0], start, bs)
            k = 0
            while cur is not None:
                b, dev, ready = cur
                compute.wait_event(ready)
                for t in dev:  # allocated on the copy stream, used on the compute stream
                    t.record_stream(compute)
                if dtype is not None:
                    with torch.autocast("cuda", dtype=dtype):
                        res = _forward(model, dev)
                else:
                    res = _forward(model, dev)
                results.append((b.rows, head(res)))
                start += len(dev[0])
                k += 1
                # stage the next batch while the GPU computes this one
                cur = stage(slots[k % 2], start, bs) if start < n else None
        except (RuntimeError, MemoryError) as err:
            bs = _halve(bs, min_batch_size, err, on_oom)
            del slots
            torch.cuda.empty_cache()
    if results:
        scores = torch.cat([r for _, r in results]).cpu().numpy()  # the one synchronisation
        pos = 0
        for rows, r in results:
            out[rows] = scores[pos : pos + len(r)]
            pos += len(r)
