"""Histograms of a run: factories, filling, ROC curves from histograms.

The processor output holds, per dataset (``output["datasets"][name]``):

* ``scores``: score (fine, >= 1000 bins on [0, 1]) x tagger x fat-jet pT x soft-drop
  mass x truth (-1 unknown / 0 not top / 1 top), jet counts. Its ``label`` is the
  selection (e.g. ``"550 < pT < 650 GeV, |eta| < 2"``);
* ``working_points``: tagger x working point (eS30/50/70 thresholds from the
  artifact's test metrics) x passed x pT x truth;
* ``cutflow``, ``tagger_counts`` (per tagger: ``scored``, ``not_scored``, ``out_of_domain``: scored jets
  outside the training domain its artifact records), ``timing`` (seconds per stage), ``skipped``;
* ``nonfinite_inputs``: one record per chunk that had jets with a NaN / inf model input
  (``file``, ``entrystart``, ``entrystop``, ``jets``, ``features``: ``"<tagger>: <feature>"``
  -> jets); those jets are in the cutflow's ``nonfinite_inputs`` row, not in ``scored``.

**Totals agree with the cutflow**: every scored jet lands inside the axes (no flow bin), so
``scores[{"tagger": t}].sum()`` equals ``tagger_counts[t]["scored"]``: a score of exactly
1.0 goes into the last score bin, a soft-drop mass below 0 (FastJet can give -1e-6) into
the first and one above the last edge (300 GeV) into the last mass bin, and a pT outside
the pT axis into its first/last bin. Only a file without ``FatJet_msoftdrop`` is
different: its jets sit in the mass underflow (count them with ``sum(flow=True)``).
Plots live in :mod:`hepml_coffea.analysis.plots`, which imports this module (never the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import awkward as ak
import hist
import numpy as np

if TYPE_CHECKING:
    from hepml_coffea.selection import Selection

__all__ = [
    "CUTFLOW_KEYS",
    "datasets_of",
    "empty_dataset_output",
    "fill_scores",
    "jets_from_hist",
    "rejection_from_hist",
    "roc_from_hist",
    "score_histogram",
    "selection_label",
    "signal_background",
    "working_point_histogram",
]

#: cutflow entries, in order
CUTFLOW_KEYS: tuple[str, ...] = ("events", "events_skipped", "fat_jets", "selected", "no_constituents",
                                 "nonfinite", "bad_association_rows", "nonfinite_inputs", "scored")

_MSD_EDGES = (0.0, 300.0)


def _pt_range(selection: Selection) -> tuple[float, float]:
    lo = float(selection.pt_min) if np.isfinite(selection.pt_min) else 0.0
    hi = float(selection.pt_max) if np.isfinite(selection.pt_max) else max(lo + 1.0, 3000.0)
    return lo, hi


def _pt_axis(selection: Selection) -> hist.axis.Regular:
    lo, hi = _pt_range(selection)
    return hist.axis.Regular(5, lo, hi, name="pt", label="fat-jet $p_T$ [GeV]")


def score_histogram(taggers: Sequence[str], selection: Selection, score_bins: int = 1000) -> hist.Hist:
    """Empty score histogram (counts of jets); its ``label`` describes the selection."""
    return hist.Hist(
        hist.axis.StrCategory(list(taggers), name="tagger", growth=True),
        hist.axis.Regular(score_bins, 0.0, 1.0, name="score", label="tagger score"),
        _pt_axis(selection),
        hist.axis.Regular(10, 0.0, 300.0, name="msoftdrop", label="soft-drop mass [GeV]"),
        hist.axis.IntCategory([-1, 0, 1], name="truth", label="truth (-1 unknown, 0 not top, 1 top)"),
        storage=hist.storage.Double(),
        label=selection.describe(),
    )


def working_point_histogram(taggers: Sequence[str], selection: Selection) -> hist.Hist:
    """Empty pass/fail histogram at the artifacts' working points."""
    return hist.Hist(
        hist.axis.StrCategory(list(taggers), name="tagger", growth=True),
        hist.axis.StrCategory(["eS30", "eS50", "eS70"], name="wp", growth=True),
        hist.axis.Boolean(name="passed"),
        _pt_axis(selection),
        hist.axis.IntCategory([-1, 0, 1], name="truth"),
        storage=hist.storage.Double(),
    )


