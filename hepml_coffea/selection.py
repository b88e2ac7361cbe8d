"""The fat-jet selection (defaults: the top-tagging reference selection)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

if TYPE_CHECKING:
    from hepml_coffea.constituents import JetConstituents

__all__ = ["Selection"]


@dataclass(frozen=True)
class Selection:
    """pT window, |eta| cut and optional soft-drop mass window on fat jets.

    Defaults are the reference sample's: 550 < pT < 650 GeV, |eta| < 2.
    """

    pt_min: float = 550.0
    pt_max: float = 650.0
    abs_eta_max: float = 2.0
    msd_min: float | None = None
    msd_max: float | None = None

    def mask(self, jc: JetConstituents) -> np.ndarray:
        """Boolean mask over ``jc``'s jets (NaN kinematics never pass)."""
        return self.jet_mask(jc.jets)

    def jet_mask(self, jets: ak.Array) -> np.ndarray:
        """Boolean mask over a flat jet record (``pt``, ``eta``, optional ``msoftdrop``)."""
        pt = np.asarray(ak.to_numpy(jets.pt), dtype=np.float64)
        eta = np.asarray(ak.to_numpy(jets.eta), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            m = (pt > self.pt_min) & (pt < self.pt_max) & (np.abs(eta) < self.abs_eta_max)
            if self.msd_min is not None or self.msd_max is not None:
                if "msoftdrop" not in ak.fields(jets):
                    msg = "soft-drop mass window requested but the file has no FatJet_msoftdrop"
                    raise KeyError(msg)
                msd = np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64)
                if self.msd_min is not None:
                    m &= msd > self.msd_min
                if self.msd_max is not None:
                    m &= msd < self.msd_max
        return m

    def describe(self) -> str:
        s = f"{self.pt_min:g} < pT < {self.pt_max:g} GeV, |eta| < {self.abs_eta_max:g}"
        if self.msd_min is not None or self.msd_max is not None:
            s += f", {self.msd_min or 0:g} < mSD < {self.msd_max or float('inf'):g} GeV"
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
