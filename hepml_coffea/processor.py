"""``TaggerProcessor``: score every selected fat jet with every tagger and histogram it.

Per chunk: select fat jets -> constituents (any NanoAOD flavour) -> each distinct
representation built **once** and shared by the taggers that need it -> scores from
the device-resident models of this worker process -> histograms.

The processor holds configuration only (artifact paths, hashes, specs, selection):
it pickles small and carries no model. Models live in the per-process cache of
:mod:`hepml_coffea.inference.engine` and, on Dask workers, are loaded and warmed by
:class:`hepml_coffea.inference.worker.TaggerWarmup` when the worker starts.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
import traceback
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from coffea import processor

from hepml_coffea.artifacts import ArtifactError, load_artifact, resolve_artifact, shipped_taggers
from hepml_coffea.constituents import InvalidAssociationError, MissingBranchError, fatjet_constituents
from hepml_coffea.histograms import score_histogram, working_point_histogram
from hepml_coffea.selection import Selection
from hepml_coffea.truth import UNKNOWN, top_labels

__all__ = ["TaggerProcessor", "DEFAULT_TAGGERS"]

#: the shipped taggers run by default, in this order
DEFAULT_TAGGERS = ("particlenet-lite", "pfn", "cnn", "lstm", "baseline")

_STAGES = ("read_constituents", "build_representation", "infer", "fill")


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors of unreadable or corrupt input data (a decompression failure in a damaged
    basket raises ``zlib.error``/``lzma.LZMAError``, a damaged basket header uproot's
    ``DeserializationError``: none of them is an OSError/ValueError)."""
    import lzma

    from uproot.deserialization import DeserializationError

    return (MissingBranchError, InvalidAssociationError, OSError, ValueError, KeyError, RuntimeError,
            zlib.error, lzma.LZMAError, DeserializationError)


_BAD_INPUT_ERRORS = _bad_input_errors()


def _meter(label: str) -> Any:
    """A Dask fine-performance-metrics context (shows on the dashboard); no-op elsewhere."""
    from distributed.metrics import context_meter

    return context_meter.meter(label)


