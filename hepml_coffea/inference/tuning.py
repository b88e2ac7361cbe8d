"""Choosing a tagger's CPU backend by measurement (above the engine: it times the engine's paths).

:func:`measure_backends` times torch eager, ``torch.compile``, ONNX Runtime and the AOTInductor
package on the same jets at one thread; :func:`choose_backend` exports ``model.onnx`` and
``model.pt2`` where the model allows, measures, and records
the fastest exact backend in the artifact's ``model.yaml`` (``cpu_backend``)::

    from hepml_coffea.inference.tuning import choose_backend
    choose_backend("path/to/artifact")
"""

from __future__ import annotations

import io
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hepml_coffea.artifacts import ArtifactError, ArtifactIntegrityError, load_artifact, update_artifact
from hepml_coffea.inference.backends import (
    AOTI_FILE,
    AOTI_MARGIN,
    COMPILE_MARGIN,
    CPU_BACKENDS,
    ONNX_FILE,
    SCORE_ATOL,
    ExportError,
    export_aoti,
    export_onnx,
    make_probe,
    synthetic_inputs,
)
from hepml_coffea.inference.probes import PROBE_ATOL, PROBE_FILE, WEIGHTS_FILE, probe_of, probe_scores, runtime_record_key
from hepml_coffea.inference.runners import make_runner, pick_backend, runner_class, runtime_files, unchosen_compiled

__all__ = ["add_probe", "choose_backend", "measure_backends"]

log = logging.getLogger("hepml_coffea.inference")


