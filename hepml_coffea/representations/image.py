"""Jet images in (deta, dphi).

Conventions
-----------
* Coordinates per constituent: ``x = deta = eta - eta_jet`` (horizontal),
  ``y = dphi = wrap_phi(phi - phi_jet)`` in ``(-pi, pi]`` (vertical,
  :func:`hepml_coffea.data.geometry.wrap_phi`), computed in float64.
* Output ``image[jet, channel, iy, ix]`` with
  ``ix = floor((x + R) / (2R / npix))`` and ``iy = floor((y + R) / (2R / npix))``,
  i.e. pixels cover ``[-R, R)`` on each axis, row index grows with ``y``
  ("up" = larger row index; plot with ``origin="lower"``).  Constituents
  outside the extent are dropped.
* Intensity of channel ``pt``: ``pt / pt_jet`` summed over the constituents in a
  pixel; ``charged_pt`` / ``neutral_pt``: the same restricted to ``charge != 0``
  / ``charge == 0``; ``multiplicity``: number of constituents.

Preprocessing (each switchable in the spec, applied in this order to the
continuous coordinates *before* pixelisation, using all constituents with
weights ``w = pt / pt_jet``; centroid and moments use all constituents,
including those that fall outside the image):

1. ``centre``: subtract the w-weighted centroid ``(sum w x, sum w y) / sum w``.
2. ``rotate``: rotate about the origin so that the major principal axis of the
   w-weighted second-moment tensor ``[[sum w x^2, sum w x y], [., sum w y^2]]``
   (angle ``theta = atan2(2 Ixy, Ixx - Iyy) / 2``) becomes vertical (rotation by
   ``pi/2 - theta``).  For an isotropic jet ``theta = 0`` by convention.
3. ``flip``: compute the summed ``w`` of the constituents inside the image
   (``|x| < R`` and ``|y| < R``) in the quadrants (x>=0, y>=0), (x>=0, y<0),
   (x<0, y>=0), (x<0, y<0); flip the sign of x and/or y so the quadrant with the
   largest sum ends up at x>=0, y>=0 (upper right).  Ties keep the first in that
   list (no flip preferred).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hepml_coffea.data.geometry import starts as _starts
from hepml_coffea.data.geometry import wrap_phi

from . import _kernels
from .features import FeatureContext
from .spec import IMAGE_CHANNELS, InputSpec

__all__ = ["build_image"]

_F64 = np.float64


def build_image(cands: ak.Array, jets: ak.Array, spec: InputSpec) -> np.ndarray:
    """Pixelised jet images.

    Parameters
    ----------
    cands
        ``n_jets * var * {pt, eta, phi, ...}`` (plus ``charge`` for the
        charged/neutral channels); order irrelevant.
    jets
        ``n_jets`` records with ``pt, eta, phi``.
    spec
        :class:`InputSpec`; uses ``npix``, ``extent``, ``centre``, ``rotate``,
        ``flip`` and ``channels``.

    Returns
    -------
    np.ndarray
        ``(n_jets, len(spec.channels), npix, npix)`` float32, see module docstring.

    Shapes:
        cands ``(N, var)`` records, jets ``(N,)`` records -> ``(N, n_channels, npix, npix)``
        indexed ``[jet, channel, iy (dphi), ix (deta)]``.
    """
    cands = ak.Array(cands) if not isinstance(cands, ak.Array) else cands
    jets = ak.Array(jets) if not isinstance(jets, ak.Array) else jets
    if len(cands) != len(jets):
        raise ValueError(f"cands has {len(cands)} jets but jets has {len(jets)}")
    counts = np.asarray(ak.to_numpy(ak.num(cands, axis=1)), dtype=np.int64)
    starts = _starts(counts)
    ctx = FeatureContext(ak.flatten(cands, axis=1), jets, counts)
    ctx._requester.append("image")
    chan = np.array([IMAGE_CHANNELS.index(c) for c in spec.channels], dtype=np.int64)
    if np.any((chan == 1) | (chan == 2)):
        charge = np.asarray(ctx.cand("charge"), dtype=_F64)
    else:
        charge = np.zeros(0, dtype=_F64)
    deta = np.asarray(ctx.cand("eta"), dtype=_F64) - np.asarray(ctx.jet("eta"), dtype=_F64)
    dphi = wrap_phi(np.asarray(ctx.cand("phi"), dtype=_F64) - np.asarray(ctx.jet("phi"), dtype=_F64))
    pt = np.asarray(ctx.cand("pt"), dtype=_F64)
    jpt = np.asarray(ctx.jet_values("pt"), dtype=_F64)
    out = np.zeros((len(counts), len(chan), spec.npix, spec.npix), dtype=np.float32)
    _kernels.fill_image(
        starts, counts, deta, dphi, pt, charge, jpt,
        spec.centre, spec.rotate, spec.flip, float(spec.extent), spec.npix, chan, out,
    )
    return out
