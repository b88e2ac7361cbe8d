"""Plots of a run (``hepml_coffea/analysis/plots.py``)."""

from __future__ import annotations

import numpy as np

from hepml_coffea.analysis import plots
from hepml_coffea.config import TaggerConfig
from hepml_coffea.analysis.histograms import empty_dataset_output
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
    titles, counts = [], []
    real = plots.plot_roc

    def spy(curves, out, title="top vs QCD", n_background=None):
        titles.append(title)
        counts.append(n_background)
        return real(curves, out, title=title, n_background=n_background)

    monkeypatch.setattr(plots, "plot_roc", spy)
    written = plots.plot_output(_output(Selection(pt_min=200, pt_max=3000, abs_eta_max=2.4)), tmp_path)
    assert titles == ["top vs QCD, 200 < pT < 3000 GeV, |eta| < 2.4\nbands: 68% CP"]
    assert counts == [{"t": 3}]  # the QCD jets behind the curve: its Clopper-Pearson band
    assert {p.name for p in written} == {"score_t.png", "roc.png", "rejection_vs_pt.png", "cutflow.png"}
    assert all(p.stat().st_size > 1000 for p in written)


def test_plot_output_without_datasets_is_an_error(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="no datasets with score histograms"):
        plots.plot_output({"datasets": {}, "run": {}}, tmp_path)


def test_rejection_vs_pt_has_clopper_pearson_bars_and_lower_limits(tmp_path, monkeypatch):
    """In the middle pT bin of the hand-made run, eS = 50 % keeps the top jets at 0.9 and
    0.8 (2 of 3), where one of the 3 QCD jets (0.7) does not pass: 0 pass, so the point is
    the 68 % lower limit; with a fourth QCD jet at 0.85, 1 of 4 passes: 1/eB = 4 with its bar."""
    import matplotlib.axes
    import pytest

    from hepml_coffea.stats import clopper_pearson

    seen = {}
    real_errorbar, real_plot = matplotlib.axes.Axes.errorbar, matplotlib.axes.Axes.plot

    def errorbar(self, x, y, yerr=None, **kw):
        seen["bar"] = (np.asarray(y, float), np.asarray(yerr, float))
        return real_errorbar(self, x, y, yerr=yerr, **kw)

    def plot(self, *args, **kw):
        if kw.get("marker") == "^":
            seen["limits"] = np.asarray(args[1], float)
        return real_plot(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    out = _output(Selection())
    plots.plot_all(out, tmp_path)
    mid = 2  # the pT bin holding every jet
    _, hi = clopper_pearson(0, 3)
    assert np.isnan(seen["bar"][0][mid]) and seen["limits"][mid] == pytest.approx(1 / hi)
    assert np.isnan(np.delete(seen["limits"], mid)).all()  # empty pT bins: nothing drawn

    qcd = out["datasets"]["qcd"]["scores"]
    qcd.fill(tagger="t", score=np.array([0.85]), pt=0.5 * sum(qcd.axes["pt"].edges[[0, -1]]), msoftdrop=100.0, truth=0)
    plots.plot_all(out, tmp_path)
    lo, hi = clopper_pearson(1, 4)
    y, (down, up) = seen["bar"][0], seen["bar"][1]
    assert y[mid] == 4.0 and np.isnan(seen["limits"][mid])
    assert down[mid] == pytest.approx(4.0 - 1 / hi) and up[mid] == pytest.approx(1 / lo - 4.0)


def test_roc_band_is_the_clopper_pearson_interval(tmp_path, monkeypatch):
    import matplotlib.axes
    import pytest

    from hepml_coffea.stats import clopper_pearson

    bands = []
    real = matplotlib.axes.Axes.fill_between

    def spy(self, x, y1, y2=0, **kw):
        bands.append((np.asarray(x), np.asarray(y1), np.asarray(y2)))
        return real(self, x, y1, y2, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", spy)
    es = np.array([0.0, 0.25, 0.5, 1.0])
    eb = np.array([0.0, 0.1, 0.2, 1.0])
    plots.plot_roc({"t": (es, eb)}, tmp_path / "roc.png", n_background={"t": 10})
    plots.plot_roc({"t": (es, eb)}, tmp_path / "roc_plain.png")  # no counts: no band
    assert len(bands) == 1
    x, low, high = bands[0]
    lo, hi = clopper_pearson(np.array([1, 2, 10]), 10)  # 1, 2 and 10 of 10 QCD jets pass
    assert x.tolist() == [0.25, 0.5, 1.0]
    np.testing.assert_allclose(low, 1 / hi)
    np.testing.assert_allclose(high, 1 / lo)
    assert low[1] < 5.0 < high[1] and high[-1] == pytest.approx(1 / lo[-1])


def test_plots_leave_matplotlib_as_they_found_it(tmp_path):
    """The plots use mplhep's style as a context on pyplot-free figures: matplotlib's global
    style, backend and list of open pyplot figures are the same after a run's plots."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = (dict(matplotlib.rcParams), matplotlib.get_backend(), plt.get_fignums())
    written = plots.plot_output(_output(Selection()), tmp_path)
    plots.plot_loss({"train": [0.7, 0.6], "validation": [0.69, 0.65]}, tmp_path / "loss.png")
    assert len(written) == 4 and (tmp_path / "loss.png").stat().st_size > 1000
    after = (dict(matplotlib.rcParams), matplotlib.get_backend(), plt.get_fignums())
    assert after[1:] == before[1:]
    assert {k: v for k, v in after[0].items() if before[0].get(k) != v} == {}
