"""The evaluation set (``hepml_coffea/evaluation/dataset.py``): truth matching on a hand-made
event, reading + scoring + caching generated files."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hepml_coffea.evaluation.dataset import TRUTH_CONTAINED, TRUTH_QCD, load_eval_sample, top_only_matched


def _genpart_event():
    # top (0) -> b (1), W (2) -> q (3), q' (4); the W quark q' is 1.5 away from the top
    return ak.Array({"GenPart": [[
        {"pt": 600.0, "eta": 0.0, "phi": 0.0, "pdgId": 6, "genPartIdxMother": -1},
        {"pt": 200.0, "eta": 0.1, "phi": 0.1, "pdgId": 5, "genPartIdxMother": 0},
        {"pt": 400.0, "eta": -0.1, "phi": 0.0, "pdgId": 24, "genPartIdxMother": 0},
        {"pt": 200.0, "eta": -0.2, "phi": 0.1, "pdgId": 1, "genPartIdxMother": 2},
        {"pt": 200.0, "eta": 1.5, "phi": 0.0, "pdgId": -2, "genPartIdxMother": 2},
    ]]})


def test_top_only_matching_on_a_hand_made_event():
    from hepml_coffea.data.truth import TOP, top_labels

    ev = _genpart_event()
    idx = np.array([0, 0, 0])
    eta, phi = np.array([0.05, 2.0, 0.0]), np.array([0.0, 0.0, 3.0])
    assert top_only_matched(ev, idx, eta, phi).tolist() == [True, False, False]
    assert (top_labels(ev, idx, eta, phi) == TOP).tolist() == [False, False, False]  # q' outside 0.8


def test_load_eval_sample_on_generated_files_uses_cache(ttbar_file, qcd_file, tmp_path):
    taggers = ["baseline", "pfn"]
    s = load_eval_sample([ttbar_file], [qcd_file], taggers, cache=tmp_path / "cache", log=None)
    assert set(s.scores) == set(taggers)
    assert np.all((s.pt > 550) & (s.pt < 650))
    assert s.counts["qcd"] == int((s.truth == TRUTH_QCD).sum()) > 0
    assert s.counts["ttbar_contained"] == int((s.truth == TRUTH_CONTAINED).sum()) > 0
    assert np.all(np.isfinite(s.scores["pfn"]))
    again = load_eval_sample([ttbar_file], [qcd_file], taggers, cache=tmp_path / "cache", log=None)
    assert s.cache_hits == 0 and again.cache_hits == 4
    np.testing.assert_array_equal(again.scores["pfn"], s.scores["pfn"])
    with pytest.raises(FileNotFoundError, match="nope.root"):
        load_eval_sample([tmp_path / "nope.root"], [qcd_file], taggers, log=None)