def _time_call(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_backends(
    artifact_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    batch_size: int | None = None,
    threads: int = 1,
    repeats: int = 3,
    backends: tuple[str, ...] = CPU_BACKENDS,
) -> dict[str, dict[str, Any]]:
    """Time each CPU backend on the same jets through ``Tagger.predict`` (bucketing and
    trimming included), at ``threads`` torch / ONNX Runtime threads.

    Each backend is warmed (compiled) first, then timed ``repeats`` times interleaved
    with the others; the best time counts (least disturbed by other processes).

    Returns
    -------
    dict
        backend -> ``{"jets_per_s", "max_abs_score_diff" (vs torch eager), "setup_s"}``,
        or ``{"error": "..."}`` for a backend that could not run.
    """
    import torch

    from hepml_coffea.inference.engine import Tagger

    art = load_artifact(artifact_dir)
    if art.input_kind == "observables":
        msg = f"artifact {art.path}: the cut-based tagger has a single (numpy) backend"
        raise ArtifactError(msg)
    data = dict(inputs) if inputs is not None else synthetic_inputs(art, n=2048)
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        model = art.model.eval()
        taggers: dict[str, Tagger] = {}
        out: dict[str, dict[str, Any]] = {}
        ref = Tagger(artifact=art, model=model, device="cpu")
        ref_scores = ref.predict(data, batch_size=batch_size)
        for b in backends:
            t0 = time.perf_counter()
            try:
                tagger = Tagger(artifact=art, model=model, runner=make_runner(art, model, b, strict=True))
                got = tagger.predict(data, batch_size=batch_size)  # warm-up / compile
            except Exception as err:  # noqa: BLE001 - recorded, the backend is not chosen
                out[b] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
                continue
            out[b] = {"setup_s": time.perf_counter() - t0,
                      "max_abs_score_diff": float(np.nanmax(np.abs(got - ref_scores))) if len(got) else 0.0}
            taggers[b] = tagger
        n = len(ref_scores)
        best = {b: float("inf") for b in taggers}
        for _ in range(repeats):
            for b, tagger in taggers.items():
                best[b] = min(best[b], _time_call(lambda t=tagger: t.predict(data, batch_size=batch_size), 1))
        for b in taggers:
            out[b]["jets_per_s"] = n / best[b]
        return out
    finally:
        torch.set_num_threads(before)


def choose_backend(
    artifact_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    batch_size: int | None = None,
    threads: int = 1,
    repeats: int = 3,
    record: bool = True,
    backends: tuple[str, ...] = CPU_BACKENDS,
) -> str:
    """Export ``model.onnx`` and compile ``model.pt2`` (where the model allows; a backend
    not in ``backends`` is left as it is), time every CPU backend and record the fastest
    one whose scores equal torch eager's to :data:`SCORE_ATOL` (``compile`` only if
    :data:`COMPILE_MARGIN` times faster than the next best: it costs a compilation in every
    worker process; ``aoti`` only if :data:`AOTI_MARGIN` times faster than ONNX Runtime: it
    runs only with the torch version and CPU it was built for).

    Parameters
    ----------
    artifact_dir : artifact directory (or shipped tagger name)
    inputs : jets to time on (default :func:`synthetic_inputs`, 2,048 jets); real jets
        of the analysis give the most faithful choice
    batch_size, threads, repeats, backends : see :func:`measure_backends`
    record : write the choice into model.yaml (``cpu_backend``) and re-seal; a
        ``model.pt2`` that was measured but not chosen is removed (not shipped)

    Returns
    -------
    str
        the chosen backend.
    """
    import torch

    art = load_artifact(artifact_dir)
    path = art.path
    notes: dict[str, str] = {}
    exporters = {"onnxruntime": export_onnx, "aoti": export_aoti}
    for backend, fname, key in runtime_files(art, backends):
        try:
            exporters[backend](path, inputs=inputs)
        except ExportError as err:
            notes[key] = str(err)
            log.warning("%s", err)
            if (path / fname).exists():
                update_artifact(path, remove=(fname,), meta={key: None})
    results = measure_backends(path, inputs=inputs, batch_size=batch_size, threads=threads, repeats=repeats,
                               backends=backends)
    chosen = pick_backend({b: r for b, r in results.items()
                           if "jets_per_s" in r and r["max_abs_score_diff"] <= SCORE_ATOL})
    if record:
        from hepml_coffea.inference.batching import default_batch_size

        rec = {
            "chosen": chosen,
            "threads": int(threads),
            "batch_size": int(batch_size or default_batch_size("cpu")),
            "n_jets": len(next(iter(inputs.values()))) if inputs is not None else 2048,
            "inputs": "given" if inputs is not None else "synthetic",
            "results": {b: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
                        for b, r in results.items()},
            "machine": platform.processor() or platform.machine(),
            "torch": str(torch.__version__),
        }
        for key, note in notes.items():
            rec[f"{key}_export"] = note
        meta: dict[str, Any] = {"cpu_backend": rec}
        remove: tuple[str, ...] = ()
        for fname, key in unchosen_compiled(path, chosen, backends):
            # compiled code is shipped only where it runs: the ONNX export stays (aoti's fall-back)
            remove, meta[key] = (*remove, fname), None
            rec[f"{key}_export"] = rec.get(f"{key}_export", f"{fname} measured, not chosen: removed")
        update_artifact(path, remove=remove, meta=meta)
    return chosen


def add_probe(artifact_dir: Any, inputs: Mapping[str, np.ndarray] | None = None,
              replace: bool = False) -> dict[str, Any]:
    """Give an artifact made before the hash chain its probe and bind its runtimes.

    Makes ``probe.npz`` from the weights and ``inputs`` (:func:`make_probe`; an existing
    probe for these weights is kept unless ``replace``), runs each
    runtime the artifact holds (``model.onnx``; ``model.pt2`` where it can run here) on the
    probe, and, when its scores agree to :data:`PROBE_ATOL`, records ``weights_sha256`` in
    its model.yaml record; then re-seals the artifact (weights and runtimes byte for byte
    unchanged: the scores do not change, the artifact hash does). A ``model.pt2`` that
    cannot run on this machine is bound on its export record's word (its sha256 matches
    and it was written by ``export_aoti`` from these weights) and said so in the result.

    Returns
    -------
    dict
        ``hash`` (new artifact hash), and per runtime file ``"checked: max diff ..."`` or
        ``"bound unchecked: ..."``; ``{"skipped": why}`` for an artifact without weights.

    Raises
    ------
    ArtifactIntegrityError
        a runtime whose scores on the probe differ: it is not bound (re-export it).
    """
    art = load_artifact(artifact_dir)
    if art.model is None or art.file_digest(WEIGHTS_FILE) is None:
        return {"skipped": "no torch weights (cut-based or imported ONNX graph): nothing to bind"}
    current = None if replace else probe_of(art)
    if current is None:
        data, record = make_probe(art, inputs)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        files: dict[str, bytes] = {PROBE_FILE: data}
        meta: dict[str, Any] = {"probe": record}
    else:
        arrays, _ = current
        files, meta = {}, {}
    result: dict[str, Any] = {}
    for fname, backend in ((ONNX_FILE, "onnxruntime"), (AOTI_FILE, "aoti")):
        rec = art.meta.get(runtime_record_key(fname))
        if art.file_digest(fname) is None:
            continue
        if not isinstance(rec, Mapping) or rec.get("sha256") != art.file_digest(fname):
            msg = f"artifact {art.path}: {fname} has no export record that describes it; re-export it"
            raise ArtifactIntegrityError(msg)
        why = runner_class(backend).supports(art, "cpu")
        if why is not None:
            result[fname] = f"bound unchecked: {why}"
        else:
            runner = make_runner(art, art.model, backend, strict=True)
            got = probe_scores(runner, [arrays[k] for k in art.input_names], art)
            diff = float(np.max(np.abs(got - arrays["scores"])))
            if not diff <= PROBE_ATOL[backend]:
                msg = (f"artifact {art.path}: {fname} differs from torch eager on the probe by {diff:.2g} "
                       f"(allowed {PROBE_ATOL[backend]:.0e}); not bound: re-export it")
                raise ArtifactIntegrityError(msg)
            result[fname] = f"checked: max score difference {diff:.2g}"
        meta[runtime_record_key(fname)] = {**rec, "weights_sha256": art.file_digest(WEIGHTS_FILE)}
    result["hash"] = update_artifact(art.path, files=files, meta=meta) if (files or meta) else art.hash
    return result
