"""Plots (PNG, mplhep CMS-like style): ROC curves, loss curves, score distributions,
background rejection vs pT, cutflow. ``hepml-coffea plot OUT`` calls :func:`plot_output`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_roc", "plot_loss", "plot_output"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    return plt


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out: str | os.PathLike[str],
             title: str = "top vs QCD, 550 < pT < 650 GeV") -> Path:
    """Background rejection 1/eB vs signal efficiency eS, one line per tagger."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 7))
    for name, (es, eb) in curves.items():
        ok = (eb > 0) & (es > 0.05)
        ax.plot(es[ok], 1.0 / eb[ok], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency $\\epsilon_S$")
    ax.set_ylabel("background rejection $1/\\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.legend(title=title, fontsize=14, title_fontsize=14)
    ax.grid(alpha=0.3)
    out = Path(out)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_loss(history: Mapping[str, list[float]], out: str | os.PathLike[str]) -> Path:
    """Training and validation loss per epoch."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 6))
    for name, vals in history.items():
        ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.legend()
    out = Path(out)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_output(output: str | os.PathLike[str] | Mapping[str, Any], outdir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write all plots for a processor output (a ``.coffea`` file or the dict)."""
    from hepml_coffea.histograms import plot_all

    if isinstance(output, Mapping):
        acc = output
        base = Path(outdir or "plots")
    else:
        from coffea.util import load

        acc = load(output)
        base = Path(outdir) if outdir else Path(output).with_suffix("").parent / (Path(output).stem + "_plots")
    base.mkdir(parents=True, exist_ok=True)
    return plot_all(acc, base, _plt())
