"""Plots of the standard evaluation, and the plotting conventions of the package.

Every plotting function draws on axes it is given (``draw_*``) or makes its own
:class:`matplotlib.figure.Figure` (``plot_*``, no pyplot state), always inside
:func:`plot_style` (mplhep's ROOT style as a context): importing or calling this module never
selects a backend nor changes matplotlib's global style. matplotlib is imported on the first call.
The conventions (:func:`plot_style`, :data:`TAGGER_COLORS`, :func:`new_figure`,
:func:`save_figure`) live in :mod:`hepml_coffea.plotstyle` and are re-exported here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.plotstyle import TAGGER_COLORS, new_figure, plot_style, save_figure
from hepml_coffea.stats import clopper_pearson

__all__ = [
    "TAGGER_COLORS",
    "draw_mass_sculpting",
    "draw_rejection_vs_pt",
    "draw_roc_bands",
    "draw_score_distributions",
    "new_figure",
    "plot_evaluation",
    "plot_learning_curves",
    "plot_rejection_curve",
    "plot_style",
    "save_figure",
]

def plot_evaluation(sample: Any, res: Mapping[str, Any], out: Path) -> list[Path]:
    """ROC with bands, rejection vs pT, score distributions, mass sculpting of an
    :func:`~hepml_coffea.evaluation.evaluate.evaluate` result (PNG files in ``out``)."""
    names = list(res["taggers"])
    colours = dict(zip(names, TAGGER_COLORS * 3))
    ncol = min(3, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    written = []
    with plot_style():
        fig, ax = new_figure()
        draw_roc_bands(ax, sample, names, colours)
        written.append(save_figure(fig, out / "roc.png"))
        fig, ax = new_figure()
        draw_rejection_vs_pt(ax, res, names, colours)
        written.append(save_figure(fig, out / "rejection_vs_pt.png"))
        fig, axes = new_figure(nrow, ncol, figsize=(6 * ncol, 5 * nrow), squeeze=False)
        draw_score_distributions(axes, sample, names)
        written.append(save_figure(fig, out / "scores.png"))
        fig, axes = new_figure(nrow, ncol, figsize=(6 * ncol, 5 * nrow), squeeze=False)
        draw_mass_sculpting(axes, res, names)
        written.append(save_figure(fig, out / "mass_sculpting.png"))
    return written


def draw_roc_bands(ax: Any, sample: Any, names: Sequence[str], colours: Mapping[str, str]) -> None:
    """1/eB vs eS per tagger with the 68 % Clopper-Pearson band of the passing-jet counts."""
    use, labels = sample.labels("contained")
    for name in names:
        s = np.where(np.isfinite(sample.scores[name][use]), sample.scores[name][use], -np.inf)
        order = np.argsort(-s, kind="stable")
        lab = labels[order].astype(bool)
        ns, nb = int(lab.sum()), int((~lab).sum())
        tp, fp = np.cumsum(lab), np.cumsum(~lab)
        keep = (fp > 0) & (tp / ns > 0.05)
        es, k = tp[keep] / ns, fp[keep]
        lo, hi = clopper_pearson(k, np.full(len(k), nb))
        step = max(1, len(es) // 2000)
        ax.plot(es[::step], nb / k[::step], color=colours[name], label=name)
        ax.fill_between(es[::step], 1 / hi[::step], 1 / lo[::step], color=colours[name], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.legend(title="68 % CP bands, 550 < pT < 650 GeV", fontsize=13, title_fontsize=13)
    ax.grid(alpha=0.3)


def draw_rejection_vs_pt(ax: Any, res: Mapping[str, Any], names: Sequence[str], colours: Mapping[str, str]) -> None:
    """1/eB per pT bin at the eS = 50 % threshold (68 % CP bars; ^ = lower limit)."""
    for i, name in enumerate(names):
        v = res["taggers"][name]["vs_pt"]
        e = np.asarray(v["edges"])
        x = 0.5 * (e[1:] + e[:-1]) + (i - len(names) / 2) * 1.5
        r = np.asarray(v["rejection"], dtype=float)
        lo, hi = np.asarray(v["rejection_low"], float), np.asarray(v["rejection_high"], float)
        fin = np.isfinite(r)
        ax.errorbar(x[fin], r[fin], yerr=[r[fin] - lo[fin], np.where(np.isfinite(hi[fin]), hi[fin] - r[fin], 0)],
                    fmt="o", color=colours[name], label=name, capsize=3)
        if (~fin).any():
            ax.plot(x[~fin], lo[~fin], marker="^", ls="none", color=colours[name])
    ax.set_yscale("log")
    ax.set_xlabel("jet $p_T$ [GeV]")
    ax.set_ylabel(r"$1/\epsilon_B$ at the $\epsilon_S$ = 50 % working point")
    ax.legend(fontsize=13, title="68 % CP intervals; ^ = lower limit", title_fontsize=12)


def draw_score_distributions(axes: Any, sample: Any, names: Sequence[str]) -> None:
    """Score densities of truth-matched (contained) top vs QCD jets, one panel per tagger."""
    use, labels = sample.labels("contained")
    edges = np.linspace(0, 1, 41)
    for ax, name in zip(axes.flat, names):
        s = sample.scores[name][use]
        for cls, lab_name, col in ((1, "top (contained)", "tab:red"), (0, "QCD", "tab:blue")):
            v = s[(labels == cls) & np.isfinite(s)]
            h = np.histogram(np.clip(v, 0, 1), edges)[0].astype(float)
            norm = h.sum() * np.diff(edges)
            ax.errorbar(0.5 * (edges[1:] + edges[:-1]), h / norm, yerr=np.sqrt(h) / norm, fmt=".", color=col,
                        label=f"{lab_name} ({len(v):,})")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=16)
        ax.set_xlabel("score", fontsize=16)
        ax.set_ylabel("density", fontsize=16)
        ax.legend(fontsize=11)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)


def draw_mass_sculpting(axes: Any, res: Mapping[str, Any], names: Sequence[str]) -> None:
    """QCD soft-drop mass of passing vs failing jets at eS = 50 % and 30 %, one panel per tagger."""
    for ax, name in zip(axes.flat, names):
        for wp, style in (("eS50", "-"), ("eS30", "--")):
            sc = res["taggers"][name]["sculpting"][wp]
            e = np.asarray(sc["bins"])
            for key, col, lab_name in (("hist_pass", "tab:red", "pass"), ("hist_fail", "tab:blue", "fail")):
                h = np.asarray(sc[key], float)
                if h.sum() == 0:
                    continue
                ax.stairs(h / h.sum() / np.diff(e), e, color=col, ls=style,
                          label=f"{lab_name} {wp} ({int(h.sum()):,})" + (f", JSD {sc['jsd']:.3f}" if key == "hist_pass" else ""))
        ax.set_title(name, fontsize=16)
        ax.set_xlabel(r"QCD $m_{SD}$ [GeV]", fontsize=16)
        ax.set_ylabel("density", fontsize=16)
        ax.legend(fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)


def plot_rejection_curve(curve: Mapping[str, Any], out: str | os.PathLike[str]) -> Path | None:
    """1/eB at eS = 30 % vs training jets per model, 68 % CP error bars, the baseline as a band
    (a :func:`~hepml_coffea.evaluation.curve.learning_curve` result); ``None`` without points."""
    if not curve.get("models"):
        return None
    with plot_style():
        fig, ax = new_figure()
        draw_rejection_curve(ax, curve)
        return save_figure(fig, Path(out))


def draw_rejection_curve(ax: Any, curve: Mapping[str, Any], wp: str = "eS30") -> None:
    """Draw :func:`plot_rejection_curve` on ``ax``."""
    for (model, points), colour in zip(curve["models"].items(), TAGGER_COLORS * 3):
        n = np.array([p["n_train"] for p in points], dtype=float)
        r = np.array([p["report"][wp]["rejection"] for p in points])
        lo = np.array([p["report"][wp]["rejection_low"] for p in points])
        hi = np.array([p["report"][wp]["rejection_high"] for p in points])
        ok = np.isfinite(r)  # no QCD jet passing: only a lower limit, not drawn as a point
        hi = np.where(np.isfinite(hi), hi, r)
        ax.errorbar(n[ok], r[ok], yerr=[(r - lo)[ok], (hi - r)[ok]], marker="o", color=colour, label=model,
                    capsize=3)
    base = curve.get("baseline")
    if base and np.isfinite(base[wp]["rejection"]):
        b = base[wp]
        ax.axhspan(b["rejection_low"], b["rejection_high"] if np.isfinite(b["rejection_high"]) else b["rejection"],
                   color="grey", alpha=0.3, label=f"baseline (cut) {b['rejection']:.0f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training jets (training split, both classes)")
    ax.set_ylabel(f"1/$\\epsilon_B$ at $\\epsilon_S$ = {wp[2:]} %")
    ax.legend(fontsize=11)


def plot_learning_curves(taggers: Sequence[str], out: str | os.PathLike[str]) -> Path | None:
    """Validation loss and AUC per epoch from each artifact's recorded training history.

    Returns the PNG path, or ``None`` when no artifact records a history (e.g. only the
    cut-based baseline).
    """
    from hepml_coffea.artifacts import resolve_artifact

    hist = {}
    for name in taggers:
        m = json.loads((resolve_artifact(name) / "metrics.json").read_text())
        if m.get("history"):
            hist[name] = m["history"]
    if not hist:
        return None
    with_auc = any(h.get("val_auc") for h in hist.values())
    with plot_style():
        fig, axes = new_figure(1, 2 if with_auc else 1, figsize=(14 if with_auc else 8, 6), squeeze=False)
        _draw_learning_curves(axes, hist, with_auc)
        return save_figure(fig, Path(out))


def _draw_learning_curves(axes: Any, hist: Mapping[str, Any], with_auc: bool) -> None:
    for a in axes.flat:
        a.set_prop_cycle(color=TAGGER_COLORS)
    a1 = axes[0, 0]
    for name, h in hist.items():
        n_train = len(h.get("train", []))
        # a fine-tuning also records the validation loss of its starting weights, as epoch 0
        ep = np.arange(n_train - len(h["validation"]) + 1, n_train + 1)
        line = a1.plot(ep, h["validation"], marker="o", label=f"{name} validation")[0]
        a1.plot(np.arange(1, n_train + 1), h.get("train", []), ls="--", color=line.get_color(), label=f"{name} train")
        if with_auc and h.get("val_auc"):
            axes[0, 1].plot(np.arange(1, len(h["val_auc"]) + 1), h["val_auc"], marker="o", color=line.get_color(),
                            label=name)
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy loss")
    a1.legend(fontsize=10, ncol=2)
    if with_auc:
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("validation AUC")
        axes[0, 1].legend(fontsize=10)
