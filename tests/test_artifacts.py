"""Artifacts: re-sealing with extra files (ONNX export) and the recorded CPU backend."""

from __future__ import annotations

import json

import pytest
import torch

from hepml_coffea.artifacts import (
    HASHED,
    ArtifactError,
    ArtifactIntegrityError,
    load_artifact,
    save_artifact,
    update_artifact,
)
from hepml_coffea.models import build_model
from hepml_coffea.representations import InputSpec


@pytest.fixture()
def tiny(tmp_path):
    torch.manual_seed(0)
    model = build_model("pfn", phi_sizes=[8], f_sizes=[8])
    path = tmp_path / "pfn"
    save_artifact(path, name="tiny", model=model, input_kind="sequence", spec=InputSpec(kind="sequence", length=20),
                  metrics={"auc": 0.5}, torchscript=False)
    return path


def test_update_artifact_adds_files_and_meta_keeps_weights(tiny) -> None:
    before = json.loads((tiny / "manifest.json").read_text())
    weights = (tiny / "weights.safetensors").read_bytes()
    assert "model.onnx" in HASHED
    new = update_artifact(tiny, files={"model.onnx": b"not really onnx"},
                          meta={"cpu_backend": {"chosen": "onnxruntime", "results": {}}})
    after = json.loads((tiny / "manifest.json").read_text())
    assert new == after["hash"] != before["hash"]
    assert after["files"]["weights.safetensors"] == before["files"]["weights.safetensors"]
    assert (tiny / "weights.safetensors").read_bytes() == weights
    assert set(after["files"]) == set(before["files"]) | {"model.onnx"}
    art = load_artifact(tiny)
    assert art.cpu_backend == "onnxruntime" and art.meta["name"] == "tiny"
    assert art.file_digest("model.onnx") == after["files"]["model.onnx"]
    update_artifact(tiny, remove=("model.onnx",), meta={"cpu_backend": None})
    art = load_artifact(tiny)
    assert not (tiny / "model.onnx").exists() and art.cpu_backend is None and art.file_digest("model.onnx") is None


def test_update_artifact_refuses_protected_files_and_tampered_artifacts(tiny) -> None:
    with pytest.raises(ArtifactError, match="'weights.safetensors' cannot be written"):
        update_artifact(tiny, files={"weights.safetensors": b""})
    with pytest.raises(ArtifactError, match="'notes.txt' cannot be written"):
        update_artifact(tiny, files={"notes.txt": b""})
    (tiny / "metrics.json").write_text("{}")
    with pytest.raises(ArtifactIntegrityError, match="metrics.json has sha256"):
        update_artifact(tiny, meta={"x": 1})


def test_onnx_file_not_in_manifest_is_refused(tiny) -> None:
    (tiny / "model.onnx").write_bytes(b"smuggled")
    with pytest.raises(ArtifactIntegrityError, match="model.onnx is not covered by manifest.json"):
        load_artifact(tiny)
