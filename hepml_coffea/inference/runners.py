"""One runner per runtime, behind one protocol; the only place that names a runtime.

Why one module of ~530 lines: the runtimes and the one policy that chooses among them stay
side by side, so no other module needs to name a runtime.

A :class:`Runner` runs one batch of a tagger's inputs and returns **probabilities**, the
same convention for every runtime:

* a top-vs-QCD model: ``(n,)`` float32, the top probability (softmax[:, 1] of two logits,
  or the sigmoid of one);
* a multi-class model (an imported weaver model, ``width`` classes): ``(n, width)``
  float32 class probabilities, rows summing to 1.

========== =============================================== ==========================
runner      runtime (``name``)                              batch in -> out
========== =============================================== ==========================
TorchRunner ``"torch"``: the module in eager PyTorch         numpy (CPU) or tensors on
                                                            ``device`` (CUDA) -> same kind
CompiledRunner ``"compile"``: ``torch.compile(dynamic=True)`` as TorchRunner
AotiRunner  ``"aoti"``: the artifact's ``model.pt2``         as TorchRunner (CPU)
OnnxRunner  ``"onnxruntime"``: the artifact's ``model.onnx``   numpy -> numpy (CPU)
ObservablesRunner ``"numpy"``: the cut-based baseline        numpy -> numpy, unbatched
========== =============================================== ==========================

:func:`check_options` validates ``backend`` and ``amp`` (the one place);
:func:`resolve_backend` picks the runtime for an artifact and device; :func:`open_runner`
builds the runner (falling back, for ``backend="auto"``, when a runtime cannot run here).
The engine (:mod:`hepml_coffea.inference.engine`) only batches: it never asks which
runtime it holds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from hepml_coffea.artifacts import Artifact, ArtifactError
from hepml_coffea.inference.backends import (
    AOTI_FILE,
    COMPILE_MARGIN,
    CPU_BACKENDS,
    ONNX_FILE,
    AOTI_MARGIN,
    _aoti_load,
    aoti_incompatibility,
    exportable_module,
    onnx_session,
)
from hepml_coffea.inference.batching import is_oom, scores_from_output
from hepml_coffea.inference.heads import softmax_rows
from hepml_coffea.inference.probes import check_runtime

__all__ = [
    "AMPS",
    "BACKENDS",
    "CPU_BACKENDS",
    "AotiRunner",
    "CompiledRunner",
    "ObservablesRunner",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "check_options",
    "make_runner",
    "open_runner",
    "pick_backend",
    "resolve_backend",
    "runner_class",
    "runtime_files",
    "unchosen_compiled",
]

log = logging.getLogger("hepml_coffea.inference")

#: selectable execution backends; ``"torch"`` is plain eager PyTorch
BACKENDS = ("auto", "onnxruntime", "aoti", "compile", "torch")
#: autocast dtypes (``None``: fp32)
AMPS = (None, "bf16", "fp16")


@runtime_checkable
class Runner(Protocol):
    """What the engine calls: one batch in model input order -> probabilities.

    Attributes
    ----------
    name : the runtime (``"torch"``, ``"compile"``, ``"onnxruntime"``, ``"aoti"``, ``"numpy"``)
    device : where it runs (``"cpu"``, ``"cuda[:i]"``); batches for a CUDA runner are
        tensors on that device, numpy arrays otherwise
    width : ``None``: :meth:`run` returns ``(n,)`` top probabilities; an int: ``(n, width)``
        class probabilities
    batched : whether the engine may split the input into mini-batches (and cast it to
        contiguous float32); ``False``: :meth:`run` gets the inputs whole, as given

    Shapes:
        batch: each ``(n, ...)`` -> ``(n,)`` or ``(n, width)``
    """

    name: str
    device: str
    width: int | None
    batched: bool

    def run(self, batch: Sequence[Any]) -> Any:
        """Probabilities of one batch (model input order)."""
        ...

    def supports(self, artifact: Artifact, device: str) -> str | None:
        """Why this runtime cannot run ``artifact`` on ``device`` (``None``: it can); a
        classmethod on every runner, asked before one is built."""
        ...


def check_options(backend: str = "auto", amp: str | None = None) -> None:
    """Refuse an unknown backend or autocast dtype (the one place both are validated).

    Raises
    ------
    ValueError
        naming the value and the choices.
    """
    if backend not in BACKENDS:
        msg = f"backend {backend!r} unknown; choose one of {list(BACKENDS)}"
        raise ValueError(msg)
    if amp not in AMPS:
        msg = f"amp {amp!r} unknown: amp must be None (fp32), 'bf16' or 'fp16'"
        raise ValueError(msg)


# --------------------------------------------------------------------------- runners
class TorchRunner:
    """A torch callable (module, compiled module, loaded AOTInductor package) -> probabilities.

    ``head`` maps the module's output to probabilities (default
    :func:`~hepml_coffea.inference.batching.scores_from_output`, the top probability;
    :func:`softmax_rows` for class probabilities, with ``width``). On CUDA, ``amp``
    autocasts the module's forward pass (the head runs outside it); on CPU it is ignored
    (always fp32).
    """

    name = "torch"
    batched = True
    supports_cuda: ClassVar[bool] = True

    def __init__(self, module: Any, device: str = "cpu", amp: str | None = None,
                 head: Callable[[Any], Any] | None = None, width: int | None = None) -> None:
        check_options(amp=amp)
        self.module = module
        self.device = device
        self.amp = amp
        self.head = head or scores_from_output
        self.width = width

    @classmethod
    def supports(cls, artifact: Artifact, device: str) -> str | None:
        """Why this runtime cannot run ``artifact`` on ``device`` (``None``: it can)."""
        if artifact.model is None or artifact.input_kind == "observables":
            return f"tagger {artifact.name!r} has no torch model"
        if device.startswith("cuda") and not cls.supports_cuda:
            return f"backend {cls.name!r} runs on CPU only (device {device!r})"
        return None

    def run(self, batch: Sequence[Any]) -> Any:
        """Probabilities of one batch: numpy in -> numpy out, tensors in -> tensor out."""
        import torch

        host = isinstance(batch[0], np.ndarray) if len(batch) else True
        args = [torch.from_numpy(a) for a in batch] if host else list(batch)
        with torch.inference_mode():
            if self.amp is not None and self.device.startswith("cuda"):
                dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    out = self.module(*args)
            else:
                out = self.module(*args)
            res = self.head(out)
        return res.numpy() if host else res

    __call__ = run

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, amp={self.amp!r}, width={self.width})"


class _Compiled:
    """``torch.compile``d module that falls back to eager if compiling fails (when not strict)."""

    def __init__(self, module: Any, strict: bool, name: str) -> None:
        import torch

        self.eager = module
        self.compiled = torch.compile(module, dynamic=True)
        self.strict = strict
        self.name = name
        self.ok: bool | None = None

    def __call__(self, *args: Any) -> Any:
        if self.ok is False:
            return self.eager(*args)
        try:
            out = self.compiled(*args)
        except Exception as err:
            if self.ok or self.strict or is_oom(err):
                raise
            log.warning("torch.compile of %s failed (%s: %s); running it in eager torch", self.name,
                        type(err).__name__, str(err)[:200])
            self.ok = False
            return self.eager(*args)
        self.ok = True
        return out


class CompiledRunner(TorchRunner):
    """``torch.compile(dynamic=True)`` of the model's exportable form, compiled on first use."""

    name = "compile"


