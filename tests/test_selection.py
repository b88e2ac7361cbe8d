"""Tests of hepml_coffea/selection.py."""

from __future__ import annotations

import awkward as ak
import pytest

from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.selection import Selection


def test_msd_window_without_msoftdrop_branch():
    events = ak.zip({
        "FatJet": ak.Array([[{"pt": 600.0, "eta": 0.0, "phi": 0.0, "mass": 170.0}]]),
        "PFCands": ak.Array([[{"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]),
        "FatJetPFCands": ak.Array([[{"jetIdx": 0, "pFCandsIdx": 0}]]),
    }, depth_limit=1)
    jc = fatjet_constituents(events)
    with pytest.raises(KeyError, match="FatJet_msoftdrop"):
        Selection(msd_min=100).mask(jc)


def test_window_edges_nan_and_description():
    import numpy as np

    jets = ak.zip({"pt": [550.0, 550.5, 649.9, 650.0, float("nan"), 600.0, 600.0],
                   "eta": [0.0, 0.0, -1.9, 0.0, 0.0, 2.0, float("inf")],
                   "msoftdrop": [100.0, 50.0, 200.0, 100.0, 100.0, 100.0, 100.0]})
    sel = Selection()
    np.testing.assert_array_equal(sel.jet_mask(jets), [False, True, True, False, False, False, False])
    msd = Selection(msd_min=60, msd_max=150)
    np.testing.assert_array_equal(msd.jet_mask(jets), [False, False, False, False, False, False, False])
    wide = Selection(pt_min=500, pt_max=700, abs_eta_max=2.5, msd_min=60)
    np.testing.assert_array_equal(wide.jet_mask(jets), [True, False, True, True, False, True, False])
    assert sel.describe() == "550 < pT < 650 GeV, |eta| < 2"
    assert msd.describe() == "550 < pT < 650 GeV, |eta| < 2, 60 < mSD < 150 GeV"
    assert Selection(**sel.to_dict()) == sel
