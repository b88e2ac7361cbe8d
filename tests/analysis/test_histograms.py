"""Histogram factories, filling and ROC curves (``hepml_coffea/analysis/histograms.py``)."""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np
import pytest

from hepml_coffea.config import TaggerConfig
from hepml_coffea.data.constituents import JetConstituents
from hepml_coffea.analysis.histograms import (
    datasets_of,
    empty_dataset_output,
    fill_scores,
    jets_from_hist,
    rejection_from_hist,
    roc_from_hist,
    selection_label,
    signal_background,
)
from hepml_coffea.scoring import JetScores
from hepml_coffea.selection import Selection

T = TaggerConfig(name="t", path="/x", hash="0" * 64, input_kind="sequence", spec={},
                 working_points={"eS50": 0.5})


def _result(pt, msd, scores, valid=None):
    n = len(pt)
    jets = ak.zip({"pt": np.asarray(pt, float), "eta": np.zeros(n), "msoftdrop": np.asarray(msd, float)})
    valid = np.ones(n, bool) if valid is None else np.asarray(valid)
    jc = JetConstituents(jets=jets, cands=ak.Array([[]] * n), event_index=np.arange(n), jet_index=np.zeros(n, int),
                         valid=valid, flavour="pfnano", counts={})
    return JetScores(jets=jc, scores={"t": np.asarray(scores, np.float32)}, n_fatjets=n,
                     fatjet_counts=np.ones(n, int), counts={"selected": n, "scored": int(valid.sum())})


def test_edge_values_stay_inside_so_totals_match_the_cutflow():
    acc = empty_dataset_output([T], Selection())
    # a negative soft-drop mass (FastJet gives -1e-6), one above 300 GeV, a score of exactly 1.0
    # and one of exactly 0.0: all inside the axes
    res = _result([560, 600, 640, 600], [-1e-6, 350.0, 170.0, 80.0], [1.0, 0.5, 0.0, 0.25])
    fill_scores(acc, [T], res, labels=np.array([1, 0, 0, -1]), n_events=4)
    h = acc["scores"]
    assert h.sum() == h.sum(flow=True) == acc["cutflow"]["scored"] == acc["tagger_counts"]["t"]["scored"] == 4
    msd = h.project("msoftdrop").values()
    assert msd[0] == 1 and msd[-1] == 1 and msd[5] == 1 and msd[2] == 1
    sc = h.project("score").values()
    assert sc[-1] == 1 and sc[0] == 1 and sc[500] == 1 and sc[250] == 1
    wp = acc["working_points"]
    assert wp[{"tagger": "t", "wp": "eS50", "passed": True}].sum() == 2  # 1.0 and 0.5 pass >= 0.5
    assert acc["cutflow"]["events"] == 4 and acc["cutflow"]["fat_jets"] == 4


def test_invalid_and_unscored_jets_are_counted_not_filled():
    acc = empty_dataset_output([T], Selection())
    res = _result([600, 600, 600], [100, 100, 100], [0.3, np.nan, np.nan], valid=[True, True, False])
    fill_scores(acc, [T], res, labels=np.zeros(3, np.int8), n_events=3)
    assert acc["tagger_counts"]["t"] == {"scored": 1, "not_scored": 1, "out_of_domain": 0}
    assert acc["scores"].sum(flow=True) == 1
    assert np.isfinite(acc["scores"].values(flow=True)).all()


def test_selection_is_the_histogram_label_and_survives_merging():
    a = empty_dataset_output([T], Selection(pt_min=200, pt_max=3000, abs_eta_max=2.4))
    b = empty_dataset_output([T], Selection(pt_min=200, pt_max=3000, abs_eta_max=2.4))
    merged = {"datasets": {"x": {**a, "scores": a["scores"] + b["scores"]}}}
    assert selection_label(merged) == "200 < pT < 3000 GeV, |eta| < 2.4"
    assert a["scores"].axes["pt"].edges[0] == 200 and a["scores"].axes["pt"].edges[-1] == 3000
    # an open pT window still gives a finite axis
    c = empty_dataset_output([T], Selection(pt_min=200, pt_max=float("inf")))
    assert np.isfinite(c["scores"].axes["pt"].edges).all()


def test_datasets_of_accepts_both_layouts():
    acc = empty_dataset_output([T], Selection())
    assert list(datasets_of({"datasets": {"a": acc}, "run": {}})) == ["a"]
    assert list(datasets_of({"a": acc, "skipped": []})) == ["a"]


def test_roc_from_hist_exact():
    s = np.array([0, 1, 3])  # bins low -> high
    b = np.array([4, 1, 0])
    es, eb = roc_from_hist(s, b)
    np.testing.assert_allclose(es, [0, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(eb, [0, 0.0, 0.2, 1.0])
    with pytest.raises(ValueError, match="needs signal and background"):
        roc_from_hist(np.zeros(3), b)


def test_signal_background_uses_background_datasets_only():
    def acc(top, nottop):
        a = empty_dataset_output([T], Selection())
        h = a["scores"]
        h.fill(tagger="t", score=np.array(top), pt=600.0, msoftdrop=170.0, truth=1)
        h.fill(tagger="t", score=np.array(nottop), pt=600.0, msoftdrop=50.0, truth=0)
        return a

    out = {"datasets": {"tt": acc([0.9, 0.8], [0.7]), "qcd": acc([], [0.1, 0.2, 0.3])}}
    s, b = signal_background(out, "t")
    assert s.sum() == 2 and b.sum() == 3  # the ttbar sample's not-top jet is not background
    assert b[100] == 1 and b[700] == 0
    assert isinstance(out["datasets"]["tt"]["scores"], hist.Hist)


def test_jets_and_rejection_from_hist_exact():
    s = np.zeros(10)
    s[[9, 8, 7, 5]] = [2, 1, 1, 4]  # 8 top jets
    b = np.zeros(10)
    b[[0, 1, 8]] = [5, 4, 1]  # 10 QCD jets, one of them high
    labels, scores = jets_from_hist(s, b)
    assert labels.tolist() == [1] * 8 + [0] * 10
    assert scores.tolist() == [5, 5, 5, 5, 7, 8, 9, 9] + [0] * 5 + [1] * 4 + [8]
    # eS = 50 %: the 4th highest top jet sits in bin 7; one QCD jet (bin 8) passes
    r = rejection_from_hist(s, b, 0.5)
    assert (r["n_pass"], r["n_background"], r["rejection"], r["signal_efficiency"]) == (1, 10, 10.0, 0.5)
    from hepml_coffea.stats import clopper_pearson

    lo, hi = clopper_pearson(1, 10)
    assert r["rejection_low"] == pytest.approx(1 / hi) and r["rejection_high"] == pytest.approx(1 / lo)
    # eS = 30 %: the 3rd highest top jet is in bin 8, so 3 of 8 (37.5 %) are kept, and the same QCD jet
    r30 = rejection_from_hist(s, b, 0.3)
    assert (r30["n_pass"], r30["signal_efficiency"]) == (1, 3 / 8)
    with pytest.raises(ValueError, match="no top jets"):
        rejection_from_hist(np.zeros(10), b, 0.5)
