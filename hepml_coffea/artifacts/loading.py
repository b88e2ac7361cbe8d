"""Finding and loading artifacts: shipped taggers, names and paths, verification, the model
rebuilt only from registry classes (or, without ``model``, not at all)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hepml_coffea.representations import InputSpec

from .format import FORMAT, INPUT_NAMES, ONNX_ONLY, Artifact, ArtifactError, ArtifactIntegrityError
from .sealing import _recover, _verify

__all__ = ["load_artifact", "resolve_artifact", "shipped_taggers"]

def shipped_taggers() -> dict[str, Path]:
    """Name -> path of the pretrained artifacts shipped inside the package."""
    root = Path(str(resources.files("hepml_coffea") / "artifacts_data"))
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if not p.name.startswith(".") and (p / "manifest.json").is_file()}


def resolve_artifact(name_or_path: str | os.PathLike[str]) -> Path:
    """A shipped tagger name or an artifact directory -> its path (clear error if neither).

    An interrupted re-seal of the directory is finished or undone first (:func:`_recover`)."""
    p = Path(name_or_path)
    if str(name_or_path).strip():
        _recover(p)
    if p.is_dir():
        return p
    shipped = shipped_taggers()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    msg = (
        f"tagger {str(name_or_path)!r} not found: not an artifact directory and not a shipped "
        f"tagger (shipped: {sorted(shipped) or 'none'})"
    )
    raise ArtifactError(msg)


def _read_yaml(path: Path) -> Any:
    """``yaml.safe_load`` with libyaml's C loader where PyYAML has it (the same documents,
    ~10x faster: five model.yaml files took 0.18 s of every processor construction)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader


def load_artifact(name_or_path: str | os.PathLike[str], *, model: bool = True) -> Artifact:
    """Verify and load an artifact (model on CPU, eval mode).

    With ``model=False`` the artifact is verified and described as fully (manifest, spec
    against the model's recorded sizes, weights bound to the runtimes and the probe) but no
    torch network is built (``Artifact.model`` is ``None``): what a client that only
    configures taggers needs. A TorchScript model is the exception: it is still loaded
    and run on a dry batch of its spec's shapes (the only way to check that the spec fits
    it), then dropped.
    """
    path = resolve_artifact(name_or_path)
    digest, _ = _verify(path)
    doc = _read_yaml(path / "model.yaml")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        msg = f"artifact {path}: model.yaml format {doc.get('format') if isinstance(doc, dict) else None!r}, expected {FORMAT!r}"
        raise ArtifactError(msg)
    kind = doc["input_kind"]
    if kind not in INPUT_NAMES:
        msg = f"artifact {path}: unknown input_kind {kind!r}"
        raise ArtifactError(msg)
    spec = InputSpec.from_dict(doc["input_spec"]) if doc.get("input_spec") else None
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    build = model
    model: Any = None
    if doc["class_name"] == ONNX_ONLY:
        model = None  # the graph runs in ONNX Runtime (inference.backends), loaded there
        if "model.onnx" not in _:
            msg = f"artifact {path}: an imported ONNX model needs model.onnx in its manifest"
            raise ArtifactError(msg)
    elif doc["class_name"] == "TorchScript":
        import torch

        # TorchScript archives hold code: loaded only from an artifact the user named
        net = torch.jit.load(str(path / "model.ts"), map_location="cpu").eval()
        _dry_run(f"artifact {path}: model.ts", spec, net)  # spec vs model, when the tagger is configured
        model = net if build else None
    elif kind == "observables":
        from hepml_coffea.models import CutBasedTopTagger

        model = CutBasedTopTagger.from_dict(json.loads((path / "baseline.json").read_text()))
    elif not build:
        model = None
        _check_spec_fits(path, doc, spec, None)
        _check_weights_bound(path, doc, _)
    else:
        from safetensors.torch import load_file

        from hepml_coffea.models import model_from_config

        model = model_from_config(doc["class_name"], doc.get("model_kwargs", {}))
        try:
            state = load_file(str(path / "weights.safetensors"))
        except Exception as err:
            msg = (f"artifact {path}: weights.safetensors is not a valid safetensors file "
                   f"({type(err).__name__}: {err}); artifacts never load pickled weights")
            raise ArtifactError(msg) from err
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            msg = f"artifact {path}: weights do not fit {doc['class_name']} (missing {missing[:5]}, unexpected {unexpected[:5]})"
            raise ArtifactError(msg)
        model.eval()
        _check_spec_fits(path, doc, spec, model)
        _check_weights_bound(path, doc, _)
    if spec is None and kind != "observables":
        msg = f"artifact {path}: a {kind} model needs an input_spec"
        raise ArtifactError(msg)
    meta = {k: v for k, v in doc.items() if k not in ("input_spec",)}
    return Artifact(
        path=path, name=str(doc.get("name", path.name)), hash=digest, class_name=doc["class_name"],
        input_kind=kind, spec=spec, model=model, metrics=metrics, meta=meta, files=dict(_),
    )


