"""Writing artifacts: save a trained model, update one (runtimes, records), import a model
brought by the user (TorchScript, ONNX); every one sealed by :func:`~.sealing.seal_artifact`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from hepml_coffea.representations import InputSpec
from hepml_coffea.selection import TrainingDomain

from .format import FORMAT, HASHED, INPUT_NAMES, ONNX_ONLY, ArtifactError
from .loading import _dry_inputs, _dry_run, resolve_artifact
from .sealing import _verify, seal_artifact, write_description

__all__ = ["import_onnx", "import_torchscript", "save_artifact", "update_artifact"]

def save_artifact(
    out: str | os.PathLike[str],
    *,
    name: str,
    model: Any,
    input_kind: str,
    spec: InputSpec | None,
    metrics: dict[str, Any],
    meta: dict[str, Any] | None = None,
    torchscript: bool = True,
    example_inputs: tuple[Any, ...] | None = None,
    extra_files: dict[str, Path] | None = None,
) -> str:
    """Write an artifact directory atomically; return its hash.

    ``model`` is a registry torch model (``config()`` gives its kwargs) or a
    :class:`~hepml_coffea.models.CutBasedTopTagger`. With ``torchscript`` and
    ``example_inputs`` a traced ``model.ts`` is written too.
    """
    def fill(tmp: Path) -> None:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "name": name,
            "class_name": type(model).__name__,
            "input_kind": input_kind,
            "inputs": list(spec.input_names or ()) if input_kind == "blocks" and spec is not None
            else list(INPUT_NAMES[input_kind]),
            "input_spec": spec.to_dict() if spec is not None else None,
            **(meta or {}),
        }
        if input_kind == "observables":
            (tmp / "baseline.json").write_text(json.dumps(model.to_dict()))
            doc["model_kwargs"] = {}
        else:
            import torch
            from safetensors.torch import save_file

            doc["model_kwargs"] = model.config()
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / "weights.safetensors"))
            if torchscript and example_inputs is not None:
                model.eval()
                try:  # scripting keeps data-dependent control flow (packed LSTM)
                    ts = torch.jit.script(model)
                except Exception:  # noqa: BLE001 - fall back to tracing
                    with torch.no_grad():
                        ts = torch.jit.trace(model, example_inputs, check_trace=False)
                ts.save(str(tmp / "model.ts"))
        write_description(tmp, doc, metrics)
        for fname, src in (extra_files or {}).items():
            shutil.copy(src, tmp / fname)

    return seal_artifact(out, fill)


def update_artifact(
    name_or_path: str | os.PathLike[str],
    *,
    files: dict[str, bytes] | None = None,
    meta: dict[str, Any] | None = None,
    remove: tuple[str, ...] = (),
) -> str:
    """Add or replace files of a verified artifact and re-seal it atomically.

    The weights and every file not named are kept byte for byte; the artifact hash
    changes because the manifest covers the new files.

    Parameters
    ----------
    name_or_path : artifact directory (or shipped tagger name)
    files : file name -> content to write (only names in :data:`HASHED`, e.g. ``model.onnx``)
    meta : top-level keys merged into model.yaml (e.g. ``{"cpu_backend": {...}}``)
    remove : file names to delete (e.g. a stale ``model.onnx``)

    Returns
    -------
    str
        the new artifact hash.
    """
    path = resolve_artifact(name_or_path)
    _verify(path)
    protected = {"model.yaml", "weights.safetensors", "baseline.json"}
    for fname in [*(files or {}), *remove]:
        if fname not in HASHED or fname in protected:
            msg = (f"update_artifact({path}): {fname!r} cannot be written or removed here; allowed: "
                   f"{sorted(set(HASHED) - protected)} (model.yaml only through meta=)")
            raise ArtifactError(msg)

    def fill(tmp: Path) -> None:
        for fname, content in (files or {}).items():
            (tmp / fname).write_bytes(content)
        if meta:
            doc = yaml.safe_load((tmp / "model.yaml").read_text())
            doc.update(meta)
            (tmp / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    return seal_artifact(path, fill, keep_from=path, remove=remove)


def import_torchscript(
    ts_path: str | os.PathLike[str],
    spec: InputSpec,
    out: str | os.PathLike[str],
    name: str | None = None,
    metrics: dict[str, Any] | None = None,
    domain: TrainingDomain | None = None,
) -> str:
    """Bring your own model: wrap a TorchScript file and its input spec as an artifact.

    The model must take the inputs of ``spec.kind`` in the order of
    :data:`INPUT_NAMES` (e.g. weaver's ParticleNet: ``points, features, mask``) and
    return (N, 2) logits or (N,) / (N, 1) logits. Returns the artifact hash.

    The model is loaded and run on a dry batch of the spec's shapes before anything is
    written (:func:`_dry_run`): a file that is not TorchScript, or a spec whose feature
    count or length does not fit the model, is an :class:`ArtifactError` here (and again
    when the artifact is loaded, e.g. by ``FatJetTagger(...)``).
    """
    ts_path = Path(ts_path)
    if not ts_path.is_file():
        msg = f"TorchScript model {ts_path} does not exist"
        raise ArtifactError(msg)
    import torch

    try:
        model = torch.jit.load(str(ts_path), map_location="cpu").eval()
    except Exception as err:
        msg = (f"TorchScript model {ts_path} cannot be loaded ({type(err).__name__}: "
               f"{' '.join(str(err).split())[:200]}); nothing written")
        raise ArtifactError(msg) from err
    _dry_run(f"TorchScript model {ts_path}", spec, model)

    def fill(tmp: Path) -> None:
        shutil.copy(ts_path, tmp / "model.ts")
        doc = {
            "format": FORMAT, "name": name or ts_path.stem, "class_name": "TorchScript",
            "input_kind": spec.kind, "inputs": list(INPUT_NAMES[spec.kind]), "input_spec": spec.to_dict(),
            "model_kwargs": {}, "source": str(ts_path.resolve()),
        }
        if domain is not None:
            doc["domain"] = domain.to_dict()
        write_description(tmp, doc, metrics)

    return seal_artifact(out, fill)


def import_onnx(
    onnx_path: str | os.PathLike[str],
    spec: InputSpec,
    out: str | os.PathLike[str],
    name: str | None = None,
    metrics: dict[str, Any] | None = None,
    domain: TrainingDomain | None = None,
) -> str:
    """Bring your own ONNX model: seal an ONNX graph and its input spec as an artifact that
    runs in ONNX Runtime (no torch weights; the ``onnxruntime`` backend).

    The graph's inputs must be named as :data:`INPUT_NAMES` for ``spec.kind`` (e.g.
    ``points, features, mask``) and its first output must be (N, K >= 2) logits or class
    probabilities, the last column the signal (top); whether it is logits or probabilities
    is found on a dry batch and recorded. Returns the artifact hash.

    Raises
    ------
    ArtifactError
        one line naming the file and the mismatch (not ONNX, input names, output shape,
        non-finite outputs on the dry batch); nothing is written then.
    """
    import numpy as np

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        msg = f"ONNX model {onnx_path} does not exist"
        raise ArtifactError(msg)
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own classes
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        msg = f"{onnx_path}: not a loadable ONNX model ({first}); nothing written"
        raise ArtifactError(msg) from None
    names = INPUT_NAMES.get(spec.kind, ())
    have = [i.name for i in session.get_inputs()]
    if spec.kind not in ("image", "sequence", "pointcloud") or sorted(have) != sorted(names):
        msg = (f"{onnx_path}: graph inputs {have}; an input spec of kind {spec.kind!r} feeds {list(names)} "
               "(rename the graph's inputs when exporting, or use hepml-coffea import weaver for weaver models)")
        raise ArtifactError(msg)
    batch = _dry_inputs(spec, 4) or {}
    try:
        got = np.asarray(session.run(None, {k: batch[k] for k in names})[0], dtype=np.float32)
    except Exception as err:  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
        msg = f"{onnx_path}: the graph does not run on a batch of its input spec's shapes ({first})"
        raise ArtifactError(msg) from None
    if got.ndim != 2 or got.shape[0] != 4 or got.shape[1] < 2:
        msg = f"{onnx_path}: output of shape {tuple(got.shape)} for 4 jets; expected (4, K >= 2) logits or probabilities"
        raise ArtifactError(msg)
    if not np.isfinite(got).all():
        msg = f"{onnx_path}: the graph gives non-finite outputs on a dry batch"
        raise ArtifactError(msg)
    probs = bool((got >= 0).all() and np.allclose(got.sum(axis=1), 1.0, atol=1e-4))
    k = got.shape[1]
    classes = ["background", "signal"] if k == 2 else [f"class{i}" for i in range(k - 1)] + ["signal"]

    def fill(tmp: Path) -> None:
        shutil.copy(onnx_path, tmp / "model.onnx")
        doc: dict[str, Any] = {
            "format": FORMAT, "name": name or onnx_path.stem, "class_name": ONNX_ONLY,
            "input_kind": spec.kind, "inputs": list(names), "input_spec": spec.to_dict(),
            "model_kwargs": {}, "classes": classes, "score": "signal",
            "onnx_output": {"name": session.get_outputs()[0].name, "kind": "probabilities" if probs else "logits"},
            "cpu_backend": {"chosen": "onnxruntime", "how": "an imported ONNX graph (no torch weights)"},
            "source": str(onnx_path.resolve()),
        }
        if domain is not None:
            doc["domain"] = domain.to_dict()
        write_description(tmp, doc, metrics)

    return seal_artifact(out, fill)
