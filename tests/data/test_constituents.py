"""Tests of hepml_coffea.data.constituents: fat jets -> constituents for every NanoAOD flavour."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepml_coffea.data.constituents import (
    InvalidAssociationError,
    MissingBranchError,
    detect_flavour,
    fatjet_constituents,
)
from hepml_coffea.data.io import load_events, read_arrays

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


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


def test_extra_candidate_and_jet_fields_on_request():
    events = _hand_events([0, 0], [0, 1])
    pf = events.PFCands
    pf = ak.zip({**{f: pf[f] for f in ak.fields(pf)}, "puppiWeight": ak.Array([[0.25, 0.75], []]),
                 "d0": ak.Array([[0.1, -0.2], []])})
    fj = ak.with_field(events.FatJet, ak.Array([[1.5, 2.5], []]), "area")
    events = ak.zip({"FatJet": fj, "PFCands": pf, "FatJetPFCands": events.FatJetPFCands}, depth_limit=1)
    plain = fatjet_constituents(events)
    assert "puppiWeight" not in ak.fields(plain.cands) and "area" not in ak.fields(plain.jets)
    assert "d0" in ak.fields(plain.cands)  # d0, dz: carried wherever present
    jc = fatjet_constituents(events, cand_fields=("puppiWeight", "pt", "energy", "charge"), jet_fields=["area"])
    # extra branches follow the pT ordering of their candidates
    assert ak.to_list(jc.cands.pt[0]) == [30.0, 10.0] and ak.to_list(jc.cands.puppiWeight[0]) == [0.75, 0.25]
    assert ak.to_list(jc.cands.d0[0]) == [-0.2, 0.1]
    assert jc.jets.area.tolist() == [1.5, 2.5]
    # phi in (-pi, pi] and the energy formula of hepml_coffea.data.geometry
    assert ak.to_list(jc.jets.phi) == [3.1, 3.1]
    np.testing.assert_allclose(ak.to_numpy(jc.cands.energy[0]), [30 * np.cosh(0.2), 10 * np.cosh(0.1)])
    with pytest.raises(MissingBranchError, match="PFCands_dzErr") as ei:
        fatjet_constituents(events, cand_fields=["dzErr"])
    assert "puppiWeight" in str(ei.value)  # lists what the file has
    with pytest.raises(MissingBranchError, match="FatJet_nConstituents"):
        fatjet_constituents(events, jet_fields=["nConstituents"])


def test_extra_fields_on_real_files():
    v15 = read_arrays(SAMPLES / "nano_tt_v15.root")
    # charge is inferred from pdgId where the file has no charge branch: never an error
    jc = fatjet_constituents(v15, cand_fields=("charge", "pdgId"), jet_fields=("nConstituents",))
    assert "charge" in ak.fields(jc.cands) and "nConstituents" in ak.fields(jc.jets)
    np.testing.assert_array_equal(ak.to_numpy(ak.num(jc.cands)) <= ak.to_numpy(jc.jets.nConstituents), True)
    with pytest.raises(MissingBranchError, match="PFCand_d0"):
        fatjet_constituents(v15, cand_fields=("d0",))
    events = load_events(SAMPLES / "pfnano.root")  # NanoEvents, virtual mode
    jc = fatjet_constituents(events, cand_fields=("puppiWeight", "dzErr"))
    ref = fatjet_constituents(read_arrays(SAMPLES / "pfnano.root", collections=("FatJet", "FatJetPFCands", "PFCands")),
                              cand_fields=("puppiWeight", "dzErr"))
    for f in ("puppiWeight", "dzErr", "pt"):
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(jc.cands[f])), ak.to_numpy(ak.flatten(ref.cands[f])))
