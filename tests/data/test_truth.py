"""Tests of hepml_coffea.data.truth: top-jet truth labels from GenPart."""

from __future__ import annotations

import awkward as ak
import numpy as np

from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.data.io import read_arrays
from hepml_coffea.data.truth import NOT_TOP, TOP, UNKNOWN, top_labels


def _window(jc):
    pt = ak.to_numpy(jc.jets.pt)
    eta = ak.to_numpy(jc.jets.eta)
    return (pt > 550) & (pt < 650) & (np.abs(eta) < 2)


def test_truth_labels_on_generated(ttbar_file, qcd_file):
    ev = read_arrays(ttbar_file)
    jc = fatjet_constituents(ev)
    lab = top_labels(ev, jc.event_index, ak.to_numpy(jc.jets.eta), ak.to_numpy(jc.jets.phi))
    w = _window(jc)
    assert w.sum() > 50
    frac = lab[w].mean()
    # ~0.6 of ttbar jets in the window contain the top and its three quarks at R=0.8
    assert 0.45 < frac < 0.9, frac
    # the leading jet near a top is usually matched; far jets never are
    ev_q = read_arrays(qcd_file)
    jq = fatjet_constituents(ev_q)
    lq = top_labels(ev_q, jq.event_index, ak.to_numpy(jq.jets.eta), ak.to_numpy(jq.jets.phi))
    assert np.all(lq == NOT_TOP)


def test_truth_labels_hand_made():
    # event 0: top at (0, 0) -> W, b; W -> q q'. event 1: no GenPart
    gp = ak.Array([
        [
            {"pt": 600.0, "eta": 0.0, "phi": 0.0, "pdgId": 6, "genPartIdxMother": -1},
            {"pt": 600.0, "eta": 0.0, "phi": 0.0, "pdgId": 6, "genPartIdxMother": 0},
            {"pt": 200.0, "eta": 0.3, "phi": 0.1, "pdgId": 5, "genPartIdxMother": 1},
            {"pt": 400.0, "eta": -0.1, "phi": 0.0, "pdgId": 24, "genPartIdxMother": 1},
            {"pt": 400.0, "eta": -0.1, "phi": 0.0, "pdgId": 24, "genPartIdxMother": 3},
            {"pt": 200.0, "eta": -0.2, "phi": -0.3, "pdgId": 1, "genPartIdxMother": 4},
            {"pt": 200.0, "eta": 0.1, "phi": 0.5, "pdgId": -2, "genPartIdxMother": 4},
        ],
        [],
    ])
    events = ak.zip({"GenPart": gp}, depth_limit=1)
    labels = top_labels(events, np.array([0, 0, 0, 1]), np.array([0.0, 0.0, 2.0, 0.0]),
                        np.array([0.0, 3.0, 0.0, 0.0]))
    assert labels.tolist() == [TOP, NOT_TOP, NOT_TOP, NOT_TOP]
    # quark outside R = 0.8 -> not a top jet
    labels = top_labels(events, np.array([0]), np.array([0.45]), np.array([-0.35]))
    assert labels.tolist() == [NOT_TOP]
    no_gen = ak.zip({"FatJet": ak.Array([[{"pt": 1.0}]])}, depth_limit=1)
    assert top_labels(no_gen, np.array([0]), np.array([0.0]), np.array([0.0])).tolist() == [UNKNOWN]


def test_truth_matching_across_the_phi_boundary():
    # the same top decay rotated to phi ~ pi: dR uses the wrapped azimuth difference
    gp = ak.Array([[
        {"pt": 600.0, "eta": 0.0, "phi": 3.1, "pdgId": 6, "genPartIdxMother": -1},
        {"pt": 200.0, "eta": 0.3, "phi": -3.1, "pdgId": 5, "genPartIdxMother": 0},
        {"pt": 400.0, "eta": -0.1, "phi": 3.1, "pdgId": 24, "genPartIdxMother": 0},
        {"pt": 200.0, "eta": -0.2, "phi": 2.9, "pdgId": 1, "genPartIdxMother": 2},
        {"pt": 200.0, "eta": 0.1, "phi": -2.9, "pdgId": -2, "genPartIdxMother": 2},
    ]])
    events = ak.zip({"GenPart": gp}, depth_limit=1)
    labels = top_labels(events, np.array([0, 0, 0]), np.array([0.0, 0.0, 0.0]), np.array([3.14, -3.14, 0.0]))
    assert labels.tolist() == [TOP, TOP, NOT_TOP]
