"""CPU execution backends: torch eager, ``torch.compile``, ONNX Runtime and AOTInductor,
chosen by measurement. This module makes and checks the exported files (``model.onnx``,
``model.pt2``, ``probe.npz``); the runners that run them are
:mod:`hepml_coffea.inference.runners`.

A tagger's torch model can run four ways on CPU:

========== ================================================================ ==================
backend    what runs                                                        needs
========== ================================================================ ==================
torch      the model in eager PyTorch (today's path, kept for comparison)   -
compile    ``torch.compile(model, dynamic=True)``, compiled once per process a C compiler
onnxruntime ``model.onnx`` of the artifact in an ONNX Runtime session        ``model.onnx``
aoti       ``model.pt2`` of the artifact: the model compiled ahead of time   ``model.pt2`` built
           by AOTInductor (``torch.export`` + Inductor), loaded in ms       for this torch and CPU
========== ================================================================ ==================

:func:`export_onnx` writes ``model.onnx`` into an artifact (hash checked like every other
file of it) after checking that its scores equal torch eager's; :func:`export_aoti` does the
same for ``model.pt2`` (compiled code: it records the torch version, operating system, machine
and CPU capability it was built for, and runs only where those match, see
:func:`aoti_incompatibility`; elsewhere ``"auto"`` falls back to ONNX Runtime with a warning).
:func:`hepml_coffea.inference.tuning.choose_backend` times the backends on the same jets, at
one thread, and records the fastest exact one in ``model.yaml`` (``cpu_backend``), which
``get_tagger(..., backend="auto")`` then uses on CPU. Whoever re-trains a shipped tagger
re-runs ``python workflows/choose_backends.py --files ...`` (real jets), or::

    from hepml_coffea.inference.tuning import choose_backend
    choose_backend("path/to/artifact")            # exports, measures, records

The packed LSTM is exported through :class:`~hepml_coffea.models.lstm.UnpackedJetLSTM`
(same result without sequence packing); a bidirectional LSTM has no such form and stays
on torch.

(About 600 lines: both exports with the checks they share against torch eager, and the
probe every export writes; the runners that load these files are in
:mod:`hepml_coffea.inference.runners`.)
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from hepml_coffea.artifacts import (
    Artifact,
    ArtifactError,
    ArtifactIntegrityError,
    load_artifact,
    update_artifact,
)
from hepml_coffea.inference.probes import (
    PROBE_FILE,
    PROBE_JETS,
    PROBE_POOL,
    PROBE_SEED,
    WEIGHTS_FILE,
    probe_of,
    runtime_record_key,
    top_scores,
)

__all__ = [
    "AOTI_FILE",
    "AOTI_MARGIN",
    "CPU_BACKENDS",
    "ONNX_FILE",
    "OPSET",
    "SCORE_ATOL",
    "ExportError",
    "aoti_incompatibility",
    "bound_export",
    "make_probe",
    "aoti_target",
    "export_aoti",
    "export_onnx",
    "exportable_module",
    "onnx_session",
    "synthetic_inputs",
]

log = logging.getLogger("hepml_coffea.inference")

#: backends timed by :func:`measure_backends`, in the order of preference on a tie
CPU_BACKENDS = ("onnxruntime", "aoti", "compile", "torch")
ONNX_FILE = "model.onnx"
AOTI_FILE = "model.pt2"
OPSET = 17
#: largest score difference to torch eager a backend may have to be chosen
SCORE_ATOL = 1e-5
#: torch.compile is chosen only if this much faster than the best other backend
COMPILE_MARGIN = 1.1
#: the AOTInductor package is chosen only if this much faster than ONNX Runtime: it runs
#: only with the torch version and CPU it was built for (elsewhere ONNX Runtime runs)
AOTI_MARGIN = 1.05


class ExportError(ArtifactError):
    """A model cannot be exported, or its export does not reproduce torch eager."""


# --------------------------------------------------------------------------- modules
def _torch_module_base() -> type:
    """``torch.nn.Module`` when torch is importable (it is wherever a model is exported)."""
    try:
        import torch

        return torch.nn.Module
    except ImportError:  # pragma: no cover - the module then only serves ONNX Runtime
        return object


def exportable_module(model: Any) -> Any:
    """The module to export / compile for ``model``: the model itself, for a
    :class:`~hepml_coffea.models.JetLSTM` its unpacked form (identical scores), for a
    :class:`~hepml_coffea.models.ParticleNet` its channels-last form with BatchNorm
    folded (:class:`~hepml_coffea.models.particlenet.ChannelsLastParticleNet`, equal up
    to float rounding; ~1.5x faster in ONNX Runtime, BENCHMARKS.md).

    Raises
    ------
    ExportError
        for a bidirectional LSTM (no unpacked form).
    """
    from hepml_coffea.models.lstm import JetLSTM, UnpackedJetLSTM
    from hepml_coffea.models.particlenet import ChannelsLastParticleNet, ParticleNet

    if isinstance(model, JetLSTM):
        try:
            return UnpackedJetLSTM(model).eval()
        except NotImplementedError as err:
            raise ExportError(str(err)) from err
    if isinstance(model, ParticleNet):
        return ChannelsLastParticleNet(model)  # refuses a model in training mode (BatchNorm folding)
    return model


def synthetic_inputs(artifact: Artifact, n: int = 512, seed: int = 0, mean_count: float = 61.0) -> dict[str, np.ndarray]:
    """Random inputs of the artifact's shapes, for export checks and timing.

    Point clouds and sequences get Poisson(``mean_count``) real particles per jet
    (clipped to [0, P], with a few empty and full jets), standard-normal features and
    small (deta, dphi) points; images a few hundred random hot pixels normalised to sum 1.

    Shapes:
        -> per input name, (n, ...) float32 as the model takes it
    """
    spec = artifact.spec
    if spec is None:
        msg = f"artifact {artifact.path}: no input spec (a cut-based tagger has no torch model to export)"
        raise ExportError(msg)
    rng = np.random.default_rng(seed)
    if spec.kind == "image":
        c, p = len(spec.channels), spec.npix
        img = np.zeros((n, c, p, p), np.float32)
        for i in range(n):
            hits = rng.integers(0, p, size=(60, 2))
            img[i][:, hits[:, 0], hits[:, 1]] = rng.exponential(size=(c, 60))
        img /= np.maximum(img.sum(axis=(2, 3), keepdims=True), 1e-9)
        return {"image": img}
    if spec.kind == "blocks":
        return _synthetic_blocks(spec, n, rng, mean_count)
    p = spec.length
    counts = np.clip(rng.poisson(mean_count, n), 0, p)
    counts[: min(n, 2)] = 0
    counts[2 : min(n, 4)] = p
    mask = (np.arange(p)[None, None, :] < counts[:, None, None]).astype(np.float32)
    out = {"features": (rng.normal(size=(n, spec.n_features, p)).astype(np.float32) * mask), "mask": mask}
    if spec.kind == "pointcloud":
        out["points"] = rng.normal(scale=0.3, size=(n, 2, p)).astype(np.float32) * mask
    return out


def _is_mask_block(block: Any) -> bool:
    return all(v.name.replace(" ", "").startswith("ones_like(") and v.center == 0 and v.scale == 1 for v in block.vars)


def _synthetic_blocks(spec: Any, n: int, rng: np.random.Generator, mean_count: float) -> dict[str, np.ndarray]:
    """Random inputs for a ``blocks`` spec: Poisson(``mean_count``) constituents (a few
    empty and full jets) and Poisson(2) secondary vertices per jet; mask blocks 1/0,
    coordinates and features normal on real slots, 0 on padding.

    Shapes:
        -> per block name, (n, C, P) float32
    """
    out: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for b in spec.blocks:
        c = counts.get(b.collection)
        if c is None:
            c = rng.poisson(mean_count if b.collection == "pf" else 2.0, n)
            c[: min(n, 2)] = 0 if b.collection == "sv" else 1
            c[2 : min(n, 4)] = b.length
            counts[b.collection] = c
        mask = (np.arange(b.length)[None, None, :] < np.minimum(c, b.length)[:, None, None]).astype(np.float32)
        if _is_mask_block(b):
            out[b.name] = np.repeat(mask, len(b.vars), axis=1)
        else:
            out[b.name] = rng.normal(scale=0.5, size=(n, len(b.vars), b.length)).astype(np.float32) * mask
    return out


def mask_input(artifact: Artifact) -> str | None:
    """The name of the artifact's constituent mask input (``None`` if it has none)."""
    spec = artifact.spec
    if artifact.input_kind == "blocks" and spec is not None:
        return spec.mask_block
    return "mask" if "mask" in artifact.input_names else None


