"""Classic (non deep-learning) top tagger on soft-drop mass and N-subjettiness.

Reference observables:
  * soft-drop mass: A. J. Larkoski, S. Marzani, G. Soyez and J. Thaler,
    "Soft Drop", JHEP 05 (2014) 146, arXiv:1402.2657;
  * tau32 = tau3/tau2: J. Thaler and K. Van Tilburg, "Identifying Boosted
    Objects with N-subjettiness", JHEP 03 (2011) 015, arXiv:1011.2268.

:class:`CutBasedTopTagger` is a fitted two-dimensional likelihood ratio: it
histograms (msoftdrop, tau32) separately for signal (label 1) and background
(label 0), smooths the histograms (a few passes of a 3x3 binomial kernel plus a
Laplace pseudo-count per bin), normalises each to unit sum and scores a jet by
``s / (s + b)`` of its bin (equal class priors), so scores lie in [0, 1].
Values outside the binning are clipped into the first/last bin.

Invalid inputs are the caller's job: any NaN/inf value raises ``ValueError``.
Use :meth:`CutBasedTopTagger.valid_mask` (and :func:`tau32_ratio`, which gives
NaN where tau2 <= 0) to select valid jets first.  This is the honest
comparison reference for the deep-learning taggers, not a torch model.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hepml_coffea.data.geometry import tau32_ratio

__all__ = ["CutBasedTopTagger", "tau32_ratio"]

DEFAULT_MSD_EDGES: List[float] = [float(x) for x in np.linspace(0.0, 300.0, 31)]
DEFAULT_TAU32_EDGES: List[float] = [float(x) for x in np.linspace(0.0, 1.0, 21)]


# --------------------------------------------------------------------------- helpers
def _smooth(h: NDArray[np.float64], passes: int) -> NDArray[np.float64]:
    """``passes`` applications of a normalised 3x3 [1,2,1]x[1,2,1] kernel (edge-replicated)."""
    k = np.array([1.0, 2.0, 1.0]) / 4.0
    for _ in range(passes):
        p = np.pad(h, 1, mode="edge")
        h = k[0] * p[:-2, :] + k[1] * p[1:-1, :] + k[2] * p[2:, :]
        p = np.pad(h, ((0, 0), (1, 1)), mode="edge")
        h = k[0] * p[:, :-2] + k[1] * p[:, 1:-1] + k[2] * p[:, 2:]
    return h


def _check(name: str, x: ArrayLike) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64).ravel()
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s); filter jets with "
            "CutBasedTopTagger.valid_mask(msd, tau32) first"
        )
    return a


# --------------------------------------------------------------------------- model
class CutBasedTopTagger:
    """2D histogram likelihood-ratio tagger on (msoftdrop [GeV], tau32).

    Args:
        msd_edges: bin edges in soft-drop mass (GeV), increasing.
        tau32_edges: bin edges in tau32, increasing.
        pseudo_count: Laplace pseudo-count added to every bin before normalising.
        smooth_passes: passes of the 3x3 binomial smoothing kernel.

    Shapes:
        msd, tau32: (N,) float -> score: (N,) float64 in [0, 1]
    """

    input_kind = "observables"

    def __init__(
        self,
        msd_edges: Optional[Sequence[float]] = None,
        tau32_edges: Optional[Sequence[float]] = None,
        pseudo_count: float = 1.0,
        smooth_passes: int = 1,
    ) -> None:
        self.msd_edges = np.asarray(msd_edges if msd_edges is not None else DEFAULT_MSD_EDGES, dtype=np.float64)
        self.tau32_edges = np.asarray(
            tau32_edges if tau32_edges is not None else DEFAULT_TAU32_EDGES, dtype=np.float64
        )
        for name, e in (("msd_edges", self.msd_edges), ("tau32_edges", self.tau32_edges)):
            if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
                raise ValueError(f"{name} must be a strictly increasing list of >= 2 edges")
        if pseudo_count < 0:
            raise ValueError("pseudo_count must be >= 0")
        self.pseudo_count = float(pseudo_count)
        self.smooth_passes = int(smooth_passes)
        self.sig_hist: Optional[NDArray[np.float64]] = None
        self.bkg_hist: Optional[NDArray[np.float64]] = None

    def __repr__(self) -> str:
        return (
            f"CutBasedTopTagger(msd_bins={self.msd_edges.size - 1}, tau32_bins={self.tau32_edges.size - 1}, "
            f"pseudo_count={self.pseudo_count}, smooth_passes={self.smooth_passes}, fitted={self.is_fitted})"
        )

    @property
    def is_fitted(self) -> bool:
        return self.sig_hist is not None and self.bkg_hist is not None

    @staticmethod
    def valid_mask(msd: ArrayLike, tau32: ArrayLike) -> NDArray[np.bool_]:
        """True where both inputs are finite (use to filter before fit/score)."""
        return np.isfinite(np.asarray(msd, dtype=np.float64)) & np.isfinite(np.asarray(tau32, dtype=np.float64))

    def _bin(self, msd: NDArray[np.float64], tau32: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        i = np.clip(np.searchsorted(self.msd_edges, msd, side="right") - 1, 0, self.msd_edges.size - 2)
        j = np.clip(np.searchsorted(self.tau32_edges, tau32, side="right") - 1, 0, self.tau32_edges.size - 2)
        return i, j

    def _hist(self, msd: NDArray[np.float64], tau32: NDArray[np.float64]) -> NDArray[np.float64]:
        h = np.zeros((self.msd_edges.size - 1, self.tau32_edges.size - 1))
        i, j = self._bin(msd, tau32)
        np.add.at(h, (i, j), 1.0)
        return h

    def fit(self, msd: ArrayLike, tau32: ArrayLike, labels: ArrayLike) -> "CutBasedTopTagger":
        """Fill the signal (label 1) and background (label 0) histograms."""
        m = _check("msd", msd)
        t = _check("tau32", tau32)
        y = np.asarray(labels).ravel()
        if not (m.size == t.size == y.size):
            raise ValueError("msd, tau32 and labels must have the same length")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be 0 (QCD) or 1 (top)")
        if not ((y == 1).any() and (y == 0).any()):
            raise ValueError("fit needs both signal (1) and background (0) jets")
        self.sig_hist = self._hist(m[y == 1], t[y == 1])
        self.bkg_hist = self._hist(m[y == 0], t[y == 0])
        return self

    def _density(self, h: NDArray[np.float64]) -> NDArray[np.float64]:
        d = _smooth(h, self.smooth_passes) + self.pseudo_count
        tot = d.sum()
        return d / tot if tot > 0 else np.full_like(d, 1.0 / d.size)

    def likelihood_ratio_map(self) -> NDArray[np.float64]:
        """Per-bin score s/(s+b), shape (n_msd_bins, n_tau32_bins)."""
        if self.sig_hist is None or self.bkg_hist is None:
            raise RuntimeError("CutBasedTopTagger is not fitted")
        s = self._density(self.sig_hist)
        b = self._density(self.bkg_hist)
        tot = s + b
        return np.divide(s, tot, out=np.full_like(s, 0.5), where=tot > 0)

    def score(self, msd: ArrayLike, tau32: ArrayLike) -> NDArray[np.float64]:
        """Top-likeness in [0, 1] for each jet (raises ValueError on NaN/inf)."""
        m = _check("msd", msd)
        t = _check("tau32", tau32)
        if m.size != t.size:
            raise ValueError("msd and tau32 must have the same length")
        i, j = self._bin(m, t)
        return self.likelihood_ratio_map()[i, j]

    def to_dict(self) -> Dict[str, Any]:
        """Plain-list representation (YAML/JSON serialisable)."""
        return {
            "class_name": "CutBasedTopTagger",
            "msd_edges": self.msd_edges.tolist(),
            "tau32_edges": self.tau32_edges.tolist(),
            "pseudo_count": self.pseudo_count,
            "smooth_passes": self.smooth_passes,
            "sig_hist": None if self.sig_hist is None else self.sig_hist.tolist(),
            "bkg_hist": None if self.bkg_hist is None else self.bkg_hist.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CutBasedTopTagger":
        obj = cls(
            msd_edges=d["msd_edges"],
            tau32_edges=d["tau32_edges"],
            pseudo_count=float(d.get("pseudo_count", 1.0)),
            smooth_passes=int(d.get("smooth_passes", 1)),
        )
        shape = (obj.msd_edges.size - 1, obj.tau32_edges.size - 1)
        for key in ("sig_hist", "bkg_hist"):
            if d.get(key) is not None:
                h = np.asarray(d[key], dtype=np.float64)
                if h.shape != shape:
                    raise ValueError(f"{key} has shape {h.shape}, expected {shape}")
                setattr(obj, key, h)
        return obj
