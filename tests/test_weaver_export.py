"""Exporting artifacts in weaver's form (hepml_coffea/weaver/export.py): import(export(x))
scores as x does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepml_coffea.artifacts import ArtifactError, load_artifact
from hepml_coffea.weaver import export_weaver, import_weaver

PFNANO = Path(__file__).parent / "samples" / "pfnano.root"


def _events():
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({str(PFNANO): "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()


@pytest.mark.parametrize("name", ["particlenet-lite", "pfn", "lstm"])
def test_import_of_export_scores_identically(name: str, tmp_path: Path) -> None:
    from hepml_coffea import score_fatjets

    files = export_weaver(name, tmp_path / "exp")
    doc = json.loads(files[1].read_text())
    assert doc["output_names"] == ["label_QCD", "label_Top"] and doc["input_names"][-1] == "pf_mask"
    assert doc["pf_features"]["var_length"] == load_artifact(name).spec.length
    back = import_weaver(files[0], preprocess=files[1], branch_map=files[2], name=f"{name}-back", out=tmp_path / "b")
    art = load_artifact(back)
    assert art.meta["trim_padding"] is True and art.score_expression == "Top"
    ev = _events()
    a = ak.to_numpy(ak.flatten(score_fatjets(ev, [name], backend="onnxruntime")[name]))
    b = ak.to_numpy(ak.flatten(score_fatjets(ev, [str(back)])[f"{name}-back"]))
    assert np.isfinite(a).all() and len(a) == 24
    np.testing.assert_allclose(b, a, atol=1e-6)


@pytest.mark.parametrize(("name", "needle"), [("cnn", "only sequence and point-cloud"), ("baseline", "no torch model")])
def test_what_cannot_be_exported(name: str, needle: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=needle):
        export_weaver(name, tmp_path)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepml_coffea.cli import main

    assert main(["export", "weaver", "pfn", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branch_map.yaml", "model.onnx", "preprocess.json"]
    assert "preprocess.json" in capsys.readouterr().out
