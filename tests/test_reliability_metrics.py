"""Issue 23, item 11: training metrics (metrics.json) and ``hepml-coffea evaluate`` use the
same estimator for the same quantity; the evaluation's missing-files message is formatted."""

from __future__ import annotations

import numpy as np
import pytest

from hepml_coffea.evaluation.evaluate import run_evaluation
from hepml_coffea.evaluation.stats import tagger_report
from hepml_coffea.training.metrics import tagger_metrics


def test_training_metrics_equal_evaluation_report_on_the_same_jets():
    # 4 top jets, 6 QCD jets; a top and a QCD jet tie at 0.8. At eS = 30 % the old training
    # estimator interpolated the ROC inside the tie (1/eB = 30); counting QCD jets at the
    # working-point threshold (0.8, which keeps 2 of 4 tops) gives 6
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.6, 0.4, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05])
    m = tagger_metrics(labels, scores)
    r = tagger_report(labels, scores)
    assert m["rejection_30"] == r["eS30"]["rejection"] == 6.0
    assert m["rejection_50"] == r["eS50"]["rejection"] == 6.0
    assert m["auc"] == pytest.approx(r["auc"]) and m["auc_err"] == pytest.approx(r["auc_err"])
    # balanced accuracy (tops above 0.5: 3 of 4; QCD at or below: 5 of 6), not the plain 8 / 10
    assert m["accuracy"] == pytest.approx(r["accuracy"]) == pytest.approx(0.5 * (3 / 4 + 5 / 6))
    # the working point keeps the same jets as the evaluation's (2 tops, 1 QCD jet at 0.8 and
    # above); the cut sits midway in the gap below 0.8 (next score 0.6), never on a jet's score
    assert r["eS50"]["threshold"] == r["eS30"]["threshold"] == 0.8
    assert m["working_points"]["eS50"] == m["working_points"]["eS30"] == pytest.approx(0.7)
    for wp in ("eS30", "eS50"):
        assert np.sum(scores >= m["working_points"][wp]) == np.sum(scores >= r[wp]["threshold"]) == 3
    # eS = 70 %: 3 of 4 tops needed, the evaluation's cut is 0.6; the next lower score is 0.5
    assert m["working_points"]["eS70"] == pytest.approx(0.55)


def test_evaluation_missing_files_message_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        run_evaluation(tmp_path, tmp_path / "out")
    assert f"--out {tmp_path}`" in str(err.value) and "{folder}" not in str(err.value)
