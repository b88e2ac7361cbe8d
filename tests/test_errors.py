"""Error paths not covered elsewhere: each bad argument gives an error that names it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepml_coffea.artifacts import ArtifactError, import_torchscript
from hepml_coffea.inference import engine
from hepml_coffea.training.dataset import standard_spec


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