class _StageTimer:
    """Seconds per stage, also reported to Dask's fine performance metrics."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with _meter(stage):
            yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


class TaggerProcessor(processor.ProcessorABC):  # type: ignore[misc]
    """Coffea processor running jet taggers on fat jets.

    Parameters
    ----------
    taggers : shipped tagger names (see :func:`hepml_coffea.shipped_taggers`) or
        artifact directories; default :data:`DEFAULT_TAGGERS` that are shipped
    selection : fat-jet selection (default: 550 < pT < 650 GeV, |eta| < 2)
    device : ``"auto"`` (GPU of the worker when there is one), ``"cpu"``, ``"cuda"``
    batch_size : jets per forward pass; default 1024 on GPU, 128 on CPU (see
        :func:`hepml_coffea.inference.engine.default_batch_size`); halved on GPU
        out-of-memory
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast on GPU
    skip_bad_inputs : on a chunk that cannot be read or has corrupt data, record it in
        the output's ``skipped`` list instead of failing the run
    save_scores : folder for per-jet scores (one parquet file per chunk) or ``None``
    score_bins : bins of the score axis on [0, 1] (>= 1000 for ROC curves)
    jet_block : representations are built and scored this many jets at a time, so a
        worker's memory does not grow with the chunk size

    Every artifact is verified (hash, spec vs model) here, when the processor is
    made, so a broken or mismatched model fails before any chunk runs.
    """

    def __init__(
        self,
        taggers: Sequence[str | os.PathLike[str]] | None = None,
        selection: Selection | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        amp: str | None = None,
        skip_bad_inputs: bool = False,
        save_scores: str | os.PathLike[str] | None = None,
        score_bins: int = 1000,
        jet_block: int = 8192,
    ) -> None:
        if taggers is None:
            shipped = shipped_taggers()
            taggers = [t for t in DEFAULT_TAGGERS if t in shipped]
            if not taggers:
                msg = "no shipped taggers found in the package; pass artifact paths with taggers=[...]"
                raise ArtifactError(msg)
        if amp not in (None, "bf16", "fp16"):
            msg = f"amp must be None, 'bf16' or 'fp16', got {amp!r}"
            raise ValueError(msg)
        self.selection = selection or Selection()
        self.device = device
        self.batch_size = None if batch_size is None else int(batch_size)
        self.amp = amp
        self.skip_bad_inputs = bool(skip_bad_inputs)
        self.save_scores = None if save_scores is None else os.fspath(save_scores)
        self.score_bins = int(score_bins)
        self.jet_block = max(1, int(jet_block))
        self.taggers: list[dict[str, Any]] = []
        names: set[str] = set()
        for t in taggers:
            art = load_artifact(t)  # verifies hash and spec; the model is dropped right away
            if art.name in names:
                msg = f"two taggers are named {art.name!r}; tagger names must be unique"
                raise ValueError(msg)
            names.add(art.name)
            spec = art.spec.to_dict() if art.spec is not None else None
            self.taggers.append({
                "name": art.name,
                "path": os.fspath(resolve_artifact(t).resolve()),
                "hash": art.hash,
                "input_kind": art.input_kind,
                "spec": spec,
                "spec_key": _spec_key(spec),
                "working_points": art.working_points(),
            })

    @property
    def tagger_names(self) -> list[str]:
        return [t["name"] for t in self.taggers]

    # ------------------------------------------------------------------ helpers
    def _empty_output(self, dataset: str) -> dict[str, Any]:
        cutflow = {k: 0 for k in ("events", "fat_jets", "selected", "no_constituents", "nonfinite",
                                  "bad_association_rows", "scored")}
        return {
            dataset: {
                "scores": score_histogram(self.tagger_names, self.selection, self.score_bins),
                "working_points": working_point_histogram(self.tagger_names, self.selection),
                "cutflow": cutflow,
                "tagger_counts": {t: {"scored": 0, "skipped": 0} for t in self.tagger_names},
                "timing": {s: 0.0 for s in _STAGES},
                "skipped": [],
                "chunks": 1,
            }
        }

    # ------------------------------------------------------------------ process
    def process(self, events: Any) -> dict[str, Any]:
        meta = dict(getattr(events, "metadata", {}) or {})
        dataset = str(meta.get("dataset", "unknown"))
        out = self._empty_output(dataset)
        acc = out[dataset]
        try:
            self._process(events, acc, meta)
        except _BAD_INPUT_ERRORS as err:
            if not self.skip_bad_inputs or isinstance(err, ArtifactError):
                raise
            fresh = self._empty_output(dataset)[dataset]
            fresh["skipped"] = [{
                "file": str(meta.get("filename", "?")),
                "entrystart": meta.get("entrystart"),
                "entrystop": meta.get("entrystop"),
                "reason": f"{type(err).__name__}: {err}".splitlines()[0][:300],
                "where": _where(err),
            }]
            out[dataset] = fresh
        return out

    def _process(self, events: Any, acc: dict[str, Any], meta: dict[str, Any]) -> None:
        timer = _StageTimer()
        n_events = len(events)
        acc["cutflow"]["events"] += n_events
        with timer("read_constituents"):
            jc = fatjet_constituents(events, on_invalid="skip" if self.skip_bad_inputs else "raise",
                                     select=self.selection.jet_mask)
            # NaN/inf jet kinematics never pass the selection: count them, not drop them silently
            n_unjudged = jc.counts["nonfinite_rejected"]
            n_fat_jets = int(np.sum(ak.to_numpy(ak.num(events["FatJet"].pt, axis=1)))) if len(events) else 0
            if len(jc):
                labels = top_labels(events, jc.event_index, ak.to_numpy(jc.jets.eta), ak.to_numpy(jc.jets.phi))
            else:
                labels = np.zeros(0, dtype=np.int8)
            if "GenPart" not in ak.fields(events):
                labels[:] = UNKNOWN
        cf = acc["cutflow"]
        cf["fat_jets"] += n_fat_jets
        cf["selected"] += len(jc)
        cf["no_constituents"] += jc.counts["no_constituents"]
        cf["nonfinite"] += jc.counts["nonfinite"] + n_unjudged
        cf["bad_association_rows"] += int(jc.counts.get("bad_association_rows", 0))
        good = jc.select(jc.valid)
        good_labels = labels[jc.valid]
        cf["scored"] += len(good)

        # build + infer in blocks of jets: memory stays bounded whatever the chunk size
        n_good = len(good)
        edges = list(range(0, n_good, self.jet_block)) + [n_good] if n_good else [0, 0]
        parts = []
        for a, b in zip(edges[:-1], edges[1:]):
            block = good if (a, b) == (0, n_good) else good.select((np.arange(n_good) >= a) & (np.arange(n_good) < b))
            parts.append(self._score_block(block, acc, timer))
        scores = {name: np.concatenate([p_[name] for p_ in parts]) for name in self.tagger_names}
        with timer("fill"):
            self._fill(acc, good, good_labels, scores)
            if self.save_scores:
                self._write_scores(good, good_labels, scores, meta)
        for k, v in timer.seconds.items():
            acc["timing"][k] = acc["timing"].get(k, 0.0) + v

    def _score_block(self, good: Any, acc: dict[str, Any], timer: _StageTimer) -> dict[str, np.ndarray]:
        """Scores of every tagger for the jets of ``good`` (each representation built once)."""
        from hepml_coffea.inference.engine import get_tagger, predict
        from hepml_coffea.representations import InputSpec, build

        built: dict[str, dict[str, np.ndarray]] = {}
        scores: dict[str, np.ndarray] = {}
        for t in self.taggers:
            kind = t["input_kind"]
            if kind == "observables":
                with timer("infer"):
                    sc = self._score_observables(t, good, acc)
                scores[t["name"]] = sc
                continue
            key = t["spec_key"]
            if key not in built:
                with timer("build_representation"):
                    spec = InputSpec.from_dict(t["spec"])
                    # one particle build serves sequence and point-cloud taggers alike
                    shared = _shared_key(t["spec"])
                    twin = next((k for k in built if _shared_key_of(k) == shared and "points" in built[k]), None)
                    if twin is not None and kind in ("sequence", "pointcloud"):
                        built[key] = built[twin]
                    else:
                        if kind == "sequence" and any(
                            o["input_kind"] == "pointcloud" and _shared_key(o["spec"]) == shared for o in self.taggers
                        ):
                            spec = InputSpec.from_dict({**t["spec"], "kind": "pointcloud"})
                        built[key] = build(good.cands, good.jets, spec) if len(good) else _empty_inputs(spec)
            with timer("infer"):
                tagger = get_tagger(t["path"], self.device, self.amp)
                if tagger.artifact.hash != t["hash"]:
                    msg = f"artifact {t['path']} changed since the processor was configured (hash mismatch)"
                    raise ArtifactError(msg)
                arrays = [built[key][k] for k in tagger.input_names]
                scores[t["name"]] = predict(tagger.model, arrays, device=tagger.device,
                                            batch_size=self.batch_size, amp=self.amp)
            acc["tagger_counts"][t["name"]]["scored"] += int(np.sum(np.isfinite(scores[t["name"]])))
        return scores

    def _score_observables(self, t: dict[str, Any], good: Any, acc: dict[str, Any]) -> np.ndarray:
        from hepml_coffea.inference.engine import get_tagger

        n = len(good)
        out = np.full(n, np.nan, dtype=np.float32)
        if n == 0:
            return out
        fields = ak.fields(good.jets)
        if not {"msoftdrop", "tau2", "tau3"} <= set(fields):
            acc["tagger_counts"][t["name"]]["skipped"] += n
            return out
        tagger = get_tagger(t["path"], "cpu")
        msd = np.asarray(ak.to_numpy(good.jets.msoftdrop), dtype=np.float64)
        t3 = np.asarray(ak.to_numpy(good.jets.tau3), dtype=np.float64)
        t2 = np.asarray(ak.to_numpy(good.jets.tau2), dtype=np.float64)
        tau32 = np.divide(t3, t2, out=np.zeros_like(t3), where=t2 > 0)
        ok = np.isfinite(msd) & np.isfinite(tau32)
        out[ok] = tagger.model.score(msd[ok], tau32[ok]).astype(np.float32)
        acc["tagger_counts"][t["name"]]["skipped"] += int((~ok).sum())
        acc["tagger_counts"][t["name"]]["scored"] += int(ok.sum())
        return out

    def _fill(self, acc: dict[str, Any], good: Any, labels: np.ndarray, scores: dict[str, np.ndarray]) -> None:
        if len(good) == 0:
            return
        pt = np.asarray(ak.to_numpy(good.jets.pt), dtype=np.float64)
        msd = (np.asarray(ak.to_numpy(good.jets.msoftdrop), dtype=np.float64)
               if "msoftdrop" in ak.fields(good.jets) else np.full(len(good), -1.0))
        for t in self.taggers:
            s = scores[t["name"]]
            ok = np.isfinite(s)
            acc["scores"].fill(tagger=t["name"], score=s[ok], pt=pt[ok], msoftdrop=msd[ok], truth=labels[ok])
            for wp, thr in t["working_points"].items():
                acc["working_points"].fill(tagger=t["name"], wp=wp, passed=(s[ok] >= thr), pt=pt[ok], truth=labels[ok])

    def _write_scores(self, good: Any, labels: np.ndarray, scores: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        folder = Path(self.save_scores or ".")
        folder.mkdir(parents=True, exist_ok=True)
        table = {
            "event_index": good.event_index + int(meta.get("entrystart") or 0),
            "jet_index": good.jet_index,
            "pt": ak.to_numpy(good.jets.pt),
            "eta": ak.to_numpy(good.jets.eta),
            "truth": labels,
            **{f"score_{k}": v for k, v in scores.items()},
        }
        stem = f"{meta.get('dataset', 'unknown')}_{Path(str(meta.get('filename', 'x'))).stem}_{meta.get('entrystart', 0)}_{meta.get('entrystop', 0)}"
        tmp = folder / f".{stem}.{uuid.uuid4().hex}.tmp"
        ak.to_parquet(ak.zip({k: np.asarray(v) for k, v in table.items()}), tmp)
        os.replace(tmp, folder / f"{stem}.parquet")

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def _where(err: BaseException) -> str:
    """``file:line in function`` of the innermost frame that raised ``err``."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename}:{f.lineno} in {f.name}"[-200:]


def _spec_key(spec: dict[str, Any] | None) -> str:
    return json.dumps(spec, sort_keys=True)


def _shared_key(spec: dict[str, Any] | None) -> str:
    """Key of the particle arrays a spec needs, whatever its kind (sequence/pointcloud)."""
    if spec is None or spec.get("kind") == "image":
        return _spec_key(spec)
    return json.dumps({"features": spec["features"], "length": spec["length"], "points": spec.get("points"),
                       "pad_mode": spec.get("pad_mode")}, sort_keys=True)


def _shared_key_of(spec_key: str) -> str:
    return _shared_key(json.loads(spec_key))


def _empty_inputs(spec: Any) -> dict[str, np.ndarray]:
    p, c = spec.length, len(spec.features)
    if spec.kind == "image":
        return {"image": np.zeros((0, len(spec.channels), spec.npix, spec.npix), dtype=np.float32)}
    return {
        "points": np.zeros((0, 2, p), dtype=np.float32),
        "features": np.zeros((0, c, p), dtype=np.float32),
        "mask": np.zeros((0, 1, p), dtype=np.float32),
        "lengths": np.zeros(0, dtype=np.int64),
    }

