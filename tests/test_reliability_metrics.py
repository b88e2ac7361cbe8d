"""Issue 23, item 11: training metrics (metrics.json) and ``hepml-coffea evaluate`` use the
same estimator for the same quantity; the evaluation's missing-files message is formatted."""

from __future__ import annotations

import numpy as np
import pytest

from hepml_coffea.evaluation import run_evaluation, tagger_report
from hepml_coffea.training.metrics import tagger_metrics


def test_training_metrics_equal_evaluation_report_on_the_same_jets():
    # 5 top jets, 6 QCD jets: at eS = 30 % / 50 % the ROC interpolation (the old estimator)
    # gives 1/eB = 4.0 / 2.4; counting QCD jets at the working-point threshold gives 6 / 3
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.95, 0.9, 0.6, 0.4, 0.2, 0.92, 0.7, 0.5, 0.3, 0.1, 0.05])
    m = tagger_metrics(labels, scores)
    r = tagger_report(labels, scores)
    assert m["rejection_30"] == r["eS30"]["rejection"] == 6.0  # threshold 0.9: one QCD jet (0.92) passes
    assert m["rejection_50"] == r["eS50"]["rejection"] == 3.0  # threshold 0.6: 0.92 and 0.7 pass
    assert m["auc"] == pytest.approx(r["auc"]) and m["auc_err"] == pytest.approx(r["auc_err"])
    assert m["accuracy"] == pytest.approx(r["accuracy"]) == pytest.approx(0.5 * (3 / 5 + 4 / 6))
    assert m["working_points"]["eS50"] == r["eS50"]["threshold"] == 0.6
    assert m["working_points"]["eS30"] == r["eS30"]["threshold"] == 0.9


def test_evaluation_missing_files_message_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        run_evaluation(tmp_path, tmp_path / "out")
    assert f"--out {tmp_path}`" in str(err.value) and "{folder}" not in str(err.value)
