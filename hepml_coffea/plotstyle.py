"""The plotting conventions of the package: style, colours, figures (a leaf module).

Every plot is drawn inside :func:`plot_style` (mplhep's ROOT style as a context) on a
pyplot-free :class:`matplotlib.figure.Figure` from :func:`new_figure`: importing or calling
this module never selects a backend nor changes matplotlib's global style. matplotlib is
imported on the first call. Used by :mod:`hepml_coffea.analysis.plots`,
:mod:`hepml_coffea.evaluation.plots` and the training plots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["TAGGER_COLORS", "new_figure", "plot_style", "save_figure"]

#: line colours of plots with one line per tagger (matplotlib's tab10: ten distinct colours;
#: the ROOT style's cycle repeats after six, and seven taggers are shipped)
TAGGER_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                  "#7f7f7f", "#bcbd22", "#17becf")


def plot_style() -> Any:
    """mplhep's ROOT style as a context manager (``with plot_style(): ...``)."""
    import matplotlib.style
    import mplhep

    return matplotlib.style.context(mplhep.style.ROOT)


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (8, 7),
               squeeze: bool = True) -> tuple[Any, Any]:
    """A pyplot-free ``Figure`` and its axes (``squeeze`` as in ``Figure.subplots``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 80, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG by its suffix) and return the path."""
    if tight:
        fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