def roc_from_hist(signal: Any, background: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC (eS, eB) from score histograms: fractions of jets at or above each bin edge.

    ``signal`` / ``background`` are counts per score bin (e.g. from
    :func:`signal_background`) or 1D ``hist.Hist`` over ``score``.
    """
    def counts(x: Any) -> np.ndarray:
        if isinstance(x, hist.Hist):
            return np.asarray(x.project("score").values(), dtype=np.float64)
        return np.asarray(x, dtype=np.float64)

    s = counts(signal)
    b = counts(background)
    cs = np.cumsum(s[::-1])  # jets with score >= lower edge of bin i, from the top bin down
    cb = np.cumsum(b[::-1])
    if cs[-1] <= 0 or cb[-1] <= 0:
        msg = "ROC needs signal and background entries"
        raise ValueError(msg)
    return np.r_[0.0, cs / cs[-1]], np.r_[0.0, cb / cb[-1]]


def jets_from_hist(signal: Any, background: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 top, 0 not) and scores of the jets counted in two score histograms, each
    jet at its bin's index: only the order of the scores matters for a ROC, its AUC or a
    working point, so the statistics of :mod:`hepml_coffea.evaluation` apply to binned jets.

    Shapes:
        signal, background: (n_bins,) counts -> labels (n_jets,) int8, scores (n_jets,)
    """
    ns = np.rint(np.asarray(signal, dtype=np.float64)).astype(np.int64)
    nb = np.rint(np.asarray(background, dtype=np.float64)).astype(np.int64)
    bins = np.arange(len(ns), dtype=np.float64)
    scores = np.r_[np.repeat(bins, ns), np.repeat(bins, nb)]
    labels = np.r_[np.ones(int(ns.sum()), dtype=np.int8), np.zeros(int(nb.sum()), dtype=np.int8)]
    return labels, scores


def rejection_from_hist(signal: Any, background: Any, eff: float) -> dict[str, Any]:
    """Background rejection at signal efficiency ``eff`` from score histograms, with its
    68 % Clopper-Pearson interval (:func:`hepml_coffea.stats.rejection_at_efficiency`
    on :func:`jets_from_hist`): the working point is the highest score-bin edge keeping at
    least ``eff`` of the top jets (``signal_efficiency`` is the fraction reached).

    Shapes:
        signal, background: (n_bins,) counts -> scalars
    """
    from hepml_coffea.stats import rejection_at_efficiency

    labels, scores = jets_from_hist(signal, background)
    if not labels.any():
        msg = "no top jets in the histogram: no working point"
        raise ValueError(msg)
    return rejection_at_efficiency(labels, scores, eff)


def selection_label(output: Mapping[str, Any]) -> str:
    """The selection of a run (from its score histograms' label), e.g. for plot titles."""
    for ds in datasets_of(output).values():
        label = getattr(ds.get("scores"), "label", None)
        if label:
            return str(label)
    return ""


def datasets_of(output: Mapping[str, Any]) -> dict[str, Any]:
    """The per-dataset accumulators of a run output.

    Accepts the output of :func:`hepml_coffea.batch.run.run_fileset` or of a coffea ``Runner``
    with :class:`~hepml_coffea.analysis.processor.TaggerProcessor` (``{"datasets": {...}, ...}``),
    or an already-unwrapped ``{dataset: accumulator}`` mapping.
    """
    inner = output.get("datasets") if isinstance(output, Mapping) else None
    src = inner if isinstance(inner, Mapping) else output
    return {k: v for k, v in src.items() if isinstance(v, Mapping) and "scores" in v}


def empty_dataset_output(taggers: Sequence[Any], selection: Selection, score_bins: int = 1000) -> dict[str, Any]:
    """A dataset's accumulator with nothing in it (``taggers``: configs with ``name`` and ``working_points``)."""
    names = [t.name for t in taggers]
    return {
        "scores": score_histogram(names, selection, score_bins),
        "working_points": working_point_histogram(names, selection),
        "cutflow": {k: 0 for k in CUTFLOW_KEYS},
        "tagger_counts": {n: {"scored": 0, "not_scored": 0, "out_of_domain": 0} for n in names},
        "timing": {},
        "skipped": [],
        "nonfinite_inputs": [],
    }


def _inside(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clamp into [lo, hi): values on or past an edge go into the first / last bin."""
    return np.clip(x, lo, np.nextafter(hi, lo))


def fill_scores(acc: dict[str, Any], taggers: Sequence[Any], result: Any, labels: np.ndarray,
                n_events: int) -> None:
    """Fill a dataset accumulator from the :class:`~hepml_coffea.scoring.JetScores` of a chunk.

    Parameters
    ----------
    acc : the dataset's accumulator (see :func:`empty_dataset_output`)
    taggers : tagger configs (name, working_points)
    result : scores of the selected jets of the chunk
    labels : (n_selected,) truth labels
    n_events : events in the chunk
    """
    cf = acc["cutflow"]
    cf["events"] += int(n_events)
    cf["fat_jets"] += int(result.n_fatjets)
    for k in ("selected", "no_constituents", "nonfinite", "bad_association_rows", "nonfinite_inputs", "scored"):
        cf[k] += int(result.counts.get(k, 0))
    jc = result.jets
    valid = np.asarray(jc.valid, dtype=bool)
    if getattr(result, "nonfinite_inputs", None) is not None:
        valid = valid & ~np.asarray(result.nonfinite_inputs, dtype=bool)  # scored by no tagger
    h = acc["scores"]
    pt_lo, pt_hi = h.axes["pt"].edges[0], h.axes["pt"].edges[-1]
    pt = _inside(np.asarray(ak.to_numpy(jc.jets.pt), dtype=np.float64), pt_lo, pt_hi)
    if "msoftdrop" in ak.fields(jc.jets):
        msd = _inside(np.asarray(ak.to_numpy(jc.jets.msoftdrop), dtype=np.float64), *_MSD_EDGES)
    else:
        msd = np.full(len(jc), -1.0)  # no soft-drop mass in the file: underflow, documented
    for t in taggers:
        s = np.asarray(result.scores[t.name])
        ok = valid & np.isfinite(s)
        counts = acc["tagger_counts"][t.name]
        counts["scored"] += int(ok.sum())
        counts["not_scored"] += int((valid & ~ok).sum())
        inside = (getattr(result, "in_domain", None) or {}).get(t.name)
        if inside is not None:  # scored jets outside the tagger's training domain (scored all the same)
            counts["out_of_domain"] = counts.get("out_of_domain", 0) + int((ok & ~np.asarray(inside)).sum())
        if not ok.any():
            continue
        sc = _inside(s[ok].astype(np.float64), 0.0, 1.0)
        h.fill(tagger=t.name, score=sc, pt=pt[ok], msoftdrop=msd[ok], truth=labels[ok])
        for wp, thr in t.working_points.items():
            acc["working_points"].fill(tagger=t.name, wp=wp, passed=(s[ok] >= thr), pt=pt[ok], truth=labels[ok])


def _background_datasets(acc: Mapping[str, Any]) -> list[str]:
    """Datasets with no truth-matched top jet (pure background samples such as QCD)."""
    out = []
    for name, ds in acc.items():
        if isinstance(ds, Mapping) and "scores" in ds and ds["scores"][{"truth": hist.loc(1)}].sum() == 0 \
                and ds["scores"][{"truth": hist.loc(0)}].sum() > 0:
            out.append(name)
    return out


def signal_background(acc: Mapping[str, Any], tagger: str, pt_bin: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Score distributions (counts per score bin) of signal and background jets.

    Signal: truth-matched top jets of every dataset. Background: the not-top jets of the
    background datasets (those with no top jet at all, e.g. QCD), so that partially
    contained top jets of a ttbar sample do not count as background; if there is no such
    dataset, every not-top jet. ``pt_bin`` restricts to one bin of the pT axis.
    """
    acc = datasets_of(acc)
    bkg_names = set(_background_datasets(acc))
    s = None
    b = None
    for name, ds in acc.items():
        if not isinstance(ds, Mapping) or "scores" not in ds:
            continue
        h = ds["scores"]
        if tagger not in list(h.axes["tagger"]):
            continue
        sel: dict[str, Any] = {"tagger": tagger}
        if pt_bin is not None:
            sel["pt"] = pt_bin
        hs = h[{**sel, "truth": hist.loc(1)}].project("score").values()
        s = hs if s is None else s + hs
        if not bkg_names or name in bkg_names:
            hb = h[{**sel, "truth": hist.loc(0)}].project("score").values()
            b = hb if b is None else b + hb
    if s is None or b is None:
        msg = f"no signal or background histograms for tagger {tagger}"
        raise ValueError(msg)
    return s, b
