"""Issue 23, item 3: a feature expression that gives inf / NaN no longer makes jets vanish
silently: such jets are counted per feature and per chunk, reported in the run output and
on stderr, and the cutflow's ``nonfinite_inputs`` row makes cutflow and histograms agree
(on the CMS PFNano sample in tests/samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faults import run_iterative

from hepml_coffea.artifacts import save_artifact
from hepml_coffea.analysis.histograms import CUTFLOW_KEYS
from hepml_coffea.data.io import load_events
from hepml_coffea.models import build_model
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.representations import InputSpec
from hepml_coffea.scoring import FatJetTagger
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import standard_spec

CMS = str(Path(__file__).parent / "samples" / "pfnano.root")
WIDE = Selection(pt_min=200.0, pt_max=3000.0, abs_eta_max=2.4)
SOME_INF = "log(pt) * 0 + 1 / (jet.pt > 1000)"  # inf for the 4 CMS jets below 1 TeV, 1.0 for the rest
ALL_INF = "1 / (pt - pt)"


def _artifact(root: Path, name: str, expr: str) -> Path:
    import torch

    torch.manual_seed(0)
    doc = standard_spec("sequence").to_dict()
    doc["features"][2].update(name=expr, clip_min=None, clip_max=None)
    out = root / name
    save_artifact(out, name=name, model=build_model("pfn").eval(), input_kind="sequence",
                  spec=InputSpec.from_dict(doc), metrics={"working_points": {"eS50": 0.5}}, torchscript=False)
    return out


@pytest.fixture(scope="module")
def arts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nonfinite")
    return {"some": _artifact(root, "some-inf", SOME_INF), "all": _artifact(root, "all-inf", ALL_INF)}


def test_cutflow_and_histograms_reconcile_with_some_inf_jets(arts, hepml_log):
    from hepml_coffea.config import RunConfig
    from hepml_coffea.batch.run import run_fileset

    proc = TaggerProcessor(taggers=[arts["some"], "baseline"], selection=WIDE, device="cpu")
    out = run_fileset({"cms": [CMS]}, proc, config=RunConfig(executor="iterative", status=False))
    acc = out["datasets"]["cms"]
    cf = acc["cutflow"]
    assert list(cf) == list(CUTFLOW_KEYS) and cf["nonfinite_inputs"] == 4
    assert cf["selected"] - cf["no_constituents"] - cf["nonfinite"] - cf["bad_association_rows"] \
        - cf["nonfinite_inputs"] == cf["scored"] == 20
    for t in ("some-inf", "baseline"):  # every tagger scores the same jets
        assert acc["scores"][{"tagger": t}].sum() == acc["tagger_counts"][t]["scored"] == cf["scored"]
        assert acc["tagger_counts"][t]["not_scored"] == 0
    assert acc["nonfinite_inputs"] == [{"file": CMS, "entrystart": 0, "entrystop": 10, "jets": 4,
                                        "features": {f"some-inf: {SOME_INF}": 4}}]
    assert out["run"]["nonfinite_inputs"] == {"jets": 4, "chunks": 1, "features": {f"some-inf: {SOME_INF}": 4}}
    err = "\n".join(r.getMessage() for r in hepml_log.records if r.levelname == "WARNING")
    assert f"notice: 4 selected jet(s) in 1 chunk(s) had a NaN / inf model input and were not scored" in err
    assert f"some-inf: {SOME_INF} in 4" in err


def test_all_inf_spec_scores_nothing_and_says_so(arts):
    out = run_iterative({"cms": [CMS]}, TaggerProcessor(taggers=[arts["all"]], selection=WIDE, device="cpu"))
    cf = out["datasets"]["cms"]["cutflow"]
    assert cf["scored"] == 0 == out["datasets"]["cms"]["scores"].sum()
    assert cf["nonfinite_inputs"] == 24 == out["run"]["nonfinite_inputs"]["features"][f"all-inf: {ALL_INF}"]


def test_columnar_api_gives_none_and_counts(arts):
    events = load_events(CMS)
    result = FatJetTagger([arts["some"]], selection=WIDE, device="cpu").score(events)
    assert result.counts["nonfinite_inputs"] == 4 and result.counts["scored"] == 20
    pt = np.asarray(result.jets.jets.pt)
    s = result.scores["some-inf"]
    assert np.isnan(s[pt <= 1000]).all() and np.isfinite(s[pt > 1000]).all()
    assert result.nonfinite_features == {f"some-inf: {SOME_INF}": 4}


def test_cli_run_reports_nonfinite_inputs(arts, tmp_path, capsys):
    import json

    import coffea.util

    from hepml_coffea.cli import main

    fs = tmp_path / "cms.json"
    fs.write_text(json.dumps({"cms": [CMS]}))
    assert main(["run", "--fileset", str(fs), "--executor", "iterative", "--taggers", str(arts["some"]),
                 "--pt-min", "200", "--pt-max", "3000", "--eta-max", "2.4", "--out", str(tmp_path / "o.coffea")]) == 0
    err = capsys.readouterr().err
    assert "notice: 4 selected jet(s) in 1 chunk(s) had a NaN / inf model input and were not scored" in err
    out = coffea.util.load(tmp_path / "o.coffea")
    assert out["run"]["nonfinite_inputs"]["jets"] == 4 == out["datasets"]["cms"]["cutflow"]["nonfinite_inputs"]
