"""The standard evaluation (``hepml_coffea/evaluation/evaluate.py``, ``report.py``, ``plots.py``):
a toy sample through evaluate, and ``hepml-coffea evaluate`` on generated files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hepml_coffea.evaluation.dataset import TRUTH_CONTAINED, TRUTH_QCD, TRUTH_TOP_ONLY, EvalSample
from hepml_coffea.evaluation.evaluate import evaluate
from hepml_coffea.evaluation.report import format_report


def _toy_sample():
    rng = np.random.default_rng(1)
    n_top, n_loose, n_qcd = 300, 100, 1200
    truth = np.r_[np.full(n_top, TRUTH_CONTAINED), np.full(n_loose, TRUTH_TOP_ONLY), np.full(n_qcd, TRUTH_QCD)]
    sig = truth >= TRUTH_TOP_ONLY
    good = np.clip(rng.normal(np.where(truth == TRUTH_CONTAINED, 0.8, np.where(sig, 0.6, 0.2)), 0.3), 0, 1)
    msd = np.where(sig, rng.normal(172, 10, len(truth)), rng.exponential(60, len(truth)))
    base = good + rng.normal(0, 0.2, len(truth))
    base[:5] = np.nan  # unscored jets count as failing
    return EvalSample(pt=rng.uniform(550, 650, len(truth)), eta=rng.uniform(-2, 2, len(truth)), msd=msd,
                      truth=truth.astype(np.int8), scores={"baseline": base, "good": np.clip(good + 0.05, 0, 1)},
                      files=["toy"], counts={"ttbar_contained": n_top, "ttbar_top_only": n_loose,
                                             "ttbar_unmatched": 50, "qcd": n_qcd}, scoring_path="toy")


def test_evaluate_report_and_plots(tmp_path):
    s = _toy_sample()
    res = evaluate(s, tmp_path)
    g = res["taggers"]["good"]
    assert g["n_signal"] == 300 and g["n_background"] == 1200
    assert res["taggers"]["baseline"]["n_unscored"] == 5
    assert g["top_only_definition"]["n_signal"] == 400
    assert g["top_only_definition"]["auc"] < g["auc"]  # looser truth: harder signal
    assert res["truth"]["fraction_contained"] == pytest.approx(300 / 450)
    b = res["taggers"]["baseline"]
    assert 0 < b["eS50"]["n_pass"] < g["eS50"]["n_pass"] * 10
    assert g["x_baseline"]["eS50"]["ratio"] == pytest.approx(g["eS50"]["rejection"] / b["eS50"]["rejection"])
    assert g["x_baseline"]["eS50"]["err"] > 0
    md = format_report(res)
    assert "| good |" in md and "Clopper-Pearson" in md and "66.7 %" in md
    assert "| good | yes (" in md  # targets table: 'good' beats the noisier baseline
    boot = g["bootstrap"]
    assert 0.3 < boot["auc_std"] / g["auc_err"] < 3  # DeLong and bootstrap agree in size
    assert boot["eS50"][0] <= g["eS50"]["rejection"] <= boot["eS50"][1] * 1.5
    for f in ("results.json", "report.md", "roc.png", "rejection_vs_pt.png", "scores.png", "mass_sculpting.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    assert json.loads((tmp_path / "results.json").read_text())["counts"]["qcd"] == 1200


def test_cli_evaluate(ttbar_file, qcd_file, tmp_path):
    from hepml_coffea.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "ttbar_1.root").symlink_to(ttbar_file)
    (data / "qcd_1.root").symlink_to(qcd_file)
    rc = main(["evaluate", "--data", str(data), "--taggers", "baseline", "cnn", "--out", str(tmp_path / "ev"),
               "--cache", str(tmp_path / "cache")])
    assert rc == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(res["taggers"]) == {"baseline", "cnn"}
    assert "1/eB" in (tmp_path / "ev" / "report.md").read_text()
