"""A teacher's scores on the training jets, computed once and stored beside the data.

The full ParticleNet scores ~200 jets/s per CPU thread, so its scores on a training set are
computed once per file and kept in ``<data dir>/teacher/<file stem>.<teacher>-<hash12>.<top|all>.npz``
(event number, jet pT and score of every selected jet, in the dataset's order) with a
``manifest.json`` beside them (data file sha256, teacher name and hash, selection, jets,
seconds). A cache entry is used only when the data file, the teacher artifact and the
selection are the ones it was made from, and its events and jet pT equal the jets being
loaded; anything else is recomputed (a stale cache never feeds a training).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepml_coffea.artifacts.sealing import file_sha256 as _sha256

__all__ = ["cached_teacher_scores", "teacher_cache_path"]

log = logging.getLogger(__name__)


def teacher_cache_path(data_file: str | os.PathLike[str], teacher_name: str, teacher_hash: str, want_top: bool) -> Path:
    """Where the teacher scores of ``data_file``'s selected jets are kept."""
    p = Path(data_file)
    return p.parent / "teacher" / f"{p.stem}.{teacher_name}-{teacher_hash[:12]}.{'top' if want_top else 'all'}.npz"


def cached_teacher_scores(data_file: str | os.PathLike[str], jets: Any, events: np.ndarray, tagger: Any,
                          want_top: bool, selection: Any) -> np.ndarray:
    """The teacher's score of each jet of ``jets`` (the file's selected jets, in order).

    Parameters
    ----------
    data_file : the generated file the jets come from
    jets : :class:`~hepml_coffea.data.constituents.JetConstituents` of the selected jets, read
        with the teacher's fields
    events : (n,) event number of each jet
    tagger : a one-tagger :class:`~hepml_coffea.scoring.FatJetTagger` (the teacher)
    want_top, selection : how the jets were selected (part of the cache key)

    Returns
    -------
    np.ndarray
        (n,) float32 scores, NaN where the teacher gave none

    Shapes:
        jets of n jets -> (n,)
    """
    cfg = tagger.taggers[0]
    path = teacher_cache_path(data_file, cfg.name, cfg.hash, want_top)
    pt = np.asarray(ak.to_numpy(jets.jets.pt), dtype=np.float32)
    key = {"teacher": cfg.name, "teacher_hash": cfg.hash, "selection": selection.describe(),
           "truth_matched_top": bool(want_top)}
    data_sha = _sha256(Path(data_file))
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            same = (meta.get("key") == key and meta.get("data_sha256") == data_sha
                    and np.array_equal(z["event"], events) and np.array_equal(z["pt"], pt))
            if same:
                return np.asarray(z["score"], dtype=np.float32)
        log.info("teacher cache %s does not match the jets being loaded: recomputing", path)
    t0 = time.perf_counter()
    score = tagger.score_constituents(jets)[cfg.name].astype(np.float32)
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "data_file": Path(data_file).name, "data_sha256": data_sha, "jets": len(score),
            "scored": int(np.isfinite(score).sum()), "seconds": round(seconds, 2)}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npz")
    np.savez(tmp, event=np.asarray(events), pt=pt, score=score, meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)
    _update_manifest(path.parent, path.name, {**meta, "npz_sha256": _sha256(path)})
    log.info("teacher %s on %s: %d jets in %.0f s (%.0f jets/s)", cfg.name, Path(data_file).name, len(score),
             seconds, len(score) / max(seconds, 1e-9))
    return score


def _update_manifest(folder: Path, name: str, entry: dict[str, Any]) -> None:
    man = folder / "manifest.json"
    doc = json.loads(man.read_text()) if man.is_file() else {
        "description": "teacher scores on the training jets (hepml_coffea.training.teacher); recomputed "
                       "whenever the data file, the teacher or the selection differ", "files": {}}
    doc["files"][name] = entry
    tmp = man.with_name(f".manifest.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, man)