# --------------------------------------------------------------------------- ONNX
class _Softmax(_torch_module_base()):  # type: ignore[misc]
    """``softmax(module(*x))`` over two classes (weaver's ``for_inference`` output); a
    one-logit model becomes ``(1 - sigmoid, sigmoid)``."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any) -> Any:
        import torch

        out = self.module(*args).float()
        if out.ndim == 1 or out.shape[1] == 1:
            p = torch.sigmoid(out.reshape(-1))
            return torch.stack((1 - p, p), dim=1)
        return torch.softmax(out, dim=1)


def _onnx_bytes(artifact: Artifact, graph_names: list[str] | None = None, softmax: bool = False) -> bytes:
    """The artifact's model as ONNX; ``graph_names`` renames its inputs (default: the model's
    input names), ``softmax`` makes the output class probabilities named ``softmax``
    (weaver's convention) instead of ``logits``."""
    import torch

    module = exportable_module(artifact.model)
    if softmax:
        module = _Softmax(module).eval()
    names = list(artifact.input_names)
    example = synthetic_inputs(artifact, n=4)
    args = tuple(torch.from_numpy(example[k]) for k in names)
    gnames = list(graph_names or names)
    dynamic = {g: ({0: "jets"} if k == "image" else {0: "jets", 2: "particles"}) for k, g in zip(names, gnames)}
    out_name = "softmax" if softmax else "logits"
    dynamic[out_name] = {0: "jets"}
    from hepml_coffea.knn import export_mode

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), export_mode("topk"):
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
            torch.onnx.export(module, args, buf, dynamo=False, input_names=gnames, output_names=[out_name],
                              dynamic_axes=dynamic, opset_version=OPSET)
    except Exception as err:
        msg = f"artifact {artifact.path}: {artifact.class_name} cannot be exported to ONNX ({type(err).__name__}: {err})"
        raise ExportError(msg) from err
    return buf.getvalue()


