"""Inference engine: taggers loaded once per process, kept on their device, mini-batched.

* :func:`get_tagger` returns the process-wide cached :class:`TaggerHandle` of an artifact
  (cache key: artifact hash + device + amp + backend): the artifact verified and parsed
  once, the runtime chosen once (a :class:`~hepml_coffea.inference.runners.Runner`). A
  caller that names the hash it was configured with (the scoring layer) is answered from
  memory, without reading the manifest again. :func:`cache_info` reports hits and misses.
  :meth:`TaggerHandle.predict` scores a mapping of named input arrays, whatever the model.
* :func:`run_batches` is the one batching loop for every runtime: mini-batches sorted by
  constituent count and trimmed, halved on out-of-memory (results identical whatever the
  batch size), and on CUDA pinned host buffers with non-blocking copies. The runner does
  the rest (runtime, autocast, the head that turns outputs into probabilities); this
  module never names a runtime. :func:`predict` runs a torch module through it.
* Device choice: ``"auto"`` takes ``cuda`` when torch sees a GPU - under dask-cuda
  each worker sees exactly one through ``CUDA_VISIBLE_DEVICES`` - else ``cpu``.

Training evaluation and the processor both score through :func:`predict` / :func:`run_batches`.

(About 600 lines: the handle and its cache, and the one batching loop with its CUDA
staging; they stay in one module because the fault-injection seam :func:`_forward`, which
the tests replace here, must see every batch of both loops.)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.artifacts import Artifact, ArtifactError, load_artifact, resolve_artifact
from hepml_coffea.inference.batching import (
    PADDING_FREE,
    default_batch_size,
    padded_lengths,
    scores_from_output,
)
from hepml_coffea.inference.batching import is_oom as _is_oom
from hepml_coffea.inference.heads import class_score
from hepml_coffea.inference.runners import (
    BACKENDS,
    ObservablesRunner,
    Runner,
    TorchRunner,
    check_options,
    open_runner,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "PADDING_FREE",
    "class_score",
    "Tagger",
    "TaggerHandle",
    "cache_info",
    "clear_cache",
    "default_batch_size",
    "get_tagger",
    "padded_lengths",
    "predict",
    "predict_numpy",
    "resolve_backend",
    "resolve_device",
    "run_batches",
    "scores_from_output",
]

log = logging.getLogger("hepml_coffea.inference")

_LOCK = threading.RLock()
#: (artifact hash, resolved device, amp, backend asked) -> the loaded tagger
_CACHE: dict[tuple[str, str, str, str], TaggerHandle] = {}
#: (artifact hash, device as asked, amp, backend asked) -> the same taggers: a call that names
#: the hash (the scoring layer's) is answered without touching the disk or torch
_BY_REQUEST: dict[tuple[str, str, Any, str], TaggerHandle] = {}
_STATS = {"hits": 0, "misses": 0, "oom_retries": 0}


@dataclass(frozen=True, eq=False)
class TaggerHandle:
    """A loaded tagger: the verified, parsed artifact and the runner of its chosen runtime.

    Made once per process by :func:`get_tagger` (cached by artifact hash, device, amp and
    backend); immutable, hashable and equal by that key. Call :meth:`predict`.

    Attributes
    ----------
    artifact : the verified artifact the model comes from (spec parsed, manifest read once)
    model : torch module on ``device`` in eval mode, or a ``CutBasedTopTagger``
    device : ``"cpu"`` or ``"cuda[:i]"``
    amp : autocast dtype name (``"bf16"``, ``"fp16"``) or ``None`` for fp32
    backend : the runtime that runs it (``runner.name``: ``"torch"``, ``"compile"``,
        ``"onnxruntime"``, ``"aoti"``; ``"numpy"`` for the cut-based baseline)
    runner : the :class:`~hepml_coffea.inference.runners.Runner` (default: ``model`` in
        torch eager, or the baseline's numpy runner)
    """

    artifact: Artifact
    model: Any = None
    device: str = "cpu"
    amp: str | None = None
    backend: str = ""
    runner: Any = None
    input_names: tuple[str, ...] = field(init=False, repr=False)
    mask_name: str = field(init=False, repr=False)
    trims_padding: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        art = self.artifact
        model = self.model if self.model is not None else art.model
        runner = self.runner
        if runner is None:
            if art.input_kind == "observables":
                runner = ObservablesRunner(model)
            else:
                from hepml_coffea.inference.heads import softmax_rows

                runner = TorchRunner(model, self.device, self.amp, softmax_rows if art.classes else None,
                                     len(art.classes) if art.classes else None)
        setattr_ = object.__setattr__
        setattr_(self, "model", model)
        setattr_(self, "runner", runner)
        setattr_(self, "backend", runner.name)
        setattr_(self, "device", runner.device)
        names = art.input_names
        spec = art.spec
        mask = spec.mask_block if art.input_kind == "blocks" and spec is not None and spec.mask_block else "mask"
        if art.input_kind == "blocks":  # measured at import: outputs equal trimmed and untrimmed
            trims = bool(art.meta.get("trim_padding")) and mask in names
        else:
            trims = art.class_name in PADDING_FREE and "mask" in names
        setattr_(self, "input_names", names)
        setattr_(self, "mask_name", mask)
        setattr_(self, "trims_padding", trims)

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        """What identifies the handle: artifact hash, device, amp, runtime."""
        return (self.artifact.hash, self.device, self.amp, self.backend)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaggerHandle) and other.key == self.key

    @property
    def name(self) -> str:
        return self.artifact.name

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
        return self._run(inputs, batch_size)

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
        return self._run(inputs, batch_size)

    def _run(self, inputs: Mapping[str, np.ndarray], batch_size: int | None) -> np.ndarray:
        arrays = _take_inputs(self, inputs)
        lengths = padded_lengths(arrays[self.input_names.index(self.mask_name)]) if self.trims_padding else None
        return run_batches(self.runner, arrays, batch_size=batch_size, lengths=lengths)


#: the loaded tagger (the name used before :class:`TaggerHandle`)
Tagger = TaggerHandle


def _take_inputs(tagger: TaggerHandle, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
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


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if torch sees a GPU else ``"cpu"``; others pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from hepml_coffea.errors import ConfigurationError

        msg = f"device {device!r} requested but torch sees no CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        raise ConfigurationError(msg)
    return device


def get_tagger(
    name_or_path: str | os.PathLike[str],
    device: str = "auto",
    amp: str | None = None,
    backend: str = "auto",
    *,
    hash: str | None = None,  # noqa: A002 - the artifact's hash
) -> TaggerHandle:
    """The cached tagger for an artifact on ``device`` (loaded on first use).

    Parameters
    ----------
    name_or_path : shipped tagger name or artifact directory
    device : ``"auto"``, ``"cpu"`` or ``"cuda[:i]"`` (see :func:`resolve_device`)
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast on CUDA
    backend : one of :data:`BACKENDS` (see :func:`resolve_backend`)
    hash : the artifact hash the caller was configured with
        (:attr:`~hepml_coffea.config.TaggerConfig.hash`): a tagger loaded for it is
        returned without reading anything from disk; a first load refuses an artifact
        whose content changed since (:class:`~hepml_coffea.artifacts.ArtifactError`).
        Without it the manifest is read to find the hash (a re-sealed artifact is
        loaded anew).
    """
    if hash is not None:
        hit = _BY_REQUEST.get((hash, device, amp, backend))
        if hit is not None:
            with _LOCK:
                _STATS["hits"] += 1
            return hit
    check_options(backend, amp)
    dev = resolve_device(device)
    path = Path(str(name_or_path))
    with _LOCK:
        apath = resolve_artifact(path)
        digest = hash if hash is not None else _manifest_hash(apath)
        key = (digest, dev, amp or "fp32", backend)
        tagger = _CACHE.get(key)
        if tagger is not None:
            _STATS["hits"] += 1
        else:
            _STATS["misses"] += 1
            art = load_artifact(apath)
            if art.hash != digest:
                msg = f"artifact {apath} changed since the tagger was configured (hash mismatch)"
                raise ArtifactError(msg)
            tagger = TaggerHandle(artifact=art, amp=amp, runner=open_runner(art, dev, amp, backend))
            _CACHE[key] = tagger
        if hash is not None:
            _BY_REQUEST[(hash, device, amp, backend)] = tagger
        return tagger


def _manifest_hash(apath: Path) -> str:
    """The hash manifest.json records (the cache key; full verification happens on load)."""
    try:
        return str(json.loads((apath / "manifest.json").read_text())["hash"])
    except (OSError, ValueError, KeyError) as err:
        msg = f"artifact {apath}: unreadable manifest.json ({err})"
        raise ArtifactError(msg) from err


def cache_info() -> dict[str, int]:
    """Process-wide cache statistics: ``hits``, ``misses``, ``entries``, ``oom_retries``."""
    with _LOCK:
        return {**_STATS, "entries": len(_CACHE)}


def clear_cache() -> None:
    """Forget cached taggers (tests, or to free GPU memory)."""
    with _LOCK:
        _CACHE.clear()
        _BY_REQUEST.clear()
        for k in _STATS:
            _STATS[k] = 0


def _forward(runner: Any, batch: list[Any]) -> Any:
    """One batch through a runner (a seam for fault-injection tests)."""
    return runner.run(batch)


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


def run_batches(
    runner: Runner,
    inputs: Sequence[np.ndarray],
    *,
    batch_size: int | None = None,
    lengths: np.ndarray | None = None,
    min_batch_size: int = 1,
    on_oom: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Probabilities of ``runner`` on ``inputs`` (numpy, first axis = jets), in mini-batches.

    The one loop for every runtime: the runner maps one batch to its probabilities
    (:class:`~hepml_coffea.inference.runners.Runner`); this function only plans the
    batches (sorted by padded length and trimmed with ``lengths``), halves them on
    out-of-memory (identical results) and, for a CUDA runner, stages them through pinned
    memory. A runner that is not ``batched`` gets the inputs whole.

    Shapes:
        inputs: each (N, ...) -> (N,), or (N, runner.width)
    """
    if not runner.batched:
        return runner.run(list(inputs))
    n = _n_jets(list(inputs))
    width = runner.width
    out = np.empty((n,) if width is None else (n, width), dtype=np.float32)
    if n == 0:
        return out
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    plan = _Planner(n, lengths)
    device = runner.device
    bs = max(1, int(batch_size or default_batch_size(device)))
    if device.startswith("cuda"):
        import torch

        with torch.inference_mode():
            _predict_cuda(runner, arrays, plan, out, device, bs, min_batch_size, on_oom)
    else:
        _predict_host(lambda batch: _forward(runner, batch), arrays, plan, out, bs, min_batch_size, on_oom)
    return out


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
    model : torch module (already on ``device``, eval mode), any callable taking
        torch tensors and returning logits, or a
        :class:`~hepml_coffea.inference.runners.Runner` (then ``device``, ``amp``,
        ``head`` and ``width`` are the runner's)
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
    runner = model if isinstance(model, Runner) else TorchRunner(model, device, amp, head, width)
    return run_batches(runner, inputs, batch_size=batch_size, lengths=lengths, min_batch_size=min_batch_size,
                       on_oom=on_oom)


def _n_jets(inputs: list[np.ndarray]) -> int:
    """The common first-axis length of ``inputs`` (a clear error if they differ)."""
    n = len(inputs[0]) if inputs else 0
    if any(len(a) != n for a in inputs):
        msg = f"inputs have different lengths: {[len(x) for x in inputs]}"
        raise ValueError(msg)
    return n


class _NumpyCallable:
    """A callable ``run(batch_arrays) -> scores`` seen as a CPU runner."""

    name = "callable"
    device = "cpu"
    batched = True

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], width: int | None) -> None:
        self.run = run
        self.width = width

    @classmethod
    def supports(cls, artifact: Any, device: str) -> str | None:
        return None if not device.startswith("cuda") else "a numpy callable runs on the CPU"


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
    """Like :func:`predict` on CPU for a callable that takes numpy arrays:
    ``run(batch_arrays) -> scores`` (or ``(n, width)`` rows, e.g. class probabilities, with
    ``width``); same batching, bucketing and trimming.

    Shapes:
        inputs: each (N, ...) -> (N,), or (N, width) with ``width``
    """
    runner = run if isinstance(run, Runner) else _NumpyCallable(run, width)
    return run_batches(runner, inputs, batch_size=batch_size, lengths=lengths, min_batch_size=min_batch_size,
                       on_oom=on_oom)


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
    runner: Any,
    arrays: list[np.ndarray],
    plan: _Planner,
    out: np.ndarray,
    device: str,
    bs: int,
    min_batch_size: int,
    on_oom: Callable[[int], None] | None,
) -> None:
    """CUDA loop: double-buffered pinned staging, copies on a side stream, one sync; the
    runner maps the device tensors of one batch to its probabilities on the device."""
    import torch

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
                results.append((b.rows, _forward(runner, dev)))
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