def _check_weights_bound(path: Path, doc: dict[str, Any], files: dict[str, str]) -> None:
    """Refuse weights that are not the ones the probe and the runtimes were made from (the
    records' ``weights_sha256``, see :mod:`hepml_coffea.inference.probes`), and a bound
    runtime or probe file that is not the one its record describes: files copied in from
    another artifact and the manifest re-sealed. Records without ``weights_sha256`` (made
    before the hash chain) are not checked here."""
    weights = files.get("weights.safetensors")
    for key, fname in (("probe", "probe.npz"), ("onnx", "model.onnx"), ("aoti", "model.pt2")):
        rec = doc.get(key)
        bound = rec.get("weights_sha256") if isinstance(rec, dict) else None
        if bound is not None and bound != weights:
            msg = (f"artifact {path}: weights.safetensors (sha256 {str(weights)[:12]}...) is not the file its {key} "
                   f"record ({fname}) was made from ({str(bound)[:12]}...): files of different artifacts; "
                   "refusing to load")
            raise ArtifactIntegrityError(msg)
        if bound is not None and fname in files and rec.get("sha256") not in (None, files[fname]):
            msg = (f"artifact {path}: {fname} (sha256 {files[fname][:12]}...) is not the file its {key} record "
                   f"describes ({str(rec['sha256'])[:12]}...): copied from another artifact?; refusing to load")
            raise ArtifactIntegrityError(msg)


def _check_spec_fits(path: Path, doc: dict[str, Any], spec: InputSpec | None, model: Any) -> None:
    """Refuse an input spec that does not match the model's input size (at load time)."""
    if spec is None:
        msg = f"artifact {path}: a {doc['input_kind']} model needs an input_spec"
        raise ArtifactError(msg)
    kw = doc.get("model_kwargs", {})
    if spec.kind == "blocks":  # checked against the imported graph at import (weaver.importer)
        pass
    elif spec.kind in ("sequence", "pointcloud"):
        want = kw.get("input_dims", kw.get("input_dim"))
        if want is not None and int(want) != spec.n_features:
            msg = (
                f"artifact {path}: input spec has {spec.n_features} features {spec.feature_names} "
                f"but the model expects {want}"
            )
            raise ArtifactError(msg)
    elif spec.kind == "image":
        if int(kw.get("in_channels", len(spec.channels))) != len(spec.channels) or int(kw.get("npix", spec.npix)) != spec.npix:
            msg = (
                f"artifact {path}: image spec {len(spec.channels)}x{spec.npix}x{spec.npix} does not fit "
                f"the model ({kw.get('in_channels')} channels, npix {kw.get('npix')})"
            )
            raise ArtifactError(msg)
    if spec.kind != doc["input_kind"]:
        msg = f"artifact {path}: input spec kind {spec.kind!r} but model input kind {doc['input_kind']!r}"
        raise ArtifactError(msg)


def _dry_inputs(spec: InputSpec, n: int = 2) -> dict[str, Any] | None:
    """A small deterministic batch of the spec's shapes (None for kinds without one here).

    Shapes:
        image (n, C, npix, npix); points (n, 2, P); features (n, F, P); mask (n, 1, P)
    """
    import numpy as np

    rng = np.random.default_rng(0)
    if spec.kind == "image":
        img = rng.exponential(size=(n, len(spec.channels), spec.npix, spec.npix)).astype(np.float32)
        return {"image": img / img.sum(axis=(2, 3), keepdims=True)}
    if spec.kind not in ("sequence", "pointcloud"):
        return None
    p = int(spec.length)
    mask = np.zeros((n, 1, p), np.float32)
    mask[..., : max(1, p // 2)] = 1.0
    out = {"features": rng.normal(size=(n, spec.n_features, p)).astype(np.float32) * mask, "mask": mask}
    if spec.kind == "pointcloud":
        out["points"] = rng.normal(scale=0.3, size=(n, 2, p)).astype(np.float32) * mask
    return out


def _dry_run(what: str, spec: InputSpec | None, model: Any, n: int = 2) -> None:
    """Run ``model`` on :func:`_dry_inputs` of ``spec``; refuse (:class:`ArtifactError`, one
    line naming the shapes) a model that raises or returns something other than (n,),
    (n, 1) or (n, K) outputs."""
    if spec is None:
        msg = f"{what}: a TorchScript model needs an input spec"
        raise ArtifactError(msg)
    batch = _dry_inputs(spec, n)
    if batch is None:
        return
    import torch

    names = INPUT_NAMES[spec.kind]
    shapes = ", ".join(f"{k} {tuple(batch[k].shape)}" for k in names)
    try:
        with torch.inference_mode():
            got = model(*[torch.from_numpy(batch[k]) for k in names])
    except Exception as err:
        first = " ".join(str(err).split())
        detail = (f"channels {spec.channels}, npix {spec.npix}" if spec.kind == "image"
                  else f"{spec.n_features} features {spec.feature_names[:8]}")
        msg = (f"{what} does not run on a batch of its input spec's shapes ({shapes}; {detail}): "
               f"{type(err).__name__}: {first[-240:]}")
        raise ArtifactError(msg) from err
    shape = tuple(getattr(got, "shape", ()))
    if not shape or shape[0] != n or len(shape) > 2:
        msg = f"{what} returns {shape or type(got).__name__} for a batch of {n} jets ({shapes}); expected ({n},), ({n}, 1) or ({n}, K) logits"
        raise ArtifactError(msg)
