"""Evaluation statistics (``hepml_coffea/evaluation/stats.py``) pinned on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from hepml_coffea.evaluation.stats import (
    balanced_accuracy,
    delong_auc,
    jensen_shannon,
    mass_sculpting,
    rejection_vs_pt,
)
from hepml_coffea.stats import ONE_SIGMA, clopper_pearson, rejection_at_efficiency
from hepml_coffea.training.metrics import auc as trapezoid_auc


def test_clopper_pearson_matches_scipy_beta_and_closed_forms():
    a = (1 - ONE_SIGMA) / 2
    lo, hi = clopper_pearson(np.array([3, 0, 10]), np.array([10, 10, 10]))
    assert lo[0] == pytest.approx(beta.ppf(a, 3, 8), rel=1e-10)
    assert hi[0] == pytest.approx(beta.ppf(1 - a, 4, 7), rel=1e-10)
    # k = 0: lower 0, upper 1 - (alpha/2)^(1/n); k = n: lower (alpha/2)^(1/n), upper 1
    assert lo[1] == 0.0 and hi[1] == pytest.approx(1 - a ** 0.1, rel=1e-10)
    assert lo[2] == pytest.approx(a ** 0.1, rel=1e-10) and hi[2] == 1.0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(5, 3)


def test_delong_auc_and_error_on_tiny_arrays():
    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.4, 0.1])
    auc, err = delong_auc(labels, scores)
    # 9 pairs: 0.9 and 0.8 beat all three, 0.4 ties 0.4 (1/2) and beats 0.1 -> 7.5/9
    assert auc == pytest.approx(7.5 / 9)
    # V10 = (1, 1, 1/2), V01 = (2/3, 5/6, 1): var/3 + var/3 = 1/36 + 1/108
    assert err == pytest.approx(np.sqrt(1 / 36 + 1 / 108))
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 2, 500)
    sc = np.round(rng.normal(lab, 1.0), 1)  # many ties
    assert delong_auc(lab, sc)[0] == pytest.approx(trapezoid_auc(lab, sc), abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        delong_auc(labels, np.r_[np.nan, scores[1:]])


def test_rejection_at_efficiency_counts_passing_jets():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.85, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    r = rejection_at_efficiency(labels, scores, 0.5)
    assert r["threshold"] == 0.8 and r["signal_efficiency"] == 0.5
    assert r["n_pass"] == 1 and r["n_background"] == 8 and r["rejection"] == 8.0
    lo, hi = clopper_pearson(1, 8)
    assert r["rejection_low"] == pytest.approx(1 / hi) and r["rejection_high"] == pytest.approx(1 / lo)
    # threshold placement: eS +- sqrt(0.25/4) = 0.25 / 0.75 -> 1 and 3 signal jets -> 0 and 2 background pass
    assert r["rejection_sig_high"] == np.inf and r["rejection_sig_low"] == 4.0
    r = rejection_at_efficiency(labels, scores, 0.25)
    assert r["n_pass"] == 0 and r["rejection"] == np.inf and r["rejection_high"] == np.inf
    assert r["rejection_low"] == pytest.approx(1 / (1 - ((1 - ONE_SIGMA) / 2) ** (1 / 8)))


def test_balanced_accuracy_and_jsd_exact():
    acc, err = balanced_accuracy(np.array([1, 1, 0, 0, 0, 0]), np.array([0.9, 0.2, 0.1, 0.1, 0.6, 0.3]))
    assert acc == pytest.approx(0.5 * (0.5 + 0.75))
    assert err == pytest.approx(0.5 * np.sqrt(0.25 / 2 + 0.75 * 0.25 / 4))
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([3, 3], [6, 6]) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4)
    expect = 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)) + 0.5 * np.log2(1 / 0.75)
    assert jensen_shannon([1, 1], [1, 0]) == pytest.approx(expect)
    with pytest.raises(ValueError, match="non-empty"):
        jensen_shannon([0, 0], [1, 0])


def test_mass_sculpting_detects_a_mass_cut():
    rng = np.random.default_rng(0)
    msd = rng.uniform(0, 300, 20000)
    random_pass = rng.random(20000) < 0.1
    window_pass = (msd > 150) & (msd < 200)
    flat = mass_sculpting(msd, random_pass)
    cut = mass_sculpting(msd, window_pass)
    assert flat["n_pass"] + flat["n_fail"] == 20000
    assert flat["jsd"] < 3 * flat["jsd_random"] + 1e-3  # random selection: at the statistical floor
    assert cut["jsd"] > 0.5 and cut["jsd"] > 20 * cut["jsd_err"]
    assert sum(cut["hist_pass"]) == window_pass.sum()


def test_rejection_vs_pt_bins():
    labels = np.array([1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.9])
    pt = np.array([560, 600, 560, 560, 600, 640])
    v = rejection_vs_pt(labels, scores, pt, 0.5, np.array([550, 580, 620, 650]))
    assert v["n_background"] == [2, 1, 1] and v["n_pass"] == [1, 0, 1]
    assert v["rejection"][0] == 2.0 and v["rejection"][1] == np.inf and v["rejection"][2] == 1.0
    assert v["signal_efficiency"][:2] == [1.0, 0.0] and np.isnan(v["signal_efficiency"][2])


def test_paired_rejection_ratio_identical_better_and_bad_shapes() -> None:
    from hepml_coffea.evaluation.stats import paired_rejection_ratio

    rng = np.random.default_rng(0)
    lab = np.r_[np.ones(400, bool), np.zeros(4000, bool)]
    ref = np.r_[rng.normal(1.0, 1.0, 400), rng.normal(-1.0, 1.0, 4000)]
    # the same scores: every replica gives exactly 1
    same = paired_rejection_ratio(lab, ref, ref.copy(), n_boot=20)
    assert same["eS30"] == [1.0, 1.0, 1.0] and same["eS50"] == [1.0, 1.0, 1.0] and same["n_boot"] == 20
    # background pushed further down: more rejection in (nearly) every replica
    better = ref.copy()
    better[~lab] -= 0.5
    r = paired_rejection_ratio(lab, ref, better, n_boot=50)
    assert r["eS50"][0] > 1.3 and r["eS30"][0] > 1.3
    # a monotone transform of the scores changes nothing (thresholds re-placed)
    mono = paired_rejection_ratio(lab, ref, 1 / (1 + np.exp(-ref)), n_boot=10)
    assert mono["eS50"] == [1.0, 1.0, 1.0]
    # unscored jets (NaN) fail every working point instead of poisoning the threshold
    holes = better.copy()
    holes[np.flatnonzero(~lab)[:100]] = np.nan  # 100 background jets not scored: rejected
    r_nan = paired_rejection_ratio(lab, ref, holes, n_boot=20)
    assert np.isfinite(r_nan["eS50"]).all() and r_nan["eS50"][0] > 1.3
    with pytest.raises(ValueError, match="differ in shape"):
        paired_rejection_ratio(lab, ref, ref[:-1])