class AotiRunner(TorchRunner):
    """The artifact's ``model.pt2`` (AOTInductor), loaded once; CPU only."""

    name = "aoti"
    supports_cuda = False

    @classmethod
    def supports(cls, artifact: Artifact, device: str) -> str | None:
        why = super().supports(artifact, device)
        if why is None and artifact.file_digest(AOTI_FILE) is None:
            return f"artifact {artifact.path} has no {AOTI_FILE}"
        if why is None:
            incompatible = aoti_incompatibility(artifact.meta.get("aoti"))
            return None if incompatible is None else f"{AOTI_FILE} cannot run here ({incompatible})"
        return why


class OnnxRunner:
    """One batch (numpy, model input order) through an ONNX Runtime CPU session.

    A torch-exported graph (output ``logits``) gets the same head as torch
    (:func:`~hepml_coffea.inference.batching.scores_from_output`, so scores equal eager
    torch's conversion); an imported multi-class graph (``width`` classes) returns its
    probabilities, with a softmax when the graph's output is logits (recorded at import).
    """

    name = "onnxruntime"
    device = "cpu"
    batched = True
    supports_cuda = False

    def __init__(self, session: Any, names: Sequence[str], *, output: str = "logits", width: int | None = None,
                 logits: bool = True) -> None:
        self.session = session
        self.names = list(names)
        self.output = output
        self.width = width
        self.logits = logits

    @classmethod
    def supports(cls, artifact: Artifact, device: str) -> str | None:
        if artifact.input_kind == "observables":
            return f"tagger {artifact.name!r} has no ONNX graph"
        if device.startswith("cuda"):
            return f"backend 'onnxruntime' runs on CPU only (device {device!r})"
        if artifact.file_digest(ONNX_FILE) is None:
            return f"artifact {artifact.path} has no {ONNX_FILE}"
        return None

    def run(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        out = self.session.run([self.output], dict(zip(self.names, batch)))[0]
        if self.width is None:
            import torch

            return scores_from_output(torch.from_numpy(np.ascontiguousarray(out))).numpy()
        out = np.asarray(out, dtype=np.float32)
        if self.logits:
            out = out - out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        return out

    __call__ = run


class ObservablesRunner:
    """The cut-based baseline (numpy): ``(msoftdrop, tau32)`` -> top probability, NaN where
    an input is not finite. Given the inputs whole (no mini-batches, no float32 cast)."""

    name = "numpy"
    device = "cpu"
    width = None
    batched = False
    supports_cuda = False

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def supports(cls, artifact: Artifact, device: str) -> str | None:
        return None if artifact.input_kind == "observables" else "not a cut-based tagger"

    def run(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Shapes: msd (N,), tau32 (N,) -> (N,)."""
        msd = np.asarray(batch[0], dtype=np.float64).ravel()
        tau32 = np.asarray(batch[1], dtype=np.float64).ravel()
        out = np.full(msd.shape, np.nan, dtype=np.float32)
        ok = np.isfinite(msd) & np.isfinite(tau32)
        if ok.any():
            out[ok] = self.model.score(msd[ok], tau32[ok]).astype(np.float32)
        return out

    __call__ = run


# --------------------------------------------------------------------------- choosing
def resolve_backend(backend: str, device: str, artifact: Artifact) -> str:
    """The execution backend actually used for ``artifact`` on ``device``.

    ``"auto"`` takes the backend recorded in the artifact for CPU (chosen by measurement
    when the artifact was sealed) and ``"torch"`` on GPU. The cut-based baseline always
    runs on numpy (``"numpy"``) whatever is asked; an imported ONNX graph in ONNX Runtime.
    """
    check_options(backend)
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
    if cuda and not _RUNNERS[backend].supports_cuda:
        msg = (f"backend {backend!r} runs on CPU only (device {device!r}); use backend 'torch' or 'compile' "
               "on a GPU, or 'auto'")
        raise ValueError(msg)
    return backend


def _verified_bytes(artifact: Artifact, fname: str) -> bytes | None:
    """The bytes of an artifact file the manifest covers (None if absent); refuses a file
    that does not match manifest.json."""
    path = artifact.path / fname
    want = artifact.file_digest(fname)
    if not path.is_file() or want is None:
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != want:
        msg = f"artifact {artifact.path}: {fname} does not match manifest.json; refusing to load"
        raise ArtifactError(msg)
    return data


class _Unavailable(Exception):
    """A runtime cannot run here (falls back when not asked for by name)."""


def _runtime_bytes(artifact: Artifact, fname: str, backend: str, export: str, instead: str) -> bytes:
    """The verified bytes of a runtime file; :class:`_Unavailable` naming how to make it if absent."""
    data = _verified_bytes(artifact, fname)
    if data is None:
        msg = (f"artifact {artifact.path} has no {fname} for backend '{backend}'; create it with "
               f"hepml_coffea.inference.backends.{export}(path) or choose backend '{instead}'")
        raise _Unavailable(msg)
    return data


def _head(artifact: Artifact) -> tuple[Callable[[Any], Any] | None, int | None]:
    return (softmax_rows, len(artifact.classes)) if artifact.classes else (None, None)


def _torch_runner(artifact: Artifact, model: Any, device: str, amp: str | None, strict: bool) -> TorchRunner:
    head, width = _head(artifact)
    return TorchRunner(model, device, amp, head, width)


def _compiled_runner(artifact: Artifact, model: Any, device: str, amp: str | None, strict: bool) -> TorchRunner:
    head, width = _head(artifact)
    try:
        module = _Compiled(exportable_module(model), strict, artifact.name)
    except Exception as err:
        if strict:
            raise
        log.warning("torch.compile unavailable for %s (%s); using torch eager", artifact.name, err)
        return TorchRunner(model, device, amp, head, width)
    return CompiledRunner(module, device, amp, head, width)


def _onnx_runner(artifact: Artifact, model: Any, device: str, amp: str | None, strict: bool) -> OnnxRunner:
    data = _runtime_bytes(artifact, ONNX_FILE, "onnxruntime", "export_onnx", "torch")
    try:
        session = onnx_session(data)
    except ImportError as err:
        msg = f"backend 'onnxruntime' needs the onnxruntime package ({err}); pip install onnxruntime"
        raise _Unavailable(msg) from err
    if artifact.classes:
        rec = artifact.meta.get("onnx_output") or {}
        runner = OnnxRunner(session, artifact.input_names, output=str(rec.get("name", "logits")),
                            width=len(artifact.classes), logits=rec.get("kind", "logits") == "logits")
    else:
        runner = OnnxRunner(session, artifact.input_names)
    return check_runtime(artifact, ONNX_FILE, runner)


def _aoti_runner(artifact: Artifact, model: Any, device: str, amp: str | None, strict: bool) -> AotiRunner:
    data = _runtime_bytes(artifact, AOTI_FILE, "aoti", "export_aoti", "onnxruntime")
    why = aoti_incompatibility(artifact.meta.get("aoti"))
    if why is not None:
        msg = f"artifact {artifact.path}: {AOTI_FILE} cannot run here ({why}); re-create it with export_aoti(path)"
        raise _Unavailable(msg)
    try:
        compiled = _aoti_load(data)
    except Exception as err:  # noqa: BLE001 - e.g. a C++ runtime older than the one it was built with
        msg = f"artifact {artifact.path}: {AOTI_FILE} does not load ({type(err).__name__}: {str(err)[:200]})"
        raise _Unavailable(msg) from err
    head, width = _head(artifact)
    return check_runtime(artifact, AOTI_FILE, AotiRunner(compiled, "cpu", None, head, width))


#: runtime name -> runner class (what it supports)
_RUNNERS: dict[str, Any] = {"torch": TorchRunner, "compile": CompiledRunner, "aoti": AotiRunner,
                            "onnxruntime": OnnxRunner, "numpy": ObservablesRunner}
#: runtime name -> how to build its runner
_BUILDERS: dict[str, Callable[..., Any]] = {"torch": _torch_runner, "compile": _compiled_runner,
                                            "onnxruntime": _onnx_runner, "aoti": _aoti_runner}
#: where ``backend="auto"`` goes when a runtime cannot run here
_FALLBACK = {"aoti": "onnxruntime", "onnxruntime": "torch", "compile": "torch"}


def make_runner(artifact: Artifact, model: Any, backend: str, *, strict: bool, device: str = "cpu",
                amp: str | None = None) -> Any:
    """The runner of ``backend`` for ``artifact`` (``model``: its torch module on ``device``).

    ``strict`` False (backend ``"auto"``): an unavailable runtime falls back with a
    warning (``aoti`` to ONNX Runtime, the others to torch eager); True (asked for by
    name): it raises.

    Raises
    ------
    ArtifactError
        ``"onnxruntime"`` / ``"aoti"`` asked for an artifact without ``model.onnx`` /
        ``model.pt2``, or a ``model.pt2`` built for another torch version or CPU; a file
        that does not match the manifest (also when not strict); a ``model.onnx`` /
        ``model.pt2`` not bound to the weights or failing the artifact's probe
        (:func:`hepml_coffea.inference.probes.check_runtime`, also when not strict).
    ValueError
        a backend without a runner.
    """
    if backend == "numpy":
        return ObservablesRunner(model)
    builder = _BUILDERS.get(backend)
    if builder is None:
        msg = f"backend {backend!r} has no CPU runner; choose one of {list(CPU_BACKENDS)}"
        raise ValueError(msg)
    try:
        return builder(artifact, model, device, amp, strict)
    except _Unavailable as err:
        if strict or model is None:
            raise ArtifactError(str(err)) from err.__cause__
        nxt = _FALLBACK[backend]
        log.warning("%s; using %s", err, "torch eager" if nxt == "torch" else nxt)
        return make_runner(artifact, model, nxt, strict=False, device=device, amp=amp)


def open_runner(artifact: Artifact, device: str, amp: str | None = None, backend: str = "auto") -> Any:
    """The runner for a loaded artifact on ``device``: the runtime chosen
    (:func:`resolve_backend`), the torch model moved to its device in eval mode without
    gradients, an imported ONNX graph on the CPU (logged when a GPU was asked for)."""
    check_options(backend, amp)
    chosen = resolve_backend(backend, device, artifact)
    model = artifact.model
    if chosen == "numpy":
        return ObservablesRunner(model)
    if model is None and device != "cpu":
        log.info("tagger %s is an ONNX graph: it runs in ONNX Runtime on the CPU of this %s worker",
                 artifact.name, device)
        device = "cpu"
    if model is not None:  # torch model: resident on its device
        model = model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return make_runner(artifact, model, chosen, strict=backend != "auto", device=device, amp=amp)


def runner_class(backend: str) -> Any:
    """The runner class of a runtime (its :meth:`supports` says whether it can run an artifact)."""
    try:
        return _RUNNERS[backend]
    except KeyError:
        msg = f"backend {backend!r} has no runner; choose one of {sorted(_RUNNERS)}"
        raise ValueError(msg) from None


def runtime_files(artifact: Artifact, backends: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(backend, file, model.yaml record key)`` of the exported runtimes among ``backends``
    that :func:`hepml_coffea.inference.tuning.choose_backend` (re-)exports for ``artifact``:
    ``model.onnx`` (not for an imported weaver model, which keeps the graph it came with)
    and ``model.pt2``."""
    files = [("onnxruntime", ONNX_FILE, "onnx"), ("aoti", AOTI_FILE, "aoti")]
    if artifact.meta.get("weaver"):
        files = files[1:]
    return [f for f in files if f[0] in backends]


def pick_backend(ok: dict[str, dict[str, Any]]) -> str:
    """The runtime to record among those measured exact (``ok``: backend -> its
    ``jets_per_s``): the fastest, but ``aoti`` only if :data:`AOTI_MARGIN` times faster than
    ONNX Runtime (it runs only with the torch version and CPU it was built for) and
    ``compile`` only if :data:`COMPILE_MARGIN` times faster than the best other (it costs a
    compilation in every worker process); ``"torch"`` when none is."""
    ok = dict(ok)
    if "aoti" in ok and "onnxruntime" in ok and ok["aoti"]["jets_per_s"] < AOTI_MARGIN * ok["onnxruntime"]["jets_per_s"]:
        del ok["aoti"]  # not clearly faster than ONNX Runtime, which runs on any torch version and CPU
    chosen = max(ok, key=lambda b: (ok[b]["jets_per_s"], -CPU_BACKENDS.index(b))) if ok else "torch"
    others = [r["jets_per_s"] for b, r in ok.items() if b != "compile"]
    if chosen == "compile" and others and ok["compile"]["jets_per_s"] < COMPILE_MARGIN * max(others):
        # compiling costs seconds to a minute in every worker process: only worth a clear gain
        chosen = max((b for b in ok if b != "compile"), key=lambda b: ok[b]["jets_per_s"])
    return chosen


def unchosen_compiled(path: Any, chosen: str, backends: Sequence[str]) -> list[tuple[str, str]]:
    """``(file, record key)`` of compiled code measured but not chosen, to remove from the
    artifact at ``path``: ``model.pt2`` runs only where it was built, so it is shipped only
    when it is the recorded choice."""
    from pathlib import Path

    if "aoti" in backends and chosen != "aoti" and (Path(path) / AOTI_FILE).exists():
        return [(AOTI_FILE, "aoti")]
    return []
