"""Plots of a run (``hepml_coffea/plots.py``)."""

from __future__ import annotations

import numpy as np

from hepml_coffea import plots
from hepml_coffea.config import TaggerConfig
from hepml_coffea.histograms import empty_dataset_output
from hepml_coffea.selection import Selection

T = TaggerConfig(name="t", path="/x", hash="0" * 64, input_kind="sequence", spec={}, working_points={})


def _output(selection):
    def acc(truth, scores):
        a = empty_dataset_output([T], selection)
        lo, hi = a["scores"].axes["pt"].edges[[0, -1]]
        a["scores"].fill(tagger="t", score=np.array(scores), pt=0.5 * (lo + hi), msoftdrop=100.0, truth=truth)
        a["cutflow"]["scored"] = len(scores)
        return a

    return {"datasets": {"tt": acc(1, [0.9, 0.8, 0.6]), "qcd": acc(0, [0.1, 0.2, 0.7])}, "run": {}}


def test_roc_title_follows_the_selection(tmp_path, monkeypatch):
    titles = []
    real = plots.plot_roc

    def spy(curves, out, title="top vs QCD"):
        titles.append(title)
        return real(curves, out, title=title)

    monkeypatch.setattr(plots, "plot_roc", spy)
    written = plots.plot_output(_output(Selection(pt_min=200, pt_max=3000, abs_eta_max=2.4)), tmp_path)
    assert titles == ["top vs QCD, 200 < pT < 3000 GeV, |eta| < 2.4"]
    assert {p.name for p in written} == {"score_t.png", "roc.png", "rejection_vs_pt.png", "cutflow.png"}
    assert all(p.stat().st_size > 1000 for p in written)


def test_plot_output_without_datasets_is_an_error(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="no datasets with score histograms"):
        plots.plot_output({"datasets": {}, "run": {}}, tmp_path)
