"""The evaluation set: read, select, truth-match and score every jet, with a cache.

:func:`load_eval_sample` turns ttbar and QCD files into an :class:`EvalSample` of per-jet
columns; scores come from the scoring API analyses use
(:meth:`hepml_coffea.scoring.FatJetTagger.score_constituents`). Scores are cached per
(file, selection, artifact hash) and jet columns per (file, selection, code digest), so
re-evaluations after a retraining only score what changed.

Truth: signal = fully contained top (top and its three quarks within dR < 0.8 of the jet
axis, :func:`hepml_coffea.data.truth.top_labels`) or top-only matched (the top within 0.8,
:func:`top_only_matched`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCORING_PATH", "EvalSample", "artifact_hash", "load_eval_sample", "score_jets", "top_only_matched"]

_log = logging.getLogger(__name__)

SCORING_PATH = "hepml_coffea.scoring.FatJetTagger.score_constituents"
TRUTH_CONTAINED, TRUTH_TOP_ONLY, TRUTH_UNMATCHED, TRUTH_QCD = 2, 1, 0, -1


def top_only_matched(events: Any, event_index: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray,
                     radius: float = 0.8) -> np.ndarray:
    """Whether a hadronically decaying top quark lies within ``radius`` of each jet axis.

    The looser of the two truth definitions (no requirement on the decay quarks); the
    strict one is :func:`hepml_coffea.data.truth.top_labels`.

    Shapes:
        event_index, jet_eta, jet_phi: (N,) -> (N,) bool
    """
    from hepml_coffea.data.truth import TOP, top_labels

    return top_labels(events, event_index, jet_eta, jet_phi, radius=radius, require_quarks=False) == TOP


@dataclass
class EvalSample:
    """Per-jet columns of an evaluation set (jets in the selection window only).

    Attributes
    ----------
    pt, eta, msd : (N,) jet kinematics and soft-drop mass
    truth : (N,) int8: 2 fully contained top, 1 top-only matched, -1 QCD file
        (ttbar jets with no top within 0.8 are not kept; they are counted in ``counts``)
    scores : tagger -> (N,) float32 scores (NaN where not scored)
    files : file names read
    counts : per-process jet counts (e.g. ``ttbar_unmatched``)
    scoring_path : which API produced the scores
    cache_hits : (file, tagger) score arrays read from the cache instead of scored now
    """

    pt: np.ndarray
    eta: np.ndarray
    msd: np.ndarray
    truth: np.ndarray
    scores: dict[str, np.ndarray]
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    scoring_path: str = ""
    cache_hits: int = 0

    def labels(self, definition: str = "contained") -> tuple[np.ndarray, np.ndarray]:
        """(mask of jets used, labels) for signal = ``contained`` or ``top-only`` matched tops."""
        if definition == "contained":
            use = (self.truth == TRUTH_CONTAINED) | (self.truth == TRUTH_QCD)
        elif definition == "top-only":
            use = self.truth != TRUTH_UNMATCHED
        else:
            msg = f"truth definition {definition!r} unknown; choose 'contained' or 'top-only'"
            raise ValueError(msg)
        return use, (self.truth[use] >= TRUTH_TOP_ONLY).astype(np.int8)


def _code_digest() -> str:
    """Digest of the sources that turn a file into model inputs (constituents, truth,
    representations), so cached jets and scores are redone when that code changes."""
    root = Path(__file__).parents[1]  # the package
    h = hashlib.sha256()
    files = [root / "data" / "constituents.py", root / "data" / "truth.py", root / "data" / "geometry.py",
             root / "selection.py", root / "knn.py", *(root / "representations").glob("*.py")]
    missing = [str(f.relative_to(root)) for f in files if not f.exists()]
    if missing:  # a moved module must not silently drop out of the cache key
        msg = f"evaluation cache key: {missing} not found in the package (update _code_digest)"
        raise RuntimeError(msg)
    for f in sorted(files):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _file_key(path: Path, extra: Any) -> str:
    st = path.stat()
    blob = json.dumps([path.name, st.st_size, st.st_mtime_ns, extra, _code_digest()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def artifact_hash(name: str) -> str:
    """The content hash of a tagger artifact (its manifest's ``hash``)."""
    from hepml_coffea.artifacts import resolve_artifact

    return str(json.loads((resolve_artifact(name) / "manifest.json").read_text())["hash"])


def score_jets(jc: Any, taggers: Sequence[str], device: str = "cpu",
               batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Scores of ``taggers`` for the flat jets of ``jc`` through the analysis scoring path.

    Calls :meth:`hepml_coffea.scoring.FatJetTagger.score_constituents`, the code the
    processor and analyses use (same constituents, representations, engine).

    Returns
    -------
    tagger (as given) -> (N,) float32 scores, NaN where a jet could not be scored

    Shapes:
        jc of N jets -> each score (N,)
    """
    from hepml_coffea.scoring import FatJetTagger

    tagger = FatJetTagger(taggers=list(taggers), device=device, batch_size=batch_size)
    got = tagger.score_constituents(jc)
    return {given: np.asarray(got[cfg.name], dtype=np.float32) for given, cfg in zip(taggers, tagger.taggers)}


def load_eval_sample(signal: Sequence[str | os.PathLike[str]], background: Sequence[str | os.PathLike[str]],
                     taggers: Sequence[str], *, selection: Any = None, cache: str | os.PathLike[str] | None = None,
                     device: str = "cpu", batch_size: int | None = 512, log: Any = _log.info) -> EvalSample:
    """Read, select, truth-match and score every jet of the evaluation files.

    Parameters
    ----------
    signal : ttbar files (jets kept when a top is within 0.8; labelled contained / top-only)
    background : QCD files (every jet in the window)
    taggers : shipped tagger names or artifact paths
    selection : :class:`hepml_coffea.selection.Selection` (default reference window)
    cache : folder for per-file jet columns and per-(file, artifact) scores
    device, batch_size : scoring options
    log : callable for progress lines (default: INFO on logger ``hepml_coffea.evaluation.dataset``;
        ``None`` for silence)
    """
    import awkward as ak

    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays
    from hepml_coffea.selection import Selection
    from hepml_coffea.data.truth import TOP, top_labels

    selection = selection or Selection()
    if not signal or not background:
        msg = f"need signal (ttbar) and background (QCD) files; got {len(signal)} and {len(background)}"
        raise ValueError(msg)
    cache_dir = Path(cache) if cache else None
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
    hashes = {t: artifact_hash(t) for t in taggers}
    from hepml_coffea.scoring import FatJetTagger

    # the branches the taggers' specs read beyond the standard ones (a BYO spec's d0, ...)
    configured = FatJetTagger(taggers=list(taggers), device=device)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("pt", "eta", "msd", "truth")}
    scores: dict[str, list[np.ndarray]] = {t: [] for t in taggers}
    counts = {"ttbar_contained": 0, "ttbar_top_only": 0, "ttbar_unmatched": 0, "qcd": 0}
    hits = 0
    files = [(Path(f), True) for f in signal] + [(Path(f), False) for f in background]
    for path, is_sig in files:
        if not path.exists():
            msg = f"evaluation file {path} does not exist"
            raise FileNotFoundError(msg)
        t0 = time.perf_counter()
        base_key = _file_key(path, selection.to_dict())
        col_file = cache_dir / f"{path.stem}.{base_key}.jets.npz" if cache_dir else None
        todo = [t for t in taggers if not (cache_dir and (cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy").exists())]
        jc = None
        if col_file is not None and col_file.exists():
            with np.load(col_file) as z:
                c = {k: z[k] for k in ("pt", "eta", "msd", "truth", "n_unmatched")}
        else:
            c = None
        if c is None or todo:
            ev = read_arrays(path)
            jc = fatjet_constituents(ev, cand_fields=configured.cand_fields, jet_fields=configured.jet_fields)
            keep = selection.mask(jc) & jc.valid
            jc = jc.select(keep)
            eta = np.asarray(ak.to_numpy(jc.jets.eta), dtype=np.float64)
            phi = np.asarray(ak.to_numpy(jc.jets.phi), dtype=np.float64)
            if is_sig:
                contained = top_labels(ev, jc.event_index, eta, phi) == TOP
                matched = top_only_matched(ev, jc.event_index, eta, phi) | contained
                truth = np.where(contained, TRUTH_CONTAINED, np.where(matched, TRUTH_TOP_ONLY, TRUTH_UNMATCHED))
            else:
                truth = np.full(len(jc), TRUTH_QCD)
            n_unmatched = int((truth == TRUTH_UNMATCHED).sum())
            kept = truth != TRUTH_UNMATCHED
            jc = jc.select(kept)
            msd = (np.asarray(ak.to_numpy(jc.jets.msoftdrop), dtype=np.float64)
                   if "msoftdrop" in ak.fields(jc.jets) else np.full(len(jc), np.nan))
            c = {"pt": np.asarray(ak.to_numpy(jc.jets.pt), dtype=np.float64), "eta": eta[kept], "msd": msd,
                 "truth": truth[kept].astype(np.int8), "n_unmatched": np.asarray(n_unmatched)}
            if col_file is not None:
                np.savez(col_file, **c)
        got: dict[str, np.ndarray] = {}
        if todo:
            assert jc is not None
            got = score_jets(jc, todo, device=device, batch_size=batch_size)
            if cache_dir:
                for t in todo:
                    np.save(cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy", got[t])
        hits += len(taggers) - len(todo)
        for t in taggers:
            sc = got[t] if t in got else np.load(cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy")  # type: ignore[operator]
            if len(sc) != len(c["pt"]):
                msg = f"cached scores of {t} for {path} have {len(sc)} jets, expected {len(c['pt'])}; delete the cache"
                raise ValueError(msg)
            scores[t].append(sc)
        for k, col in cols.items():
            col.append(c[k])
        tr = c["truth"]
        if is_sig:
            counts["ttbar_contained"] += int((tr == TRUTH_CONTAINED).sum())
            counts["ttbar_top_only"] += int((tr == TRUTH_TOP_ONLY).sum())
            counts["ttbar_unmatched"] += int(c["n_unmatched"])
        else:
            counts["qcd"] += len(tr)
        if log:
            log(f"{path.name}: {len(tr)} jets kept, scored {todo or 'from cache'} in {time.perf_counter() - t0:.0f} s")
    return EvalSample(
        pt=np.concatenate(cols["pt"]), eta=np.concatenate(cols["eta"]), msd=np.concatenate(cols["msd"]),
        truth=np.concatenate(cols["truth"]), scores={t: np.concatenate(v) for t, v in scores.items()},
        files=[p.name for p, _ in files], counts=counts, scoring_path=SCORING_PATH, cache_hits=hits,
    )
