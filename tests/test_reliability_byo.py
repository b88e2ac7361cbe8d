"""Issue 23, item 10: evaluation and fine-tuning read the candidate branches a BYO spec
needs (``spec.required_cand_fields()``), so a spec over e.g. ``puppiWeight`` can be evaluated and
fine-tuned like a shipped tagger."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from faults import collections, write_tree

from hepml_coffea.artifacts import load_artifact, save_artifact
from hepml_coffea.evaluation.dataset import load_eval_sample
from hepml_coffea.models import build_model
from hepml_coffea.representations import InputSpec
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import standard_spec
from hepml_coffea.training.train import TrainConfig, train

WIDE = Selection(pt_min=200, pt_max=3000, abs_eta_max=2.5)


def _with_pw(src: Path, dst: Path) -> Path:
    """A copy of a generated file with a ``PFCands_puppiWeight`` branch (1.0 for every candidate)."""
    cols = collections(src)
    cols["PFCands"] = ak.with_field(cols["PFCands"], cols["PFCands"].pt * 0 + np.float32(1.0), "puppiWeight")
    return write_tree(dst, cols)


@pytest.fixture(scope="module")
def pw_files(ttbar_file, qcd_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("pw")
    return _with_pw(ttbar_file, root / "ttbar_pw.root"), _with_pw(qcd_file, root / "qcd_pw.root")


@pytest.fixture(scope="module")
def byo_pfn(tmp_path_factory) -> Path:
    """An (untrained) PFN whose third feature reads the candidate branch ``puppiWeight`` (not carried by default)."""
    import torch

    torch.manual_seed(0)
    doc = standard_spec("sequence").to_dict()
    doc["features"][2]["name"] = "log(pt) + 0.1 * puppiWeight"
    spec = InputSpec.from_dict(doc)
    assert "puppiWeight" in spec.required_cand_fields()
    out = tmp_path_factory.mktemp("byo") / "byo-pfn"
    save_artifact(out, name="byo-pfn", model=build_model("pfn").eval(), input_kind="sequence", spec=spec,
                  metrics={}, torchscript=False)
    return out


def test_evaluation_scores_a_byo_spec_that_reads_pw(pw_files, byo_pfn):
    sample = load_eval_sample([pw_files[0]], [pw_files[1]], [str(byo_pfn)], selection=WIDE, log=None)
    s = sample.scores[str(byo_pfn)]
    assert len(s) == len(sample.pt) > 0 and np.isfinite(s).all()


def test_fine_tuning_keeps_the_byo_spec_and_reads_pw(pw_files, byo_pfn, tmp_path):
    cfg = TrainConfig(model="pfn", epochs=1, batch_size=64, progress=False, seed=3, init_from=str(byo_pfn),
                      onnx=False, plots=False)
    train([pw_files[0]], [pw_files[1]], tmp_path / "tuned", cfg, selection=WIDE)
    tuned = load_artifact(tmp_path / "tuned")
    assert tuned.spec is not None and tuned.spec.feature_names[2] == "log(pt) + 0.1 * puppiWeight"
    assert tuned.meta["training"]["init_from"]["hash"] == load_artifact(byo_pfn).hash
