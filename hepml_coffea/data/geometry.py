"""Geometry shared by every layer: azimuth wrapping, energies, jagged offsets.

One convention each, used by :mod:`hepml_coffea.data.constituents`,
:mod:`hepml_coffea.representations` and :mod:`hepml_coffea.data.truth`:

* :func:`wrap_phi`: angles (and angle differences) wrapped into ``(-pi, pi]``, the
  range NanoAOD and ``atan2`` use (an angle of exactly ``-pi`` is written ``+pi``).
* :func:`energy`: ``E = sqrt((pt cosh(eta))^2 + m^2)`` for massive or massless particles.
* :func:`delta_r`: ``sqrt(deta^2 + wrap_phi(dphi)^2)``.
* :func:`offsets` / :func:`starts`: where each jet's (or event's) entries begin in a
  flat array, from the per-jet counts.

* :func:`tau32_ratio`: the N-subjettiness ratio tau3 / tau2, NaN where it is undefined
  (used by :mod:`hepml_coffea.representations.observables` and the baseline model).

The (deta, dphi) k-nearest-neighbour graph lives in :mod:`hepml_coffea.knn`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["delta_r", "energy", "offsets", "starts", "tau32_ratio", "wrap_phi"]

_TWO_PI = 2.0 * np.pi


def wrap_phi(phi: Any) -> np.ndarray:
    """Wrap angles into ``(-pi, pi]``.

    Parameters
    ----------
    phi : array_like
        Angles or angle differences in radians, any finite value. Float32 input stays
        float32 (computed in float32); integers become float64. NaN stays NaN.

    Returns
    -------
    np.ndarray
        ``phi + 2 pi k`` with the integer ``k`` that puts it in ``(-pi, pi]``.

    Shapes:
        ``(...)`` -> ``(...)``
    """
    x = np.asarray(phi)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    pi = x.dtype.type(np.pi)
    out = pi - np.mod(pi - x, x.dtype.type(_TWO_PI))
    # np.mod can round up to exactly 2 pi for inputs a hair below a multiple of 2 pi
    low = out <= -pi
    if np.any(low):
        out = np.where(low, out + x.dtype.type(_TWO_PI), out)
    return out


def energy(pt: Any, eta: Any, mass: Any) -> np.ndarray:
    """Particle energy from (pt, eta, mass).

    Parameters
    ----------
    pt, eta, mass : array_like
        Transverse momentum, pseudorapidity and mass (GeV); broadcast together.

    Returns
    -------
    np.ndarray
        ``sqrt((pt cosh(eta))^2 + mass^2)``; overflow gives ``inf`` without a warning
        (non-finite kinematics are flagged by the caller, not here).

    Shapes:
        ``(...)`` -> ``(...)``
    """
    pt, eta, mass = np.asarray(pt), np.asarray(eta), np.asarray(mass)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt((pt * np.cosh(eta)) ** 2 + mass * mass)


def delta_r(deta: Any, dphi: Any) -> np.ndarray:
    """Angular distance ``sqrt(deta^2 + wrap_phi(dphi)^2)``.

    Shapes:
        ``(...)`` -> ``(...)``
    """
    dphi = wrap_phi(dphi)
    deta = np.asarray(deta)
    return np.sqrt(deta * deta + dphi * dphi)


def offsets(counts: Any) -> np.ndarray:
    """Offsets of a jagged array from its counts.

    Parameters
    ----------
    counts : array_like of int
        Number of entries in each list (e.g. constituents per jet), all ``>= 0``.

    Returns
    -------
    np.ndarray
        int64 ``[0, c0, c0 + c1, ...]``: list ``i`` is ``flat[offsets[i]:offsets[i + 1]]``.

    Shapes:
        ``(n,)`` -> ``(n + 1,)``
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    out = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=out[1:])
    return out


def starts(counts: Any) -> np.ndarray:
    """Start index of each list in the flat array (``offsets(counts)[:-1]``).

    Shapes:
        ``(n,)`` -> ``(n,)``
    """
    return offsets(counts)[:-1]


def tau32_ratio(tau3: ArrayLike, tau2: ArrayLike) -> NDArray[np.float64]:
    """tau3 / tau2, NaN where tau2 <= 0 or either input is not finite.

    Shapes:
        tau3, tau2: (N,) -> (N,)
    """
    t3 = np.asarray(tau3, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    ok = np.isfinite(t3) & np.isfinite(t2) & (t2 > 0)
    out = np.full(np.broadcast(t3, t2).shape, np.nan)
    np.divide(t3, t2, out=out, where=ok)
    return out
