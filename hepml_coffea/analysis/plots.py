"""Plots (PNG, mplhep CMS-like style): ROC curves, loss curves, score distributions,
background rejection vs pT, cutflow. ``hepml-coffea plot OUT`` calls :func:`plot_output`.

Each plot is drawn on its own pyplot-free figure inside mplhep's style as a context
(:func:`hepml_coffea.plotstyle.plot_style`); ``draw_*`` functions take the axes.
matplotlib is imported on the first call, never at import. :func:`plot_roc`, :func:`draw_roc`
and :func:`plot_loss` live in :mod:`hepml_coffea.curveplots` (shared with training) and are
re-exported here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import hist

from hepml_coffea.analysis.histograms import datasets_of, rejection_from_hist, roc_from_hist, selection_label, signal_background
from hepml_coffea.curveplots import draw_roc, plot_loss, plot_roc
from hepml_coffea.plotstyle import TAGGER_COLORS, new_figure, plot_style, save_figure

__all__ = ["draw_roc", "plot_all", "plot_loss", "plot_output", "plot_roc"]


def plot_output(output: str | os.PathLike[str] | Mapping[str, Any], outdir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write all plots for a processor output (a ``.coffea`` file or the dict)."""
    if isinstance(output, Mapping):
        acc = output
        base = Path(outdir or "plots")
    else:
        from coffea.util import load

        acc = load(output)
        base = Path(outdir) if outdir else Path(output).with_suffix("").parent / (Path(output).stem + "_plots")
    base.mkdir(parents=True, exist_ok=True)
    return plot_all(acc, base)


def plot_all(acc: Mapping[str, Any], outdir: Path) -> list[Path]:
    """Score distributions, ROC curves (titled with the run's selection), rejection vs pT
    and the cutflow of a run output -> PNG files in ``outdir``."""
    with plot_style():
        return _plot_all(acc, Path(outdir))


def _plot_all(acc: Mapping[str, Any], outdir: Path) -> list[Path]:
    written: list[Path] = []
    datasets = datasets_of(acc)
    title = "top vs QCD" + (f", {selection_label(acc)}" if selection_label(acc) else "")
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
        fig, ax = new_figure(figsize=(8, 6))
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
        written.append(save_figure(fig, outdir / f"score_{t}.png", tight=False))

    # ROC from histograms (truth-labelled jets of all datasets)
    curves, n_background = {}, {}
    for t in taggers:
        try:
            s, b = signal_background(datasets, t)
            curves[t] = roc_from_hist(s, b)
        except ValueError:
            continue
        n_background[t] = int(np.rint(np.sum(b)))
    if curves:
        written.append(plot_roc(curves, outdir / "roc.png", title=f"{title}\nbands: 68% CP",
                                n_background=n_background))

        # background rejection vs pT at eS = 50 %
        fig, ax = new_figure(figsize=(8, 6))
        ax.set_prop_cycle(color=TAGGER_COLORS)
        for k, t in enumerate(curves):
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
            limits, low, high = [], [], []
            for i in range(len(edges) - 1):
                try:
                    s_tot, b_tot = signal_background(datasets, t, pt_bin=i)
                    r = rejection_from_hist(s_tot, b_tot, 0.5)
                except ValueError:  # no top or no QCD jet in this pT bin
                    r = None
                if r is None or r["n_pass"] == 0:
                    # no QCD jet passes: only the 68 % lower limit on 1/eB
                    rej.append(np.nan)
                    low.append(np.nan)
                    high.append(np.nan)
                    limits.append(np.nan if r is None else r["rejection_low"])
                    continue
                rej.append(r["rejection"])
                low.append(r["rejection"] - r["rejection_low"])
                high.append(r["rejection_high"] - r["rejection"])
                limits.append(np.nan)
            # taggers side by side within each bin, so that bars and limits do not hide each other
            shift = (k - (len(curves) - 1) / 2) * 0.08 * np.diff(edges)
            centres = 0.5 * (edges[1:] + edges[:-1]) + shift
            line = ax.errorbar(centres, rej, yerr=[low, high], marker="o", capsize=3, label=t)[0]
            ax.plot(centres, limits, marker="^", linestyle="none", color=line.get_color())
        ax.set_yscale("log")
        ax.set_xlabel("fat-jet $p_T$ [GeV]")
        ax.set_ylabel("$1/\\epsilon_B$ at $\\epsilon_S$ = 50%")
        ax.legend(fontsize=12, title="bars: 68% CP; $\\blacktriangle$: 68% lower limit", title_fontsize=12)
        written.append(save_figure(fig, outdir / "rejection_vs_pt.png", tight=False))

    # cutflow
    fig, ax = new_figure(figsize=(9, 6))
    width = 0.8 / max(len(datasets), 1)
    for i, (name, ds) in enumerate(datasets.items()):
        cf = ds["cutflow"]
        keys = list(cf)
        ax.bar(np.arange(len(keys)) + i * width, [cf[k] for k in keys], width=width, label=name)
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=30, ha="right", fontsize=12)
    ax.set_yscale("log")
    ax.set_ylabel("count")
    ax.legend()
    written.append(save_figure(fig, outdir / "cutflow.png", tight=False))
    return written
