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

__all__ = ["score_histogram", "working_point_histogram", "roc_from_hist", "signal_background", "plot_all"]

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
            s, b = signal_background(datasets, t)
            curves[t] = roc_from_hist(s, b)
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
            limits = []
            for i in range(len(edges) - 1):
                try:
                    s_tot, b_tot = signal_background(datasets, t, pt_bin=i)
                    es, eb = roc_from_hist(s_tot, b_tot)
                except ValueError:
                    rej.append(np.nan)
                    limits.append(np.nan)
                    continue
                e = float(np.interp(0.5, es, eb))
                # no background jet passes: only a lower limit, 1/eB > number of background jets
                rej.append(1.0 / e if e > 0 else np.nan)
                limits.append(np.nan if e > 0 else float(np.sum(b_tot)))
            centres = 0.5 * (edges[1:] + edges[:-1])
            line = ax.plot(centres, rej, marker="o", label=t)[0]
            ax.plot(centres, limits, marker="^", linestyle="none", color=line.get_color())
        ax.set_yscale("log")
        ax.set_xlabel("fat-jet $p_T$ [GeV]")
        ax.set_ylabel("$1/\\epsilon_B$ at $\\epsilon_S$ = 50% ($\\blacktriangle$: lower limit)")
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
