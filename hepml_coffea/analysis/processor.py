"""``TaggerProcessor``: histogram the scores of every selected fat jet.

Scoring is :class:`hepml_coffea.scoring.FatJetTagger`'s job (selection, constituents,
representations, models); this processor only adds the truth label of each scored jet and
fills the histograms of :mod:`hepml_coffea.analysis.histograms`. It holds configuration only and
pickles small; the models live in each worker process's cache.

Output of one chunk (coffea adds them up)::

    {"datasets": {dataset: {"scores": Hist, "working_points": Hist, "cutflow": {...},
                            "tagger_counts": {...}, "timing": {...}, "skipped": [...],
                            "nonfinite_inputs": [...]}}}

:func:`hepml_coffea.batch.run.run_fileset` adds ``"run"`` (taggers, selection, skipped files,
stage report) beside ``"datasets"``.
"""

from __future__ import annotations

import os
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from coffea import processor

from hepml_coffea.config import TaggerConfig
from hepml_coffea.analysis.histograms import empty_dataset_output, fill_scores
from hepml_coffea.scoring import FatJetTagger, JetScores, StageTimer
from hepml_coffea.selection import Selection
from hepml_coffea.data.truth import UNKNOWN, top_labels

__all__ = ["TaggerProcessor", "DEFAULT_TAGGERS", "bad_input_errors", "is_bad_input"]