def onnx_session(model: bytes | str | os.PathLike[str], threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``model`` (bytes or file), ``threads`` intra-op
    threads (default: torch's current number, 1 on our workers), sequential execution."""
    import onnxruntime as ort

    if threads is None:
        import torch

        threads = torch.get_num_threads()
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _logits_torch(module: Any, arrays: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]).float().numpy()


def _scores(logits: np.ndarray) -> np.ndarray:
    """Top scores of (N, 2) / (N,) logits; class probabilities (N, C) of multi-class logits."""
    import torch

    from hepml_coffea.inference.batching import scores_from_output

    t = torch.from_numpy(np.ascontiguousarray(logits))
    if t.ndim == 2 and t.shape[1] > 2:
        return torch.softmax(t.float(), dim=1).numpy()
    return scores_from_output(t).numpy()


def _compare(artifact: Artifact, session: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Largest score and logit differences between an export and torch eager, on the
    inputs as given and trimmed to several lengths (the engine's padding trim).

    ``session`` is an ONNX Runtime session, or any callable mapping the list of input
    arrays (model order) to logits (the AOTInductor package)."""
    names = list(artifact.input_names)
    arrays = [np.asarray(inputs[k], dtype=np.float32) for k in names]
    cuts: list[int | None] = [None]
    mname = mask_input(artifact)
    trim = mname is not None and (artifact.input_kind != "blocks" or artifact.meta.get("trim_padding"))
    if trim:
        p = arrays[names.index(mname)].shape[-1]
        cuts += sorted({max(1, p // 3), max(1, min(p, 5))})
    worst = {"max_abs_score_diff": 0.0, "max_rel_logit_diff": 0.0}
    for cut in cuts:
        if cut is None:
            sub = arrays
        else:
            from hepml_coffea.inference.batching import padded_lengths

            keep = padded_lengths(arrays[names.index(mname)]) <= cut
            sub = [np.ascontiguousarray(a[keep][..., :cut]) for a in arrays]
            if not len(sub[0]):
                continue
        ref = _logits_torch(artifact.model, sub)
        if hasattr(session, "run"):
            out_name = session.get_outputs()[0].name
            got = session.run([out_name], dict(zip(names, sub)))[0]
        else:
            got = session(sub)
        if artifact.classes and (artifact.meta.get("onnx_output") or {}).get("kind") == "probabilities" \
                and hasattr(session, "run"):  # an imported graph with a softmax: compare probabilities
            probs = _scores(ref)
            worst["max_abs_score_diff"] = max(worst["max_abs_score_diff"], float(np.abs(probs - got).max()))
            continue
        worst["max_abs_score_diff"] = max(worst["max_abs_score_diff"], float(np.abs(_scores(ref) - _scores(got)).max()))
        rel = np.abs(ref - got) / np.maximum(1.0, np.abs(ref))
        worst["max_rel_logit_diff"] = max(worst["max_rel_logit_diff"], float(rel.max()))
    return worst


def _torch_artifact(artifact_dir: str | os.PathLike[str]) -> Artifact:
    art = load_artifact(artifact_dir)
    if art.input_kind == "observables":
        msg = f"artifact {art.path}: the cut-based tagger is not a torch model; nothing to export"
        raise ExportError(msg)
    return art


def _checked(artifact: Artifact, session: Any, inputs: Mapping[str, np.ndarray] | None, atol: float,
             what: str) -> dict[str, Any]:
    """:func:`_compare` on ``inputs`` (default synthetic); raises unless scores agree to
    ``atol`` and logits to 1e-4 relative. The differences found, and ``inputs``:
    ``"given"`` or ``"synthetic"`` (what they were found on)."""
    check: dict[str, Any] = _compare(artifact, session, inputs if inputs is not None else synthetic_inputs(artifact))
    if check["max_abs_score_diff"] > atol or check["max_rel_logit_diff"] > 1e-4:
        msg = (f"artifact {artifact.path}: {what} differs from torch eager (scores by "
               f"{check['max_abs_score_diff']:.2e}, allowed {atol:.0e}; logits by {check['max_rel_logit_diff']:.2e} "
               "relative, allowed 1e-4); not written")
        raise ExportError(msg)
    check["inputs"] = "given" if inputs is not None else "synthetic"
    return check


def export_onnx(
    artifact_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    atol: float = SCORE_ATOL,
) -> str:
    """Export an artifact's model to ``model.onnx`` inside the artifact and re-seal it.

    The export is checked against torch eager on ``inputs`` (default
    :func:`synthetic_inputs`), untrimmed and trimmed: the largest score difference must
    be <= ``atol`` and the largest logit difference <= 1e-4 x max(1, |logit|). The
    weights and the other files are unchanged; model.yaml gains an ``onnx`` record
    (opset, versions, the differences found).

    Parameters
    ----------
    artifact_dir : artifact directory (or shipped tagger name)
    inputs : jets to check on, a mapping holding the model's input names
    atol : largest allowed score difference

    Returns
    -------
    str
        the artifact's new hash.

    Raises
    ------
    ExportError
        if the model cannot be exported or the export does not reproduce torch eager.
    """
    import onnxruntime as ort
    import torch

    art = _torch_artifact(artifact_dir)
    data = _onnx_bytes(art)
    check = _checked(art, onnx_session(data, threads=1), inputs, atol, "the ONNX export")
    record = {"file": ONNX_FILE, "opset": OPSET, "sha256": hashlib.sha256(data).hexdigest(),
              "torch": str(torch.__version__), "onnxruntime": str(ort.__version__), **check}
    return update_artifact(art.path, **bound_export(art, ONNX_FILE, data, record, inputs))  # + weights hash, probe


# --------------------------------------------------------------------------- AOTInductor
def aoti_target() -> dict[str, str]:
    """What compiled code built here needs: torch version, operating system, machine and
    the CPU capability torch dispatches to (``"AVX2"``, ``"AVX512"``, ...)."""
    import platform

    import torch

    return {"torch": str(torch.__version__), "system": platform.system(), "machine": platform.machine(),
            "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}


#: x86 capabilities, each able to run code built for the ones before it
_X86_CAPABILITIES = ("DEFAULT", "AVX2", "AVX512")


def aoti_incompatibility(record: Mapping[str, Any] | None) -> str | None:
    """Why the ``model.pt2`` described by ``record`` (model.yaml ``aoti``) cannot run here,
    or ``None`` if it can: it must have been built by this torch version, for this
    operating system and machine, for a CPU capability this CPU has."""
    if not isinstance(record, Mapping):
        return "no aoti record in model.yaml"
    here = aoti_target()
    for key in ("torch", "system", "machine"):
        if str(record.get(key)) != here[key]:
            return f"built for {key} {record.get(key)!r}, this process has {here[key]!r}"
    built, have = str(record.get("cpu_capability")), here["cpu_capability"]
    if built != have and not (built in _X86_CAPABILITIES and have in _X86_CAPABILITIES
                              and _X86_CAPABILITIES.index(built) < _X86_CAPABILITIES.index(have)):
        return f"built for CPU capability {built!r}, this CPU has {have!r}"
    return None


def _aoti_bytes(artifact: Artifact, *, topk_knn: bool = True, freezing: bool = True) -> bytes:
    """The artifact's model compiled by AOTInductor, dynamic in the jet axis (and the
    particle axis for masked inputs, which the engine trims per batch). ``topk_knn`` and
    ``freezing`` are how the shipped packages are built (off only to measure them,
    ``benchmarks/probe_aoti_variants.py``)."""
    import tempfile

    import torch

    module = exportable_module(artifact.model)
    names = list(artifact.input_names)
    example = synthetic_inputs(artifact, n=8)
    mname = mask_input(artifact)
    if mname is not None:  # every jet real up to the full length: nothing specialises the particle axis
        example[mname][:] = 1.0
    args = tuple(torch.from_numpy(example[k]) for k in names)
    jets = torch.export.Dim("jets", min=1)
    if mname is not None:
        p = int(example[mname].shape[-1])
        particles = torch.export.Dim("particles", min=1, max=p)
        # inputs on the constituent axis (same length as the mask) are trimmed by the engine
        shapes = {k: ({0: jets, 2: particles} if example[k].shape[-1] == p else {0: jets}) for k in names}
    else:
        shapes = {k: {0: jets} for k in names}
    from hepml_coffea.knn import export_mode

    try:  # the kNN as a top-k on unique keys instead of a stable sort of every row
        with warnings.catch_warnings(), torch.no_grad(), export_mode("keys" if topk_knn else "sort"):
            warnings.simplefilter("ignore")
            program = torch.export.export(module, args, dynamic_shapes=tuple(shapes[k] for k in names))
            # freezing: the weights become constants, so Inductor packs them once for oneDNN's
            # matrix products (ParticleNet-Lite 1.18x faster than without: 1.34x vs 1.13x ONNX Runtime, BENCHMARKS.md)
            with tempfile.TemporaryDirectory(prefix="hepml_aoti_") as tmp, \
                    torch._inductor.config.patch(freezing=freezing):
                pkg = torch._inductor.aoti_compile_and_package(program, package_path=os.path.join(tmp, AOTI_FILE))
                with open(pkg, "rb") as f:
                    return f.read()
    except Exception as err:
        msg = (f"artifact {artifact.path}: {artifact.class_name} cannot be compiled by AOTInductor "
               f"({type(err).__name__}: {str(err)[:300]})")
        raise ExportError(msg) from err


def _aoti_load(data: bytes) -> Any:
    """Load a ``model.pt2``. Where it may run was checked already (:func:`aoti_incompatibility`:
    a package built for AVX2 runs on an AVX512 CPU), so torch's per-load notice that the
    build machine's ISA differs is held back for the duration of the load (its logger's
    level restored afterwards)."""
    import logging as _logging

    import torch

    pkg_log = _logging.getLogger("torch.export.pt2_archive._package")
    level = pkg_log.level
    pkg_log.setLevel(_logging.ERROR)
    try:
        return torch._inductor.aoti_load_package(io.BytesIO(data))
    finally:
        pkg_log.setLevel(level)


def export_aoti(
    artifact_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    atol: float = SCORE_ATOL,
) -> str:
    """Compile an artifact's model with AOTInductor into ``model.pt2`` and re-seal it.

    Needs a C++ compiler (here, not where the artifact is used). The package is checked
    against torch eager like :func:`export_onnx` (scores to ``atol``, logits to 1e-4
    relative, untrimmed and trimmed); model.yaml gains an ``aoti`` record: the
    :func:`aoti_target` it was built for, and the differences found.

    Parameters
    ----------
    artifact_dir : artifact directory (or shipped tagger name)
    inputs : jets to check on, a mapping holding the model's input names
    atol : largest allowed score difference

    Returns
    -------
    str
        the artifact's new hash.

    Raises
    ------
    ExportError
        if the model cannot be compiled or the package does not reproduce torch eager.
    """
    art = _torch_artifact(artifact_dir)
    data = _aoti_bytes(art)
    compiled = _aoti_load(data)
    check = _checked(art, lambda arrays: _logits_torch(compiled, arrays), inputs, atol, "the AOTInductor package")
    record = {"file": AOTI_FILE, "sha256": hashlib.sha256(data).hexdigest(), **aoti_target(), **check}
    return update_artifact(art.path, **bound_export(art, AOTI_FILE, data, record, inputs))  # + weights hash, probe


# --------------------------------------------------------------------------- probes
def make_probe(artifact: Artifact, inputs: Mapping[str, np.ndarray] | None = None) -> tuple[bytes, dict[str, Any]]:
    """The probe of ``artifact``: ``probe.npz`` bytes and its model.yaml record.

    :data:`PROBE_JETS` jets of ``inputs`` (real jets, e.g. the test split; default: 512
    :func:`~hepml_coffea.inference.backends.synthetic_inputs` of seed :data:`PROBE_SEED`)
    with at least one constituent, chosen where the torch-eager score is least saturated
    (closest to 0.5: a runtime of another model cannot agree there by chance), kept in
    their original order, and the scores the artifact's torch model gives them.

    Shapes:
        -> npz of each input (PROBE_JETS, ...) float32 and ``scores`` (PROBE_JETS,) float32
    """
    if artifact.model is None or artifact.file_digest(WEIGHTS_FILE) is None:
        msg = f"artifact {artifact.path}: no torch weights to make a probe from"
        raise ArtifactError(msg)
    names = list(artifact.input_names)
    pool = dict(inputs) if inputs is not None else synthetic_inputs(artifact, n=PROBE_POOL, seed=PROBE_SEED)
    n = len(pool[names[0]])
    keep = np.ones(n, dtype=bool)
    mname = mask_input(artifact)
    if mname is not None and mname in pool:
        keep = np.asarray(pool[mname]).reshape(n, -1).sum(axis=1) > 0
    cand = [np.ascontiguousarray(np.asarray(pool[k], dtype=np.float32)[keep][:PROBE_POOL]) for k in names]
    artifact.model.eval()
    pool_scores = top_scores(artifact, _scores(_logits_torch(artifact.model, cand)))
    finite = np.flatnonzero(np.isfinite(pool_scores))
    if len(finite) < PROBE_JETS:
        msg = (f"artifact {artifact.path}: torch eager gives {len(finite)} finite scores on {len(pool_scores)} "
               f"probe candidates, {PROBE_JETS} needed; no probe made")
        raise ArtifactError(msg)
    margin = np.minimum(pool_scores[finite], 1.0 - pool_scores[finite])
    pick = np.sort(finite[np.argsort(-margin, kind="stable")[:PROBE_JETS]])
    arrays = [a[pick] for a in cand]
    scores = pool_scores[pick]
    if float(np.minimum(scores, 1 - scores).max()) < 1e-3:
        log.warning("artifact %s: every probe jet has a saturated score (< 1e-3 from 0 or 1); the probe cannot "
                    "tell this model's runtimes from another model's well: give real jets (inputs=)", artifact.path)
    buf = io.BytesIO()
    np.savez(buf, scores=scores, **dict(zip(names, arrays)))
    data = buf.getvalue()
    record = {"file": PROBE_FILE, "sha256": hashlib.sha256(data).hexdigest(),
              "weights_sha256": artifact.file_digest(WEIGHTS_FILE), "jets": int(len(scores)),
              "inputs": "given" if inputs is not None else f"synthetic (seed {PROBE_SEED})",
              "score_range": [float(scores.min()), float(scores.max())]}
    return data, record


def bound_export(artifact: Artifact, fname: str, data: bytes, record: Mapping[str, Any],
                 inputs: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """``update_artifact`` keywords that write an exported runtime bound to the weights: the
    file, its record with ``weights_sha256``, and a probe (the existing one when it was made
    for these weights, else a new one from ``inputs``, see :func:`make_probe`)."""
    files: dict[str, bytes] = {fname: data}
    meta: dict[str, Any] = {runtime_record_key(fname): {**record, "weights_sha256": artifact.file_digest(WEIGHTS_FILE)}}
    try:
        current = probe_of(artifact)
    except ArtifactIntegrityError:
        current = None
    if current is None:
        probe, probe_record = make_probe(artifact, inputs)
        files[PROBE_FILE] = probe
        meta["probe"] = probe_record
    return {"files": files, "meta": meta}
