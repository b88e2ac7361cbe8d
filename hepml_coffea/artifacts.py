"""Self-describing tagger artifacts: weights, architecture, input spec, metrics, hash.

An artifact is a directory::

    model.yaml           format, name, class_name, model_kwargs, input_spec, inputs,
                         selection, training summary
    weights.safetensors  torch weights (safetensors: loading runs no pickled code)
    baseline.json        instead of weights, for the cut-based baseline
    metrics.json         test AUC, accuracy, 1/eB at eS = 30 % and 50 %, working points
    model.ts             optional TorchScript export for serving (never loaded implicitly)
    model.onnx           optional ONNX export for the ONNX Runtime backend
                         (:func:`hepml_coffea.inference.backends.export_onnx`); the CPU
                         backend chosen by measurement is recorded in model.yaml
                         (``cpu_backend``, :func:`hepml_coffea.inference.tuning.choose_backend`)
    model.pt2            optional AOTInductor package for the ``aoti`` backend
                         (:func:`hepml_coffea.inference.backends.export_aoti`): compiled
                         native code, loaded only for that backend (by name, or by
                         ``"auto"`` when it is the recorded choice), so take such
                         artifacts only from sources you trust, as any compiled library
    probe.npz            a fixed batch of inputs and the scores these weights give them, with
                         each runtime record's ``weights_sha256``: the hash chain that binds
                         model.onnx / model.pt2 to the weights
                         (:mod:`hepml_coffea.inference.probes`)
    roc.png, loss.png    optional plots
    manifest.json        sha256 of every file above and the artifact hash

:func:`load_artifact` recomputes every checksum and refuses an artifact whose files
do not match (:class:`ArtifactIntegrityError`); the model is rebuilt only from
classes in :data:`hepml_coffea.models.MODEL_REGISTRY`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hepml_coffea.representations import InputSpec
from hepml_coffea.selection import TrainingDomain

log = logging.getLogger("hepml_coffea.artifacts")

__all__ = [
    "FORMAT",
    "INPUT_NAMES",
    "ONNX_ONLY",
    "Artifact",
    "ArtifactError",
    "ArtifactIntegrityError",
    "import_onnx",
    "import_torchscript",
    "load_artifact",
    "resolve_artifact",
    "save_artifact",
    "seal_artifact",
    "shipped_taggers",
    "update_artifact",
]

FORMAT = "hepml-coffea-artifact/1"
HASHED = ("model.yaml", "weights.safetensors", "baseline.json", "metrics.json", "model.ts", "model.onnx",
          "model.pt2", "weaver_preprocess.json", "weaver_data_config.yaml", "LICENSE", "PROVENANCE.md",
          "probe.npz")

#: class_name of an imported ONNX graph without torch weights (runs in ONNX Runtime only)
ONNX_ONLY = "ONNX"

#: forward() argument names per input kind, in order
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "sequence": ("features", "mask"),
    "pointcloud": ("points", "features", "mask"),
    "observables": ("msoftdrop", "tau32"),
    "blocks": (),  # named by the spec's blocks (InputSpec.input_names)
}


class ArtifactError(ValueError):
    """An artifact is missing, malformed, or does not fit the request."""


class ArtifactIntegrityError(ArtifactError):
    """An artifact's files do not match their recorded checksums."""


