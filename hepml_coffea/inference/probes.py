"""The hash chain between an artifact's weights and its compiled runtimes.

``model.onnx`` and ``model.pt2`` are derived from ``weights.safetensors``; the manifest
alone cannot tell that they still belong together (a ``model.onnx`` copied from another
artifact, and the manifest re-sealed, would pass it). So every export records, in its
model.yaml record (``onnx`` / ``aoti``), the sha256 of the weights it was exported from
(``weights_sha256``), and the artifact holds a probe: ``probe.npz``, a fixed batch of
:data:`PROBE_JETS` jets of the model's input shapes and the scores torch eager gives them
with these weights, described by model.yaml ``probe`` (its sha256 and the weights' sha256).

:func:`check_runtime` runs when a runtime is loaded (once per process and file, see
:func:`hepml_coffea.inference.runners.make_runner`) and refuses, with one line naming the
file (:class:`~hepml_coffea.artifacts.ArtifactIntegrityError`):

* a runtime whose record names other weights than the artifact's (or no weights at all);
* a runtime file that is not the one its record describes (sha256);
* a probe made for other weights, or a ``probe.npz`` that is not the recorded one;
* a runtime whose scores on the probe differ from the recorded ones by more than
  :data:`PROBE_ATOL` for its backend: 1e-4 for ONNX Runtime and AOTInductor. The export
  itself is checked to 1e-5 (:data:`~hepml_coffea.inference.backends.SCORE_ATOL`) on the
  machine that made it; another CPU or library build may round differently, while a runtime
  of another model differs by far more (0.1 and up).

An artifact without a ``probe`` record (made before this check existed) keeps loading: its
runtimes are not checked. ``python workflows/add_probes.py ARTIFACT...`` adds the probe and
the weights records to such an artifact after checking its runtimes against torch eager.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from hepml_coffea.artifacts import Artifact, ArtifactError, ArtifactIntegrityError

__all__ = ["PROBE_ATOL", "PROBE_FILE", "PROBE_JETS", "PROBE_POOL", "PROBE_SEED", "check_runtime", "inputs_from_files",
           "probe_of", "probe_scores", "runtime_record_key", "top_scores"]

log = logging.getLogger("hepml_coffea.inference")

PROBE_FILE = "probe.npz"
#: jets in a probe (jets with at least one constituent)
PROBE_JETS = 16
PROBE_SEED = 20260623
#: jets a probe is chosen from
PROBE_POOL = 512
#: largest score difference to the probe's recorded scores a runtime may have, per backend
PROBE_ATOL: dict[str, float] = {"onnxruntime": 1e-4, "aoti": 1e-4}
WEIGHTS_FILE = "weights.safetensors"
_RECORD = {"model.onnx": "onnx", "model.pt2": "aoti"}

_CHECKED: set[tuple[str, str]] = set()
_LOCK = threading.Lock()


def runtime_record_key(fname: str) -> str:
    """model.yaml key of the record of runtime file ``fname`` (``"onnx"``, ``"aoti"``)."""
    return _RECORD[fname]


def probe_of(artifact: Artifact) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The artifact's probe arrays and record, checked against the weights (None if it has
    no probe record: an artifact from before the hash chain)."""
    rec = artifact.meta.get("probe")
    if not isinstance(rec, Mapping):
        return None
    weights = artifact.file_digest(WEIGHTS_FILE)
    if rec.get("weights_sha256") != weights:
        msg = (f"artifact {artifact.path}: {PROBE_FILE} was made for weights {str(rec.get('weights_sha256'))[:12]}..., "
               f"this artifact's {WEIGHTS_FILE} is {str(weights)[:12]}...; refusing its runtimes (re-export them)")
        raise ArtifactIntegrityError(msg)
    path = artifact.path / PROBE_FILE
    if artifact.file_digest(PROBE_FILE) != rec.get("sha256") or not path.is_file():
        msg = (f"artifact {artifact.path}: {PROBE_FILE} is missing or is not the probe model.yaml records; "
               "refusing its runtimes")
        raise ArtifactIntegrityError(msg)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != rec.get("sha256"):
        msg = f"artifact {artifact.path}: {PROBE_FILE} does not match manifest.json; refusing to load"
        raise ArtifactIntegrityError(msg)
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}, dict(rec)


def top_scores(artifact: Artifact, out: np.ndarray) -> np.ndarray:
    """Top scores from a runner's per-jet output: as they are, or for a multi-class model
    (an imported weaver model: class probabilities) its score expression."""
    if artifact.classes and np.ndim(out) == 2:
        from hepml_coffea.inference.heads import class_score

        return class_score(artifact, out)
    return np.asarray(out, dtype=np.float32)


def probe_scores(runner: Any, arrays: list[np.ndarray], artifact: Artifact | None = None) -> np.ndarray:
    """Scores of a :class:`~hepml_coffea.inference.runners.Runner` on probe arrays (model
    input order): its probabilities; with ``artifact``, a multi-class model's class
    probabilities become its top score."""
    out = np.asarray(runner.run([np.ascontiguousarray(a, dtype=np.float32) for a in arrays]), dtype=np.float32)
    return top_scores(artifact, out) if artifact is not None else out