#: the shipped taggers run by default, in this order: as the standard evaluation ranks them
#: (TAGGERS.md: AUC and 1/eB at eS = 50 %), the cut-based baseline last as the reference
DEFAULT_TAGGERS = ("particlenet", "particlenet-jetclass", "cnn", "particlenet-lite", "pfn", "lstm", "baseline")


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean *the input data is bad* (and may be skipped when asked).

    Unreadable or damaged files (``OSError``; ``zlib.error``/``lzma.LZMAError`` from a
    damaged basket; uproot's ``DeserializationError`` and ``KeyInFileError``), missing
    constituent branches and association rows pointing outside their collections.
    Configuration mistakes (:class:`~hepml_coffea.config.ConfigurationError`, a missing
    or changed artifact, a bad option) are *not* in the tuple: they always fail the run.
    """
    import lzma
    import zlib

    from uproot.deserialization import DeserializationError
    from uproot.exceptions import KeyInFileError

    from hepml_coffea.data.constituents import InvalidAssociationError, MissingBranchError

    return (MissingBranchError, InvalidAssociationError, OSError, zlib.error, lzma.LZMAError,
            DeserializationError, KeyInFileError)


def is_bad_input(err: BaseException) -> bool:
    """Whether ``err`` says the input data is bad (and so may be skipped when asked).

    True for :func:`bad_input_errors`, and for a ``ValueError``/``KeyError``/``RuntimeError``
    raised inside uproot itself (e.g. ``unrecognized compression algorithm`` in a damaged
    basket header). Never for a :class:`~hepml_coffea.config.ConfigurationError` or an
    :class:`~hepml_coffea.artifacts.ArtifactError`, wherever they come from.
    """
    from hepml_coffea.artifacts import ArtifactError
    from hepml_coffea.config import ConfigurationError

    if isinstance(err, (ConfigurationError, ArtifactError)):
        return False
    if isinstance(err, bad_input_errors()):
        return True
    if isinstance(err, (ValueError, KeyError, RuntimeError)):
        frames = traceback.extract_tb(err.__traceback__)
        return bool(frames) and f"{os.sep}uproot{os.sep}" in frames[-1].filename
    return False


class TaggerProcessor(processor.ProcessorABC):  # type: ignore[misc]
    """Coffea processor: scores of every tagger for the selected fat jets, histogrammed.

    Parameters
    ----------
    taggers : shipped tagger names (:func:`hepml_coffea.shipped_taggers`), artifact
        directories or :class:`~hepml_coffea.config.TaggerConfig`; default: the shipped
        ones of :data:`DEFAULT_TAGGERS`
    selection : fat-jet selection (default: 550 < pT < 650 GeV, |eta| < 2)
    device, amp, batch_size, backend, jet_block : passed to
        :class:`~hepml_coffea.scoring.FatJetTagger`
    skip_bad_inputs : a chunk whose data cannot be read (see :func:`bad_input_errors`) is
        recorded in its dataset's ``skipped`` list, with its event count, instead of
        failing the run; configuration errors are never skipped
    save_scores : folder for per-jet scores (one parquet file per chunk) or ``None``
    score_bins : bins of the score axis on [0, 1] (>= 1000 for ROC curves)

    Every artifact is verified (hash, spec vs model) when the processor is made.
    """

    def __init__(
        self,
        taggers: Sequence[str | os.PathLike[str] | TaggerConfig] | None = None,
        selection: Selection | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        amp: str | None = None,
        skip_bad_inputs: bool = False,
        save_scores: str | os.PathLike[str] | None = None,
        score_bins: int = 1000,
        jet_block: int = 8192,
        backend: str = "auto",
    ) -> None:
        self.selection = selection or Selection()
        self.tagger = FatJetTagger(
            taggers, selection=self.selection, device=device, amp=amp, batch_size=batch_size,
            backend=backend, jet_block=jet_block, on_invalid="skip" if skip_bad_inputs else "raise",
            default_taggers=DEFAULT_TAGGERS,
        )
        self.skip_bad_inputs = bool(skip_bad_inputs)
        self.save_scores = None if save_scores is None else os.fspath(save_scores)
        self.score_bins = int(score_bins)

    @property
    def taggers(self) -> tuple[TaggerConfig, ...]:
        return self.tagger.taggers

    @property
    def tagger_names(self) -> list[str]:
        return self.tagger.names

    @property
    def device(self) -> str:
        return self.tagger.device

    @property
    def amp(self) -> str | None:
        return self.tagger.amp

    def empty_output(self, dataset: str) -> dict[str, Any]:
        """The output of a chunk with no events (what a skipped chunk contributes)."""
        return {"datasets": {dataset: empty_dataset_output(self.taggers, self.selection, self.score_bins)}}

    def process(self, events: Any) -> dict[str, Any]:
        meta = dict(getattr(events, "metadata", {}) or {})
        dataset = str(meta.get("dataset", "unknown"))
        out = self.empty_output(dataset)
        acc = out["datasets"][dataset]
        try:
            self._process(events, acc, meta)
        except Exception as err:  # noqa: BLE001 - sorted by is_bad_input below
            if not self.skip_bad_inputs or not is_bad_input(err):
                raise
            fresh = self.empty_output(dataset)
            start, stop = meta.get("entrystart"), meta.get("entrystop")
            n_events = int(stop - start) if start is not None and stop is not None else _length(events)
            fresh["datasets"][dataset]["skipped"] = [{
                "dataset": dataset,
                "file": str(meta.get("filename", "?")),
                "entrystart": start,
                "entrystop": stop,
                "events": n_events,
                "reason": f"{type(err).__name__}: {err}".splitlines()[0][:300],
                "where": _where(err),
            }]
            fresh["datasets"][dataset]["cutflow"]["events_skipped"] += n_events or 0
            return fresh
        return out

    def _process(self, events: Any, acc: dict[str, Any], meta: dict[str, Any]) -> None:
        timer = StageTimer()
        result = self.tagger.score(events, timer=timer)
        with timer("read_constituents"):
            labels = self._labels(events, result)
        with timer("fill"):
            fill_scores(acc, self.taggers, result, labels, n_events=len(events))
            if result.nonfinite_features:
                acc["nonfinite_inputs"].append({
                    "file": str(meta.get("filename", "?")), "entrystart": meta.get("entrystart"),
                    "entrystop": meta.get("entrystop"), "jets": int(result.counts.get("nonfinite_inputs", 0)),
                    "features": dict(result.nonfinite_features)})
            if self.save_scores:
                self._write_scores(result, labels, meta)
        for k, v in timer.seconds.items():
            acc["timing"][k] = acc["timing"].get(k, 0.0) + v

    @staticmethod
    def _labels(events: Any, result: JetScores) -> np.ndarray:
        """Truth label of each selected jet (-1 where the file has no GenPart)."""
        jc = result.jets
        if not len(jc) or "GenPart" not in ak.fields(events):
            return np.full(len(jc), UNKNOWN, dtype=np.int8)
        return top_labels(events, jc.event_index, ak.to_numpy(jc.jets.eta), ak.to_numpy(jc.jets.phi))

    def _write_scores(self, result: JetScores, labels: np.ndarray, meta: dict[str, Any]) -> None:
        """Per-jet scores of the scored jets of this chunk as one parquet file (atomic)."""
        jc = result.jets
        ok = jc.valid
        folder = Path(self.save_scores or ".")
        folder.mkdir(parents=True, exist_ok=True)
        table = {
            "event_index": jc.event_index[ok] + int(meta.get("entrystart") or 0),
            "jet_index": jc.jet_index[ok],
            "pt": ak.to_numpy(jc.jets.pt)[ok],
            "eta": ak.to_numpy(jc.jets.eta)[ok],
            "truth": labels[ok],
            **{f"score_{k}": v[ok] for k, v in result.scores.items()},
        }
        stem = (f"{meta.get('dataset', 'unknown')}_{Path(str(meta.get('filename', 'x'))).stem}_"
                f"{meta.get('entrystart', 0)}_{meta.get('entrystop', 0)}")
        tmp = folder / f".{stem}.{uuid.uuid4().hex}.tmp"
        ak.to_parquet(ak.zip({k: np.asarray(v) for k, v in table.items()}), tmp)
        os.replace(tmp, folder / f"{stem}.parquet")

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def _length(events: Any) -> int | None:
    """Events in a chunk whose metadata has no entry range (None if even that fails)."""
    try:
        return int(len(events))
    except Exception:  # noqa: BLE001 - the chunk is being skipped because it is unreadable
        return None


def _where(err: BaseException) -> str:
    """``file:line in function`` of the innermost frame that raised ``err``."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename}:{f.lineno} in {f.name}"[-200:]

