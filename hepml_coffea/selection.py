"""The fat-jet selection (defaults: the top-tagging reference selection)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["Selection", "TrainingDomain"]


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

    def mask(self, jc: Any) -> np.ndarray:  # jc: hepml_coffea.data.constituents.JetConstituents
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


@dataclass(frozen=True)
class TrainingDomain:
    """The phase space a tagger was trained on: fat-jet pT, |eta| and soft-drop mass
    windows and the sample. Jets outside it are still scored, but flagged
    (``in_domain`` in the column API, counted in the processor output), because a
    working point set on the training sample means little there.

    ``None`` bounds are open. The mSD window is checked only where the jets carry
    ``msoftdrop``.
    """

    pt_min: float | None = None
    pt_max: float | None = None
    abs_eta_max: float | None = None
    msd_min: float | None = None
    msd_max: float | None = None
    sample: str = "unknown"

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrainingDomain | None:
        """The domain an artifact's ``model.yaml`` records: its ``domain`` entry (``pt``,
        ``abs_eta_max``, ``msd``, ``sample``), or else the ``selection`` its training set
        was made with (``None`` when it records neither, e.g. a bare BYO import)."""
        dom = meta.get("domain")
        if isinstance(dom, dict):
            pt = dom.get("pt") or (None, None)
            msd = dom.get("msd") or (None, None)
            return cls(pt_min=_opt(pt[0]), pt_max=_opt(pt[1]), abs_eta_max=_opt(dom.get("abs_eta_max")),
                       msd_min=_opt(msd[0]), msd_max=_opt(msd[1]), sample=str(dom.get("sample", "unknown")))
        sel = meta.get("selection")
        if isinstance(sel, dict):
            training = meta.get("training") or {}
            sample = str(training.get("sample") or (
                "hepml_coffea.samples: Pythia8 14 TeV ttbar + QCD"
                if training.get("signal_files") else "unknown"))
            return cls(pt_min=_opt(sel.get("pt_min")), pt_max=_opt(sel.get("pt_max")),
                       abs_eta_max=_opt(sel.get("abs_eta_max")), msd_min=_opt(sel.get("msd_min")),
                       msd_max=_opt(sel.get("msd_max")), sample=sample)
        return None

    @classmethod
    def from_selection(cls, selection: Selection, sample: str) -> TrainingDomain:
        """The domain of a model trained on jets that passed ``selection``."""
        return cls(pt_min=selection.pt_min, pt_max=selection.pt_max, abs_eta_max=selection.abs_eta_max,
                   msd_min=selection.msd_min, msd_max=selection.msd_max, sample=sample)

    def to_dict(self) -> dict[str, Any]:
        """As ``model.yaml``'s ``domain`` entry."""
        out: dict[str, Any] = {"sample": self.sample, "pt": [self.pt_min, self.pt_max],
                               "abs_eta_max": self.abs_eta_max}
        if self.msd_min is not None or self.msd_max is not None:
            out["msd"] = [self.msd_min, self.msd_max]
        return out

    def contains(self, jets: ak.Array) -> np.ndarray:
        """Which jets lie inside the domain (NaN kinematics never do).

        Shapes:
            jets (N,) records with ``pt``, ``eta`` [, ``msoftdrop``] -> (N,) bool
        """
        pt = np.asarray(ak.to_numpy(jets.pt), dtype=np.float64)
        eta = np.asarray(ak.to_numpy(jets.eta), dtype=np.float64)
        inside = np.isfinite(pt) & np.isfinite(eta)
        with np.errstate(invalid="ignore"):
            if self.pt_min is not None:
                inside &= pt >= self.pt_min
            if self.pt_max is not None:
                inside &= pt <= self.pt_max
            if self.abs_eta_max is not None:
                inside &= np.abs(eta) <= self.abs_eta_max
            if (self.msd_min is not None or self.msd_max is not None) and "msoftdrop" in ak.fields(jets):
                msd = np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64)
                if self.msd_min is not None:
                    inside &= msd >= self.msd_min
                if self.msd_max is not None:
                    inside &= msd <= self.msd_max
        return inside

    def describe(self) -> str:
        """One line, e.g. ``550 < pT < 650 GeV, |eta| < 2 (sample)``."""
        parts = []
        if self.pt_min is not None or self.pt_max is not None:
            parts.append(f"{self.pt_min or 0:g} < pT < {self.pt_max if self.pt_max is not None else float('inf'):g} GeV")
        if self.abs_eta_max is not None:
            parts.append(f"|eta| < {self.abs_eta_max:g}")
        if self.msd_min is not None or self.msd_max is not None:
            parts.append(f"{self.msd_min or 0:g} < mSD < {self.msd_max if self.msd_max is not None else float('inf'):g} GeV")
        return f"{', '.join(parts) or 'no window'} ({self.sample})"


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)