def check_runtime(artifact: Artifact, fname: str, runner: Any) -> Any:
    """Refuse a runtime (``model.onnx``, ``model.pt2``) not bound to the artifact's weights;
    return ``runner`` unchanged otherwise. Runs once per process for each (artifact hash,
    file); see the module docstring for what is checked and the tolerances.

    Raises
    ------
    ArtifactIntegrityError
        one line naming the artifact and the file.
    """
    key = (artifact.hash, fname)
    with _LOCK:
        if key in _CHECKED:
            return runner
    probe = probe_of(artifact)
    if probe is None:  # an artifact from before the hash chain: not checked (documented)
        log.debug("artifact %s has no probe record; %s is not checked against its weights", artifact.path, fname)
        return runner
    arrays_by_name, _ = probe
    rec = artifact.meta.get(runtime_record_key(fname))
    weights = artifact.file_digest(WEIGHTS_FILE)
    bound = rec.get("weights_sha256") if isinstance(rec, Mapping) else None
    if bound != weights:
        msg = (f"artifact {artifact.path}: {fname} was not exported from this artifact's {WEIGHTS_FILE} (its record "
               f"names weights {str(bound)[:12]}..., the artifact has {str(weights)[:12]}...); refusing to load it; "
               f"re-export it (export_{runtime_record_key(fname)}(path))")
        raise ArtifactIntegrityError(msg)
    if isinstance(rec, Mapping) and rec.get("sha256") and rec["sha256"] != artifact.file_digest(fname):
        msg = (f"artifact {artifact.path}: {fname} is not the file its model.yaml record describes (sha256 "
               f"{str(artifact.file_digest(fname))[:12]}..., record {str(rec['sha256'])[:12]}...); refusing to load it")
        raise ArtifactIntegrityError(msg)
    backend = str(getattr(runner, "name", "onnxruntime"))
    atol = PROBE_ATOL.get(backend, 1e-4)
    want = arrays_by_name["scores"]
    try:
        got = probe_scores(runner, [arrays_by_name[k] for k in artifact.input_names], artifact)
        diff = float(np.max(np.abs(got.reshape(want.shape) - want)))
    except Exception as err:  # noqa: BLE001 - a runtime of another model may not even take these shapes
        msg = (f"artifact {artifact.path}: {fname} does not run on the artifact's probe "
               f"({type(err).__name__}: {' '.join(str(err).split())[:160]}); refusing to load it")
        raise ArtifactIntegrityError(msg) from err
    if not diff <= atol:
        msg = (f"artifact {artifact.path}: {fname} gives scores that differ from the probe's by {diff:.2g} "
               f"(allowed {atol:.0e} for {backend}); it does not belong to these weights; refusing to load it")
        raise ArtifactIntegrityError(msg)
    with _LOCK:
        _CHECKED.add(key)
    return runner


def inputs_from_files(artifact: Artifact, files: Any, max_jets: int = PROBE_POOL) -> dict[str, np.ndarray]:
    """Model inputs of up to ``max_jets`` real jets (in the artifact's selection window when
    it records one, with constituents; the first ``max_jets / len(files)`` of each file)
    read from ROOT ``files``, for :func:`~hepml_coffea.inference.backends.make_probe`.

    Shapes:
        -> per input name, (n, ...) float32 as the model takes it
    """
    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays
    from hepml_coffea.representations import build
    from hepml_coffea.selection import Selection

    spec = artifact.spec
    if spec is None:
        msg = f"artifact {artifact.path}: no input spec to build probe inputs with"
        raise ArtifactError(msg)
    sel = artifact.meta.get("selection")
    selection = Selection(**sel) if isinstance(sel, Mapping) else Selection()
    files = list(files)
    per_file = max(1, max_jets // max(1, len(files)))  # jets of every file (e.g. signal and background)
    parts: list[Mapping[str, np.ndarray]] = []
    n = 0
    for f in files:
        jc = fatjet_constituents(read_arrays(f), cand_fields=spec.required_cand_fields(),
                                 jet_fields=spec.required_jet_fields(), select=selection.jet_mask)
        keep = np.flatnonzero(jc.valid)[:per_file]
        if not len(keep):
            continue
        mask = np.zeros(len(jc), dtype=bool)
        mask[keep] = True
        jc = jc.select(mask)
        built = build(jc.cands, jc.jets, spec)
        parts.append({k: np.asarray(built[k]) for k in artifact.input_names})
        n += len(jc)
        if n >= max_jets:
            break
    if not parts:
        msg = f"artifact {artifact.path}: no jet of {list(files)} passes {selection.describe()}"
        raise ArtifactError(msg)
    return {k: np.concatenate([p[k] for p in parts])[:max_jets] for k in artifact.input_names}
