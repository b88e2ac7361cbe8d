"""Error paths not covered elsewhere: each bad argument gives an error that names it."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from hepml_coffea.artifacts import ArtifactError, import_torchscript
from hepml_coffea.constituents import fatjet_constituents
from hepml_coffea.inference import engine
from hepml_coffea.processor import TaggerProcessor
from hepml_coffea.samples import GenerationConfig
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import standard_spec


def test_generation_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown process 'wjets'"):
        GenerationConfig(process="wjets", n_events=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be in"):
        GenerationConfig(process="qcd", n_events=10, seed=0)
    with pytest.raises(ValueError, match="n_events must be >= 0"):
        GenerationConfig(process="qcd", n_events=-1)


def test_msd_window_without_msoftdrop_branch():
    events = ak.zip({
        "FatJet": ak.Array([[{"pt": 600.0, "eta": 0.0, "phi": 0.0, "mass": 170.0}]]),
        "PFCands": ak.Array([[{"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]]),
        "FatJetPFCands": ak.Array([[{"jetIdx": 0, "pFCandsIdx": 0}]]),
    }, depth_limit=1)
    jc = fatjet_constituents(events)
    with pytest.raises(KeyError, match="FatJet_msoftdrop"):
        Selection(msd_min=100).mask(jc)


def test_device_and_amp_and_duplicate_names(tiny_artifacts):
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            engine.resolve_device("cuda")
    with pytest.raises(ValueError, match="amp must be"):
        TaggerProcessor(taggers=[tiny_artifacts["pfn"]], amp="int8")
    with pytest.raises(ValueError, match="two taggers are named 'pfn'"):
        TaggerProcessor(taggers=[tiny_artifacts["pfn"], tiny_artifacts["pfn"]])


def test_predict_rejects_mismatched_inputs_and_outputs():
    model = torch.nn.Identity()
    with pytest.raises(ValueError, match="different lengths"):
        engine.predict(model, [np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32)])
    with pytest.raises(ValueError, match=r"output of shape \(3, 5\)"):
        engine.predict(lambda x: x, [np.zeros((3, 5), np.float32)])


def test_import_torchscript_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        import_torchscript(tmp_path / "nope.ts", standard_spec("sequence"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