@dataclass
class Artifact:
    """A loaded artifact (model built on CPU, in eval mode)."""

    path: Path
    name: str
    hash: str
    class_name: str
    input_kind: str
    spec: InputSpec | None
    model: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: manifest.json's file -> sha256, read once when the artifact was verified
    files: dict[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's inputs in forward() order (a ``blocks`` spec names its own)."""
        if self.input_kind == "blocks" and self.spec is not None:
            return tuple(self.spec.input_names or ())
        return INPUT_NAMES[self.input_kind]

    @property
    def classes(self) -> tuple[str, ...]:
        """Output class names of a multi-class model (empty for a top-vs-QCD model)."""
        return tuple(self.meta.get("classes") or ())

    @property
    def score_expression(self) -> str | None:
        """The top score as an expression over :attr:`classes` (multi-class models)."""
        rec = self.meta.get("score")
        return str(rec) if rec else None

    def working_points(self) -> dict[str, float]:
        return dict(self.metrics.get("working_points", {}))

    @property
    def domain(self) -> TrainingDomain | None:
        """The phase space the model was trained on (``None`` if the artifact records none)."""
        return TrainingDomain.from_meta(self.meta)

    @property
    def cpu_backend(self) -> str | None:
        """The CPU execution backend recorded at sealing time (``"torch"``, ``"compile"``,
        ``"onnxruntime"``, ``"aoti"``), or ``None`` if none was measured."""
        rec = self.meta.get("cpu_backend")
        return str(rec["chosen"]) if isinstance(rec, dict) and rec.get("chosen") else None

    def file_digest(self, fname: str) -> str | None:
        """The sha256 that manifest.json records for ``fname`` (None if not part of it), as
        verified when the artifact was loaded (the manifest is not read again)."""
        if not self.files:  # an Artifact made by hand, not by load_artifact
            self.files.update(json.loads((self.path / "manifest.json").read_text()).get("files", {}))
        return self.files.get(fname)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _combined(files: dict[str, str]) -> str:
    text = "".join(f"{k}:{v}\n" for k, v in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


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


def write_description(folder: Path, doc: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Write ``model.yaml`` (``doc``) and ``metrics.json`` into an artifact being built."""
    (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))


def seal_artifact(
    out: str | os.PathLike[str],
    fill: Callable[[Path], Any],
    *,
    keep_from: Path | None = None,
    remove: tuple[str, ...] = (),
) -> str:
    """The one way an artifact is written: build it in a hidden sibling folder, seal it
    (manifest.json: sha256 of every file and the artifact hash) and move it to ``out``
    atomically (:func:`_seal`); on any error the half-built folder is removed and ``out``
    is left as it was.

    Parameters
    ----------
    out : the artifact directory (replaced if it exists)
    fill : writes the artifact's files into the folder it is given
    keep_from : an artifact whose files (but manifest.json and ``remove``) are copied in
        first, permissions included (re-sealing an artifact)

    Returns
    -------
    str
        the artifact hash.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_dir(out)
    try:
        if keep_from is not None:
            tmp.chmod(keep_from.stat().st_mode & 0o777)
            for f in keep_from.iterdir():
                if f.is_file() and f.name != "manifest.json" and f.name not in remove:
                    shutil.copy2(f, tmp / f.name)
        fill(tmp)
        return _seal(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _tmp_dir(out: Path) -> Path:
    """A new hidden sibling folder of ``out`` to build an artifact in (``.<name>.tmp-*``: never
    listed as a tagger, removed by :func:`_recover` once its writer is gone)."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def _recover(out: Path) -> None:
    """Finish or undo a :func:`_seal` that was interrupted (crash, kill) in this folder.

    ``.<name>.old-<pid>-*`` is the previous artifact moved aside: if ``out`` is missing (the
    writer died between moving the old one aside and moving the new one in) it is moved
    back, else it is deleted. ``.<name>.tmp-<pid>-*`` folders of writers that are gone are
    deleted. Folders of a writer that is still running (same host), this process included,
    are left alone.
    """
    parent = out.parent
    if not parent.is_dir():
        return
    for kind in ("old", "tmp"):
        for left in sorted(parent.glob(f".{out.name}.{kind}-*")):
            try:
                pid = int(left.name.split(f".{kind}-", 1)[1].split("-", 1)[0])
            except ValueError:
                continue
            if pid == os.getpid() or _pid_alive(pid):
                continue
            if kind == "old" and not out.exists():
                os.replace(left, out)
                log.warning("artifact %s: an interrupted re-seal left it aside as %s; restored", out, left.name)
            else:
                shutil.rmtree(left, ignore_errors=True)


def _seal(tmp: Path, out: Path) -> str:
    """Write manifest.json (sha256 of every file) in ``tmp`` and move it to ``out`` atomically.

    Steps: manifest written in ``tmp`` (a sibling of ``out``); the old ``out`` renamed aside
    (``.<name>.old-<pid>-*``); ``tmp`` renamed to ``out``; the old one deleted. A process
    killed at any point leaves either the old or the new artifact complete: the next
    :func:`resolve_artifact` / :func:`load_artifact` / re-seal of ``out`` runs
    :func:`_recover` (moves the old one back if the new one never arrived, removes leftovers).
    """
    files = {f: _sha256(tmp / f) for f in HASHED if (tmp / f).exists()}
    digest = _combined(files)
    (tmp / "manifest.json").write_text(json.dumps({"files": files, "hash": digest}, indent=2))
    _recover(out)
    aside = None
    if out.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.replace(out, aside)  # an empty folder is replaced by the old artifact
    try:
        os.replace(tmp, out)
    except BaseException:
        if aside is not None and not out.exists():
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return digest


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


def _verify(path: Path) -> tuple[str, dict[str, str]]:
    manifest = path / "manifest.json"
    if not manifest.is_file():
        msg = f"artifact {path} has no manifest.json (not a hepml-coffea artifact, or incomplete)"
        raise ArtifactError(msg)
    man = json.loads(manifest.read_text())
    files: dict[str, str] = man.get("files", {})
    for fname, digest in files.items():
        p = path / fname
        if not p.is_file():
            msg = f"artifact {path}: file {fname} listed in manifest.json is missing"
            raise ArtifactIntegrityError(msg)
        actual = _sha256(p)
        if actual != digest:
            msg = f"artifact {path}: {fname} has sha256 {actual[:12]}..., manifest says {digest[:12]}...; refusing to load"
            raise ArtifactIntegrityError(msg)
    for fname in HASHED:
        if (path / fname).exists() and fname not in files:
            msg = f"artifact {path}: {fname} is not covered by manifest.json; refusing to load"
            raise ArtifactIntegrityError(msg)
    if _combined(files) != man.get("hash"):
        msg = f"artifact {path}: manifest hash does not match its file list; refusing to load"
        raise ArtifactIntegrityError(msg)
    return str(man["hash"]), files


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
