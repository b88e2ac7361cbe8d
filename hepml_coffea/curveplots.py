"""ROC and loss curves (PNG): the plots that training and the analysis share.

A low module (imports only :mod:`hepml_coffea.plotstyle` and :mod:`hepml_coffea.stats`), so
that :mod:`hepml_coffea.training` draws its curves without importing the analysis layer;
:mod:`hepml_coffea.analysis.plots` re-exports these. Each plot is drawn on its own
pyplot-free figure inside :func:`~hepml_coffea.plotstyle.plot_style`; matplotlib is
imported on the first call, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.plotstyle import TAGGER_COLORS, new_figure, plot_style, save_figure
from hepml_coffea.stats import clopper_pearson

__all__ = ["draw_roc", "plot_loss", "plot_roc"]


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out: str | os.PathLike[str],
             title: str = "top vs QCD", n_background: Mapping[str, int] | None = None) -> Path:
    """Background rejection 1/eB vs signal efficiency eS, one line per tagger; with
    ``n_background`` (QCD jets behind each curve) a band of the 68 % Clopper-Pearson
    interval of the passing count at every point.

    Shapes:
        curves: per tagger (es, eb), each (n_points,)
    """
    with plot_style():
        fig, ax = new_figure(figsize=(8, 7))
        draw_roc(ax, curves, title, n_background)
        return save_figure(fig, out, dpi=90, tight=False)


def draw_roc(ax: Any, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "top vs QCD",
             n_background: Mapping[str, int] | None = None) -> None:
    """:func:`plot_roc` on the axes ``ax``."""
    ax.set_prop_cycle(color=TAGGER_COLORS)
    for name, (es, eb) in curves.items():
        ok = (eb > 0) & (es > 0.05)
        line = ax.plot(es[ok], 1.0 / eb[ok], label=name)[0]
        n = (n_background or {}).get(name)
        if n:
            lo, hi = clopper_pearson(np.rint(eb[ok] * n), n)
            ax.fill_between(es[ok], 1.0 / hi, 1.0 / lo, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency $\\epsilon_S$")
    ax.set_ylabel("background rejection $1/\\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.legend(title=title, fontsize=14, title_fontsize=14)
    ax.grid(alpha=0.3)


def plot_loss(history: Mapping[str, list[float]], out: str | os.PathLike[str]) -> Path:
    """Training and validation loss per epoch."""
    with plot_style():
        fig, ax = new_figure(figsize=(8, 6))
        for name, vals in history.items():
            ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss")
        ax.legend()
        return save_figure(fig, out, dpi=90, tight=False)
