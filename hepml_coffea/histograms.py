"""Histogram factories, ROC curves from histograms, and the standard plots of a run.

The processor output per dataset holds

* ``scores``: score (fine, >= 1000 bins on [0, 1]) x tagger x fat-jet pT x soft-drop
  mass x truth (-1 unknown / 0 not top / 1 top), jet counts;
* ``working_points``: tagger x working point (eS30/50/70 thresholds from the
  artifact's test metrics) x passed x pT x truth;
* ``cutflow``, ``tagger_counts``, ``timing`` (seconds per stage), ``skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hist
import numpy as np

if TYPE_CHECKING:
    from hepml_coffea.selection import Selection

__all__ = ["score_histogram", "working_point_histogram", "roc_from_hist", "plot_all"]

TRUTH_LABELS = {-1: "unknown", 0: "not top", 1: "top"}


def _pt_axis(selection: Selection) -> hist.axis.Regular:
    return hist.axis.Regular(5, selection.pt_min, selection.pt_max, name="pt", label="fat-jet $p_T$ [GeV]")


def score_histogram(taggers: Sequence[str], selection: Selection, score_bins: int = 1000) -> hist.Hist:
    """Empty score histogram (counts of jets)."""
    return hist.Hist(
        hist.axis.StrCategory(list(taggers), name="tagger", growth=True),
        hist.axis.Regular(score_bins, 0.0, 1.0, name="score", label="tagger score"),
        _pt_axis(selection),
        hist.axis.Regular(10, 0.0, 300.0, name="msoftdrop", label="soft-drop mass [GeV]"),
        hist.axis.IntCategory([-1, 0, 1], name="truth", label="truth (-1 unknown, 0 not top, 1 top)"),
        storage=hist.storage.Double(),
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


def roc_from_hist(h: hist.Hist, tagger: str, signal: Any, background: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC (eS, eB) of ``tagger`` from score histograms: cumulative counts above each bin edge.

    ``signal``/``background`` are score histograms already projected on ``score``
    (e.g. ``out['ttbar']['scores'][{'tagger': 'pfn', 'truth': 1}]``) or whole
    histograms from which ``tagger`` is taken and summed over everything else.
    """
    def proj(x: Any) -> np.ndarray:
        if isinstance(x, hist.Hist):
            if "tagger" in x.axes.name:
                x = x[{"tagger": tagger}]
            return np.asarray(x.project("score").values(), dtype=np.float64)
        return np.asarray(x, dtype=np.float64)

    s = proj(signal)
    b = proj(background)
    # jets with score >= lower edge of bin i, for i from the top bin down
    cs = np.cumsum(s[::-1])
    cb = np.cumsum(b[::-1])
    if cs[-1] <= 0 or cb[-1] <= 0:
        msg = f"ROC for {tagger}: need signal and background entries"
        raise ValueError(msg)
    _ = h
    return np.r_[0.0, cs / cs[-1]], np.r_[0.0, cb / cb[-1]]


def _signal_background(acc: Mapping[str, Any], tagger: str) -> tuple[np.ndarray, np.ndarray]:
    s = None
    b = None
    for ds in acc.values():
        if not isinstance(ds, Mapping) or "scores" not in ds:
            continue
        h = ds["scores"]
        if tagger not in list(h.axes["tagger"]):
            continue
        hs = h[{"tagger": tagger, "truth": hist.loc(1)}].project("score").values()
        hb = h[{"tagger": tagger, "truth": hist.loc(0)}].project("score").values()
        s = hs if s is None else s + hs
        b = hb if b is None else b + hb
    if s is None or b is None:
        msg = f"no histograms for tagger {tagger}"
        raise ValueError(msg)
    return s, b


