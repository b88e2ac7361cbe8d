"""Artifacts (hepml_coffea/artifacts.py): sealing, verification, bring-your-own TorchScript, ONNX re-sealing, refusals."""

from __future__ import annotations

import json
import os
import re
import shutil

import awkward as ak
import numpy as np
import pytest
import torch
import yaml

from hepml_coffea.artifacts import (
    HASHED,
    ArtifactError,
    ArtifactIntegrityError,
    import_torchscript,
    load_artifact,
    save_artifact,
    update_artifact,
)
from hepml_coffea.artifacts.sealing import _combined, _sha256
from hepml_coffea.data.constituents import (
    fatjet_constituents,
)
from hepml_coffea.inference import engine
from hepml_coffea.data.io import read_arrays
from hepml_coffea.models import build_model
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.representations import InputSpec
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import standard_spec


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


def _copy_artifact(src, dst):
    shutil.copytree(src, dst)
    return dst



def _rehash(path):
    """Rewrite manifest.json so every checksum matches (a consistent, but edited, artifact)."""
    files = {f: _sha256(path / f) for f in HASHED if (path / f).exists()}
    (path / "manifest.json").write_text(json.dumps({"files": files, "hash": _combined(files)}, indent=2))



def test_missing_artifact_names_path_and_shipped(tmp_path):
    from hepml_coffea.artifacts import shipped_taggers

    missing = tmp_path / "no_such_tagger"
    with pytest.raises(ArtifactError) as info:
        TaggerProcessor(taggers=[missing])
    msg = str(info.value)
    assert str(missing) in msg and "shipped" in msg
    for name in shipped_taggers():
        assert name in msg



@pytest.mark.parametrize("fname", ["metrics.json", "model.yaml"])
def test_hash_mismatch_refused_at_construction(fname, arts, tmp_path):
    bad = _copy_artifact(arts["pfn"], tmp_path / "pfn")
    with open(bad / fname, "a") as f:
        f.write("\n")  # harmless-looking edit; still not the artifact that was hashed
    with pytest.raises(ArtifactIntegrityError, match=re.escape(fname) + ".*refusing"):
        TaggerProcessor(taggers=[bad])



def test_spec_not_fitting_model_refused(arts, tmp_path):
    bad = _copy_artifact(arts["pfn"], tmp_path / "pfn6")
    doc = yaml.safe_load((bad / "model.yaml").read_text())
    doc["input_spec"]["features"] = doc["input_spec"]["features"][:6]
    (bad / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _rehash(bad)
    with pytest.raises(ArtifactError, match=r"6 features.*expects 7"):
        TaggerProcessor(taggers=[bad])



def test_interrupted_save_artifact_leaves_nothing(arts, tmp_path, monkeypatch):
    import hepml_coffea.artifacts.sealing as artifacts

    art = load_artifact(arts["pfn"])

    def interrupted(path):
        raise KeyboardInterrupt

    kw = {"name": "pfn-copy", "model": art.model, "input_kind": art.input_kind, "spec": art.spec,
          "metrics": art.metrics, "torchscript": False}
    monkeypatch.setattr(artifacts, "_sha256", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(tmp_path / "new", **kw)
    assert list(tmp_path.iterdir()) == []
    # overwriting an existing artifact: the old one stays complete and loadable
    old = _copy_artifact(arts["pfn"], tmp_path / "old")
    with pytest.raises(KeyboardInterrupt):
        save_artifact(old, **kw)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert load_artifact(old).hash == art.hash



def test_pickled_weights_refused_without_running_code(arts, tmp_path):
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    bad = _copy_artifact(arts["pfn"], tmp_path / "evil")
    torch.save({"phi.0.weight": Payload()}, bad / "weights.safetensors")
    _rehash(bad)  # checksums consistent: only the weights format can stop it
    with pytest.raises(ArtifactError, match=r"weights\.safetensors is not a valid safetensors file"):
        load_artifact(bad)
    with pytest.raises(ArtifactError, match="safetensors"):
        TaggerProcessor(taggers=[bad])
    assert not marker.exists()
    # the payload is live: an unpickling loader would have run it
    with open(bad / "weights.safetensors", "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()


def test_import_torchscript_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        import_torchscript(tmp_path / "nope.ts", standard_spec("sequence"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_byo_torchscript_equals_coffea_torch_wrapper(tiny_artifacts, ttbar_file, tmp_path):
    import torch
    from coffea.ml_tools.torch_wrapper import torch_wrapper

    from hepml_coffea.representations import build

    src = load_artifact(tiny_artifacts["particlenet-lite"])
    ts = tmp_path / "pn.ts"
    torch.jit.script(src.model).save(str(ts))
    import_torchscript(ts, src.spec, tmp_path / "byo", name="byo-pn")
    byo = load_artifact(tmp_path / "byo")
    assert byo.class_name == "TorchScript"
    jc = fatjet_constituents(read_arrays(ttbar_file))
    jc = jc.select(Selection().mask(jc) & jc.valid)
    built = build(jc.cands, jc.jets, byo.spec)

    class Wrapper(torch_wrapper):
        def prepare_awkward(self, points, features, mask):
            return (points, features, mask), {}

    wrapped = Wrapper(str(ts))
    logits = wrapped(ak.Array(built["points"]), ak.Array(built["features"]), ak.Array(built["mask"]))
    ref = torch.softmax(torch.from_numpy(np.asarray(ak.to_numpy(logits))), dim=1)[:, 1].numpy()
    ours = engine.predict(byo.model, [built[k] for k in byo.input_names], batch_size=50)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # and through the processor
    p = TaggerProcessor(taggers=[tmp_path / "byo"])
    assert p.tagger_names == ["byo-pn"]



def test_missing_or_tampered_artifact_refused_at_start(tiny_artifacts, tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        TaggerProcessor(taggers=[tmp_path / "nope"])

    bad = tmp_path / "pfn"
    shutil.copytree(tiny_artifacts["pfn"], bad)
    with open(bad / "weights.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="sha256"):
        TaggerProcessor(taggers=[bad])
