"""Fine-tuning an imported multi-class model (hepml_coffea/training/finetune.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepml_coffea.artifacts import ArtifactError, load_artifact
from hepml_coffea.training.finetune import binary_classes, finetune


def test_binary_classes() -> None:
    classes = ("QCD", "Hbb", "Tbqq")
    assert binary_classes("Tbqq / (Tbqq + QCD)", classes) == (0, 2)
    assert binary_classes("Tbqq/(QCD+Tbqq)", classes) == (0, 2)
    for bad in ("Tbqq", "Tbqq / (Hbb + QCD)", "(Tbqq + Hbb) / (Tbqq + Hbb + QCD)", "Top / (Top + QCD)"):
        with pytest.raises(ArtifactError, match="S / \\(S \\+ B\\)"):
            binary_classes(bad, classes)


def test_finetune_particlenet_jetclass_writes_a_scoring_artifact(ttbar_file: Path, qcd_file: Path,
                                                                 tmp_path: Path) -> None:
    """A few steps on the session's small samples: same spec, classes and score; new weights;
    the parent's metrics on the same test jets recorded; the artifact scores through the engine."""
    from hepml_coffea import score_fatjets
    from hepml_coffea.data.io import load_events

    out = tmp_path / "ft"
    m = finetune("particlenet-jetclass", [str(ttbar_file)], [str(qcd_file)], str(out), time_budget_s=5, epochs=1,
                 batch_size=32, lr=1e-4, threads=1)
    art = load_artifact(out)
    parent = load_artifact("particlenet-jetclass")
    assert art.classes == parent.classes and art.score_expression == parent.score_expression
    assert art.spec.to_dict() == parent.spec.to_dict() and art.input_names == parent.input_names
    assert (out / "LICENSE").read_text() == (parent.path / "LICENSE").read_text()
    assert "auc" in m and "auc" in m["parent_test"] and m["n_test"] > 0
    changed = [k for k, v in art.model.state_dict().items()
               if v.dtype.is_floating_point and not np.allclose(v.numpy(), parent.model.state_dict()[k].numpy())]
    assert len(m["history"]["train"]) == 1  # it trained (one epoch in the budget)
    # the best validation loss wins: the parent's own weights when no epoch beat them
    assert bool(changed) == (m["best_epoch"] > 0)
    assert len(m["history"]["validation"]) == 2  # the parent's, then the epoch's
    ev = load_events(ttbar_file, mode="eager")
    s = score_fatjets(ev, [str(out)])
    assert len(s) == len(ev)


def test_finetune_refuses_a_model_without_classes(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="needs an artifact with classes"):
        finetune("pfn", [], [], str(tmp_path / "x"))