def plot_all(acc: Mapping[str, Any], outdir: Path, plt: Any) -> list[Path]:
    """Score distributions, ROC curves, rejection vs pT, cutflow -> PNG files."""
    from hepml_coffea.plots import plot_roc

    written: list[Path] = []
    datasets = {k: v for k, v in acc.items() if isinstance(v, Mapping) and "scores" in v}
    if not datasets:
        msg = "the output has no datasets with score histograms"
        raise ValueError(msg)
    taggers: list[str] = []
    for ds in datasets.values():
        for t in ds["scores"].axes["tagger"]:
            if t not in taggers:
                taggers.append(t)

    # score distributions per dataset and tagger
    for t in taggers:
        fig, ax = plt.subplots(figsize=(8, 6))
        for name, ds in datasets.items():
            h = ds["scores"]
            if t not in list(h.axes["tagger"]):
                continue
            proj = h[{"tagger": t}].project("score")[:: hist.rebin(20)]
            total = proj.values().sum()
            if total > 0:
                ax.stairs(proj.values() / total, proj.axes[0].edges, label=name)
        ax.set_yscale("log")
        ax.set_xlabel(f"{t} score")
        ax.set_ylabel("fraction of jets")
        ax.legend()
        p = outdir / f"score_{t}.png"
        fig.savefig(p, dpi=80, bbox_inches="tight")
        plt.close(fig)
        written.append(p)

    # ROC from histograms (truth-labelled jets of all datasets)
    curves = {}
    for t in taggers:
        try:
            s, b = _signal_background(datasets, t)
            curves[t] = roc_from_hist(None, t, s, b)  # type: ignore[arg-type]
        except ValueError:
            continue
    if curves:
        written.append(plot_roc(curves, outdir / "roc.png"))

        # background rejection vs pT at eS = 50 %
        fig, ax = plt.subplots(figsize=(8, 6))
        for t in curves:
            rej = []
            edges = None
            for name, ds in datasets.items():
                h = ds["scores"]
                if t not in list(h.axes["tagger"]):
                    continue
                edges = h.axes["pt"].edges
                break
            if edges is None:
                continue
            for i in range(len(edges) - 1):
                s_tot = b_tot = None
                for ds in datasets.values():
                    h = ds["scores"]
                    if t not in list(h.axes["tagger"]):
                        continue
                    hs = h[{"tagger": t, "truth": hist.loc(1), "pt": i}].project("score").values()
                    hb = h[{"tagger": t, "truth": hist.loc(0), "pt": i}].project("score").values()
                    s_tot = hs if s_tot is None else s_tot + hs
                    b_tot = hb if b_tot is None else b_tot + hb
                try:
                    es, eb = roc_from_hist(None, t, s_tot, b_tot)  # type: ignore[arg-type]
                    e = float(np.interp(0.5, es, eb))
                    rej.append(1.0 / e if e > 0 else np.nan)
                except (ValueError, TypeError):
                    rej.append(np.nan)
            centres = 0.5 * (edges[1:] + edges[:-1])
            ax.plot(centres, rej, marker="o", label=t)
        ax.set_yscale("log")
        ax.set_xlabel("fat-jet $p_T$ [GeV]")
        ax.set_ylabel("$1/\\epsilon_B$ at $\\epsilon_S$ = 50%")
        ax.legend(fontsize=12)
        p = outdir / "rejection_vs_pt.png"
        fig.savefig(p, dpi=80, bbox_inches="tight")
        plt.close(fig)
        written.append(p)

    # cutflow
    fig, ax = plt.subplots(figsize=(9, 6))
    width = 0.8 / max(len(datasets), 1)
    for i, (name, ds) in enumerate(datasets.items()):
        cf = ds["cutflow"]
        keys = list(cf)
        ax.bar(np.arange(len(keys)) + i * width, [cf[k] for k in keys], width=width, label=name)
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=30, ha="right", fontsize=12)
    ax.set_yscale("log")
    ax.set_ylabel("count")
    ax.legend()
    p = outdir / "cutflow.png"
    fig.savefig(p, dpi=80, bbox_inches="tight")
    plt.close(fig)
    written.append(p)
    return written
