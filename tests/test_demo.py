"""The main job (``hepml_coffea/cli/demo.py``): its summary table and one whole run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.stats import beta

from hepml_coffea.cli.demo import main_job, summary_table
from hepml_coffea.analysis.histograms import score_histogram
from hepml_coffea.selection import Selection

ONE_SIGMA = 0.682689492137086


def _output(fills: dict[str, dict[str, tuple[list[float], list[float]]]]) -> dict:
    """{dataset: {tagger: (top scores, not-top scores)}} -> a run output with score histograms."""
    datasets = {}
    for name, per_tagger in fills.items():
        h = score_histogram(list(per_tagger), Selection())
        for tagger, (top, other) in per_tagger.items():
            for truth, scores in ((1, top), (0, other)):
                if scores:
                    n = len(scores)
                    h.fill(tagger=tagger, score=scores, pt=np.full(n, 600.0), msoftdrop=np.full(n, 170.0),
                           truth=np.full(n, truth))
        datasets[name] = {"scores": h}
    return {"datasets": datasets, "run": {}}


def _cp_rejection(k: int, n: int) -> tuple[float, float]:
    lo = beta.ppf((1 - ONE_SIGMA) / 2, k, n - k + 1) if k else 0.0
    hi = beta.ppf(1 - (1 - ONE_SIGMA) / 2, k + 1, n - k)
    return 1 / hi, (1 / lo if lo else float("inf"))


def test_summary_table_pins_auc_and_rejection_with_uncertainties():
    top = [0.905 + 0.01 * i for i in range(10)]  # one top jet in each of ten high bins
    qcd = [0.005 + 0.01 * i for i in range(10)] + [0.995]  # ten low, one in the top jets' highest bin
    out = _output({"ttbar": {"t": (top, [])}, "qcd": {"t": ([], qcd)}})
    rows = summary_table(out).splitlines()
    assert rows[0].startswith("| tagger | AUC (DeLong) | 1/eB at eS=30% [68% CP]")
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    # AUC: 10 x 10 pairs won, one tie counted 1/2: 100.5 / 110
    auc, sigma = cells[1].split(" ± ")
    assert auc == f"{100.5 / 110:.4f}" and float(sigma) > 0
    # eS = 30 % and 50 %: thresholds at the 3rd and 5th highest top jet; 1 of 11 QCD jets passes
    lo, hi = _cp_rejection(1, 11)
    assert cells[2] == f"11 [{lo:.0f}, {hi:.0f}] (1)"
    assert cells[3] == f"11 [{lo:.0f}, {hi:.0f}] (1)"
    assert cells[4:] == ["10", "11"]


def test_summary_table_lower_limit_reached_efficiency_and_missing_jets():
    # four top jets in one bin: eS jumps from 0 to 100 % at that bin; no QCD jet above it
    out = _output({"ttbar": {"a": ([0.95] * 4, []), "b": ([0.9] * 3, [])},
                   "qcd": {"a": ([], [0.1, 0.2, 0.3]), "b": ([], [])}})
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in summary_table(out).splitlines()[2:]}
    lo, _ = _cp_rejection(0, 3)
    assert rows["a"][1] == f"{1.0:.4f} ± {0.0:.4f}"
    assert rows["a"][2] == f"> {lo:.0f} (0 of 3; eS 100.0 %)"  # only a lower limit, and the eS reached
    # a tagger without QCD jets is a row that says so, not a number and not a missing row
    assert rows["b"][1].startswith("not computed (3 top and 0 QCD jets")
    assert rows["b"][2:4] == ["-", "-"]


@pytest.mark.slow
def test_main_job_on_small_samples(ttbar_file, qcd_file, tmp_path):
    """The README's main job end to end (local Dask cluster, shipped taggers) on the test
    samples placed where it would have generated them."""
    n = 300
    samples = tmp_path / "out" / "samples"
    samples.mkdir(parents=True)
    shutil.copy(ttbar_file, samples / f"ttbar_9001_{n}.root")
    shutil.copy(qcd_file, samples / f"qcd_9002_{n}.root")
    main_job(tmp_path / "out", workers=1, events=n)
    summary = (tmp_path / "out" / "summary.md").read_text()
    rows = [r for r in summary.splitlines() if r.startswith("| ") and not r.startswith("| tagger")]
    # the processor's default order: the standard evaluation's ranking (TAGGERS.md), baseline last
    assert [r.split("|")[1].strip() for r in rows] == ["particlenet", "particlenet-jetclass", "cnn", "particlenet-lite",
                                                      "pfn", "lstm", "baseline"]
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert " ± " in cells[1]
        assert all(("[" in c and "]" in c) or c.startswith(">") for c in cells[2:4]), r
    assert (tmp_path / "out" / "output.coffea").is_file()
    assert {p.name for p in (tmp_path / "out" / "plots").glob("*.png")} >= {"roc.png", "cutflow.png", "score_cnn.png"}


def test_demo_names_the_missing_extra(tmp_path, monkeypatch):
    import importlib.util

    from hepml_coffea.config import ConfigurationError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pythia8mc" else real(name, *a))
    with pytest.raises(ConfigurationError, match=r"pythia8mc is not installed: pip install 'hepml-coffea\[generate\]'"):
        main_job(tmp_path / "out", workers=1, events=10)
    assert not (tmp_path / "out" / "samples").exists() or not any((tmp_path / "out" / "samples").iterdir())
