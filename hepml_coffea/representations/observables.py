"""Jet-level observables: the inputs of the cut-based baseline tagger.

The baseline scores a jet from its soft-drop mass and N-subjettiness ratio
tau32 = tau3 / tau2, read from the fat-jet record (NanoAOD ``FatJet_msoftdrop``,
``FatJet_tau2``, ``FatJet_tau3``).

One convention for tau32, used by training and inference alike: **NaN where
tau2 <= 0 or an input is not finite** (tau32 is undefined there). A jet with a NaN
observable is not scored by the baseline and is counted as such; it is never given
a made-up value.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hepml_coffea.data.geometry import tau32_ratio

__all__ = ["OBSERVABLE_FIELDS", "tau32_ratio", "build_observables"]

#: fat-jet fields the observables are computed from
OBSERVABLE_FIELDS: tuple[str, ...] = ("msoftdrop", "tau2", "tau3")


def build_observables(jets: ak.Array) -> dict[str, np.ndarray]:
    """``{"msoftdrop", "tau32"}`` of a flat jet record; NaN where a field is missing.

    A file without ``msoftdrop``/``tau2``/``tau3`` gives NaN for every jet, so the
    baseline scores none of them and the scoring layer counts them as not scored.

    Shapes:
        jets: (N,) records -> msoftdrop (N,), tau32 (N,) float64
    """
    n = len(jets)
    fields = set(ak.fields(jets))
    nan = np.full(n, np.nan)
    msd = np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64) if "msoftdrop" in fields else nan
    if {"tau2", "tau3"} <= fields:
        tau32 = tau32_ratio(ak.to_numpy(jets.tau3), ak.to_numpy(jets.tau2))
    else:
        tau32 = nan.copy()
    return {"msoftdrop": msd, "tau32": tau32}
