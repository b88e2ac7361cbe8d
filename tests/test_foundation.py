"""Foundation: generated PFNano files, constituents of every NanoAOD flavour, truth labels."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepml_coffea.constituents import (
    InvalidAssociationError,
    MissingBranchError,
    detect_flavour,
    fatjet_constituents,
)
from hepml_coffea.io import load_events, read_arrays
from hepml_coffea.samples import read_metadata
from hepml_coffea.truth import NOT_TOP, TOP, UNKNOWN, top_labels

SAMPLES = Path(__file__).parent / "samples"


def _window(jc):
    pt = ak.to_numpy(jc.jets.pt)
    eta = ak.to_numpy(jc.jets.eta)
    return (pt > 550) & (pt < 650) & (np.abs(eta) < 2)


def test_generated_file_layout_and_metadata(ttbar_file):
    meta = read_metadata(ttbar_file)
    assert meta["process"] == "ttbar" and meta["seed"] == 11 and meta["pythia_seeds"] == [11]
    with uproot.open(ttbar_file) as f:
        tree = f["Events"]
        assert tree.classname == "TTree"
        keys = set(tree.keys())
        for b in ("run", "luminosityBlock", "event", "genWeight", "FatJet_pt", "FatJet_msoftdrop",
                  "FatJet_tau3", "FatJet_nConstituents", "PFCands_pdgId", "FatJetPFCands_jetIdx",
                  "FatJetPFCands_pFCandsIdx", "GenPart_statusFlags", "GenPart_genPartIdxMother"):
            assert b in keys, b
        assert tree["FatJet_pt"].interpretation.content.to_dtype.name == "float32" or True
        pt = tree["FatJet_pt"].array()
        assert str(ak.type(pt)).endswith("float32")
        ev = tree["event"].array()
        assert np.all(np.diff(ev.to_numpy().astype(np.int64)) == 1)
        assert ev[0] == 11 * 10**8


def test_coffea_cross_reference_reproduces_jets(ttbar_file):
    events = load_events(ttbar_file, mode="eager")
    fj = events.FatJet
    cons = fj.constituents.pf
    assert ak.all(ak.num(cons, axis=2) == fj.nConstituents)
    # summed constituent four-vectors reproduce the jet (float32 storage precision)
    for comp in ("px", "py", "pz", "energy"):
        total = ak.flatten(ak.sum(getattr(cons, comp), axis=-1))
        ref = ak.flatten(getattr(fj, comp))
        rel = np.abs(ak.to_numpy(total - ref)) / ak.to_numpy(ak.flatten(fj.pt))
        assert rel.max() < 1e-4, comp
    # pT ordering of jets
    assert ak.all(fj.pt[:, :-1] >= fj.pt[:, 1:])


def test_our_grouping_equals_coffea(ttbar_file):
    events = load_events(ttbar_file, mode="eager")
    jc = fatjet_constituents(events)
    ref = ak.flatten(events.FatJet.constituents.pf, axis=1)
    ref_sorted = ref[ak.argsort(ref.pt, axis=1, ascending=False)]
    assert ak.all(ak.num(jc.cands) == ak.num(ref_sorted))
    assert np.allclose(ak.to_numpy(ak.flatten(jc.cands.pt)), ak.to_numpy(ak.flatten(ref_sorted.pt)))
    assert np.allclose(ak.to_numpy(ak.flatten(jc.cands.eta)), ak.to_numpy(ak.flatten(ref_sorted.eta)))
    assert jc.flavour == "pfnano"
    assert jc.valid.all()


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


@pytest.mark.parametrize("reader", ["nanoevents", "uproot"])
@pytest.mark.parametrize("name,flavour", [("pfnano.root", "pfnano"), ("nano_tt_v15.root", "nanoaod_v15")])
def test_real_cms_files(name, flavour, reader):
    path = SAMPLES / name
    events = load_events(path, mode="eager") if reader == "nanoevents" else read_arrays(path)
    assert detect_flavour(events) == flavour
    jc = fatjet_constituents(events)
    # counts per jet equal the association rows
    assoc_name = "FatJetPFCands" if flavour == "pfnano" else "FatJetPFCand"
    with uproot.open(path) as f:
        rows = f["Events"][f"{assoc_name}_jetIdx"].array()
        njet = f["Events"]["FatJet_pt"].array()
    expected = []
    for ev_rows, jets in zip(rows.tolist(), njet.tolist()):
        expected += [sum(1 for r in ev_rows if r == j) for j in range(len(jets))]
    assert ak.num(jc.cands).tolist() == expected
    flat_phi = ak.to_numpy(ak.flatten(jc.cands.phi))
    assert np.all((flat_phi > -np.pi) & (flat_phi <= np.pi))
    pt = jc.cands.pt
    assert ak.all(pt[:, :-1] >= pt[:, 1:])
    assert np.all(np.isfinite(ak.to_numpy(ak.flatten(jc.cands.energy))))
    assert len(jc) == len(ak.flatten(njet))


def test_v15_has_jets_without_constituents():
    jc = fatjet_constituents(read_arrays(SAMPLES / "nano_tt_v15.root"))
    empty = ak.to_numpy(ak.num(jc.cands)) == 0
    assert empty.sum() == 2 == jc.counts["no_constituents"]
    assert not jc.valid[empty].any() and jc.valid[~empty].all()
    # NanoAOD v15 PFCand has no charge branch: it is inferred from pdgId
    ch = ak.to_numpy(ak.flatten(jc.cands.charge))
    pdg = np.abs(ak.to_numpy(ak.flatten(jc.cands.pdgId)))
    assert np.all(ch[pdg == 22] == 0) and np.all(np.abs(ch[pdg == 211]) == 1)


def _hand_events(rows_jet, rows_cand, njets=(2, 0)):
    fj = ak.Array([[{"pt": 600.0, "eta": 0.1, "phi": 3.1, "mass": 170.0}] * njets[0], []])
    pf = ak.Array([[
        {"pt": 10.0, "eta": 0.1, "phi": -3.1, "mass": 0.0, "charge": 1, "pdgId": 211},
        {"pt": 30.0, "eta": 0.2, "phi": 3.0, "mass": 0.0, "charge": 0, "pdgId": 22},
    ], []])
    assoc = ak.Array([[{"jetIdx": j, "pFCandsIdx": c} for j, c in zip(rows_jet, rows_cand)], []])
    return ak.zip({"FatJet": fj, "PFCands": pf, "FatJetPFCands": assoc}, depth_limit=1)


def test_hand_made_event_with_zero_fat_jets_and_empty_jet():
    events = _hand_events([0, 0], [0, 1])
    jc = fatjet_constituents(events)
    assert len(jc) == 2  # second event has no fat jets
    assert ak.num(jc.cands).tolist() == [2, 0]
    assert ak.to_list(jc.cands.pt[0]) == [30.0, 10.0]  # sorted by pT
    assert jc.event_index.tolist() == [0, 0] and jc.jet_index.tolist() == [0, 1]
    assert jc.valid.tolist() == [True, False]
    assert jc.counts == {"jets": 2, "nonfinite": 0, "no_constituents": 1, "bad_association_rows": 0,
                         "nonfinite_rejected": 0}
    # jet mask selects; an all-false mask gives zero jets, not an error
    jc0 = fatjet_constituents(events, jet_mask=ak.Array([[False, False], []]))
    assert len(jc0) == 0 and len(jc0.cands) == 0


def test_zero_events():
    events = _hand_events([0], [0])[:0]
    jc = fatjet_constituents(events, flavour="pfnano")
    assert len(jc) == 0


def test_bad_association_raises_or_counts():
    events = _hand_events([0, 0, 5], [0, 1, 0])
    with pytest.raises(InvalidAssociationError, match="jetIdx=5"):
        fatjet_constituents(events)
    jc = fatjet_constituents(events, on_invalid="skip")
    assert jc.counts["bad_association_rows"] == 1
    assert ak.num(jc.cands).tolist() == [2, 0]


def test_nonfinite_kinematics_flagged():
    events = _hand_events([0, 1], [0, 1])
    pf = events.PFCands
    bad = ak.zip({**{f: pf[f] for f in ak.fields(pf)}, "pt": ak.Array([[np.nan, 30.0], []])})
    events = ak.zip({"FatJet": events.FatJet, "PFCands": bad, "FatJetPFCands": events.FatJetPFCands}, depth_limit=1)
    jc = fatjet_constituents(events)
    assert jc.valid.tolist() == [False, True]
    assert jc.counts["nonfinite"] == 1


def test_missing_constituent_branches_named():
    events = ak.zip({"FatJet": ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]])}, depth_limit=1)
    with pytest.raises(MissingBranchError, match="FatJetPFCands_.*PFCand"):
        fatjet_constituents(events)
    with pytest.raises(MissingBranchError, match="no FatJet"):
        fatjet_constituents(ak.zip({"Jet": ak.Array([[{"pt": 1.0}]])}, depth_limit=1))


def test_rntuple_copy_reads_the_same(ttbar_file, tmp_path):
    arrays = uproot.open(ttbar_file)["Events"].arrays(how=dict)
    out = tmp_path / "rntuple.root"
    with uproot.recreate(out) as f:
        f["Events"] = arrays
    assert "RNTuple" in type(uproot.open(out)["Events"]).__name__
    a = fatjet_constituents(read_arrays(ttbar_file))
    for events in (read_arrays(out), load_events(out)):
        b = fatjet_constituents(events)
        assert ak.all(ak.num(a.cands) == ak.num(b.cands))
        assert np.array_equal(ak.to_numpy(ak.flatten(a.cands.pt)), ak.to_numpy(ak.flatten(b.cands.pt)))


def test_multiprocess_generation_and_detector_switch(tmp_path):
    from hepml_coffea.samples import generate

    p = generate("qcd", 40, 5, tmp_path / "q.root", workers=2, detector=False, pthat_min=300.0)
    meta = read_metadata(p)
    assert meta["pythia_seeds"] == [5000, 5001] and meta["workers"] == 2 and meta["detector"] is False
    ev = uproot.open(p)["Events"]["event"].array().to_numpy().astype(np.int64)
    assert len(ev) == 40 and len(np.unique(ev)) == 40 and ev.min() == 5 * 10**8
    # without the detector response, constituent momenta sum exactly to the jet (no thresholds)
    events = load_events(p, mode="eager")
    cons = events.FatJet.constituents.pf
    rel = np.abs(ak.to_numpy(ak.flatten(ak.sum(cons.px, axis=-1) - events.FatJet.px))) / ak.to_numpy(ak.flatten(events.FatJet.pt))
    assert rel.max() < 1e-4


def test_select_before_gathering_equals_select_after(ttbar_file):
    from hepml_coffea.selection import Selection

    events = read_arrays(ttbar_file)
    after = fatjet_constituents(events)
    after = after.select(Selection().mask(after))
    before = fatjet_constituents(events, select=Selection().jet_mask)
    assert len(before) == len(after) > 0
    assert ak.all(ak.num(before.cands) == ak.num(after.cands))
    assert np.array_equal(ak.to_numpy(ak.flatten(before.cands.pt)), ak.to_numpy(ak.flatten(after.cands.pt)))
    assert np.array_equal(before.event_index, after.event_index) and np.array_equal(before.valid, after.valid)
