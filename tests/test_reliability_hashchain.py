"""Issue 23, item 1: the compiled runtimes are bound to the weights they were exported from
(model.yaml ``weights_sha256``) and checked on the artifact's probe (probe.npz) when loaded;
a ``model.onnx`` / ``model.pt2`` swapped in from another artifact, manifest re-sealed, is
refused with one line naming the file. Artifacts from before the probe keep loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hepml_coffea.artifacts import ArtifactIntegrityError, load_artifact, save_artifact, shipped_taggers, update_artifact
from hepml_coffea.inference.backends import aoti_incompatibility, export_onnx, synthetic_inputs
from hepml_coffea.inference.runners import make_runner
from hepml_coffea.inference.engine import get_tagger
from hepml_coffea.inference.probes import PROBE_FILE, PROBE_JETS
from hepml_coffea.inference.tuning import add_probe
from hepml_coffea.models import build_model
from hepml_coffea.scoring import FatJetTagger
from hepml_coffea.training.dataset import standard_spec


def _exported(root: Path, name: str, model: str, seed: int) -> Path:
    import torch

    torch.manual_seed(seed)
    out = root / name
    save_artifact(out, name=name, model=build_model(model).eval(), input_kind="sequence",
                  spec=standard_spec("sequence", 30), metrics={}, torchscript=False)
    export_onnx(out)
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chain")
    return {"pfn": _exported(root, "pfn", "pfn", 1), "lstm": _exported(root, "lstm", "lstm", 2)}


@pytest.fixture
def pfn(pair, tmp_path) -> Path:
    out = tmp_path / "pfn"
    shutil.copytree(pair["pfn"], out)
    return out


def _onnx_runner(path: Path):
    art = load_artifact(path)
    return make_runner(art, art.model, "onnxruntime", strict=True)


def test_export_records_weights_and_probe(pair):
    art = load_artifact(pair["pfn"])
    assert art.meta["onnx"]["weights_sha256"] == art.file_digest("weights.safetensors")
    assert art.meta["probe"]["weights_sha256"] == art.file_digest("weights.safetensors")
    assert art.meta["probe"]["sha256"] == art.file_digest(PROBE_FILE) and art.meta["probe"]["jets"] == PROBE_JETS
    with np.load(pair["pfn"] / PROBE_FILE) as z:
        assert z["features"].shape == (PROBE_JETS, 7, 30) and z["scores"].shape == (PROBE_JETS,)
        assert (z["mask"].reshape(PROBE_JETS, -1).sum(axis=1) > 0).all()
    runner = _onnx_runner(pair["pfn"])  # its own runtime passes
    x = synthetic_inputs(art, n=8)
    assert np.allclose(runner([x["features"], x["mask"]]), get_tagger(str(pair["pfn"]), "cpu", None, backend="torch")
                       .predict(x), atol=1e-5)


def test_onnx_copied_from_another_artifact_is_refused(pair, pfn):
    update_artifact(pfn, files={"model.onnx": (pair["lstm"] / "model.onnx").read_bytes()})  # manifest re-sealed
    with pytest.raises(ArtifactIntegrityError, match=rf"artifact {pfn}: model.onnx \(sha256 \w+\.\.\.\) is not the "
                                                     r"file its onnx record describes"):
        FatJetTagger([pfn])  # at configuration, before any chunk
    with pytest.raises(ArtifactIntegrityError, match="model.onnx"):  # through the engine, as a worker loads it
        get_tagger(str(pfn), "cpu", None, backend="onnxruntime")


def test_onnx_and_its_record_copied_are_refused_by_the_weights_hash(pair, pfn):
    lstm_rec = yaml.safe_load((pair["lstm"] / "model.yaml").read_text())["onnx"]
    update_artifact(pfn, files={"model.onnx": (pair["lstm"] / "model.onnx").read_bytes()}, meta={"onnx": lstm_rec})
    with pytest.raises(ArtifactIntegrityError) as err:
        _onnx_runner(pfn)  # refused when the artifact is loaded: before any runtime
    msg = str(err.value)
    assert msg.startswith(f"artifact {pfn}: weights.safetensors (sha256 ")
    assert "is not the file its onnx record (model.onnx) was made from" in msg and "\n" not in msg
    with pytest.raises(ArtifactIntegrityError, match="onnx record"):
        FatJetTagger([pfn])  # at configuration


def test_forged_weights_hash_is_caught_by_the_probe(pair, pfn):
    rec = yaml.safe_load((pair["lstm"] / "model.yaml").read_text())["onnx"]
    rec["weights_sha256"] = load_artifact(pfn).file_digest("weights.safetensors")  # lie about the weights
    update_artifact(pfn, files={"model.onnx": (pair["lstm"] / "model.onnx").read_bytes()}, meta={"onnx": rec})
    with pytest.raises(ArtifactIntegrityError, match=r"model.onnx gives scores that differ from the probe's by .* "
                                                     r"\(allowed 1e-04 for onnxruntime\)"):
        _onnx_runner(pfn)


def test_probe_from_other_weights_is_refused(pair, pfn):
    lstm = load_artifact(pair["lstm"])
    update_artifact(pfn, files={PROBE_FILE: (pair["lstm"] / PROBE_FILE).read_bytes()},
                    meta={"probe": lstm.meta["probe"]})
    with pytest.raises(ArtifactIntegrityError, match=r"is not the file its probe record \(probe.npz\) was made from"):
        _onnx_runner(pfn)


def test_weights_swapped_between_artifacts_of_one_architecture_are_refused(pfn, tmp_path):
    from hepml_coffea.artifacts.sealing import _seal

    other = _exported(tmp_path / "other", "pfn2", "pfn", 7)  # same class and kwargs, other weights
    tmp = tmp_path / "resealed"
    shutil.copytree(pfn, tmp)
    shutil.copy(other / "weights.safetensors", tmp / "weights.safetensors")
    (tmp / "manifest.json").unlink()
    _seal(tmp, pfn)  # by hand: update_artifact never replaces weights
    with pytest.raises(ArtifactIntegrityError, match=r"weights.safetensors \(sha256 .*\) is not the file its probe "
                                                     r"record \(probe.npz\) was made from"):
        FatJetTagger([pfn])


def test_old_artifact_without_probe_still_loads_unchecked(pair, pfn):
    rec = dict(load_artifact(pfn).meta["onnx"])
    rec.pop("weights_sha256")
    update_artifact(pfn, remove=(PROBE_FILE,), meta={"probe": None, "onnx": rec})
    assert _onnx_runner(pfn) is not None  # documented: the hash chain is simply not checked
    # add_probe (workflows/add_probes.py) binds it again, scores unchanged
    before = _onnx_runner(pfn)
    res = add_probe(pfn)
    assert res["model.onnx"].startswith("checked: max score difference")
    art = load_artifact(pfn)
    assert art.hash == res["hash"] and art.meta["onnx"]["weights_sha256"] == art.file_digest("weights.safetensors")
    x = synthetic_inputs(art, n=8)
    assert np.array_equal(_onnx_runner(pfn)([x["features"], x["mask"]]), before([x["features"], x["mask"]]))
    # and a swap is refused again
    update_artifact(pfn, files={"model.onnx": (pair["lstm"] / "model.onnx").read_bytes()})
    with pytest.raises(ArtifactIntegrityError, match="model.onnx"):
        _onnx_runner(pfn)


def test_shipped_runtimes_are_bound():
    for name in ("cnn", "lstm", "pfn", "particlenet-lite"):
        art = load_artifact(name)
        assert art.meta["probe"]["weights_sha256"] == art.file_digest("weights.safetensors"), name
        for fname, key in (("model.onnx", "onnx"), ("model.pt2", "aoti")):
            if art.file_digest(fname):
                assert art.meta[key]["weights_sha256"] == art.file_digest("weights.safetensors"), (name, fname)


def test_shipped_aoti_package_swapped_between_artifacts_is_refused(tmp_path):
    cnn = tmp_path / "cnn"
    shutil.copytree(shipped_taggers()["cnn"], cnn)
    if aoti_incompatibility(load_artifact(cnn).meta.get("aoti")) is not None:
        pytest.skip("the shipped model.pt2 cannot run on this machine")
    art = load_artifact(cnn)
    make_runner(art, art.model, "aoti", strict=True)  # its own package passes its probe
    other = shipped_taggers()["particlenet-lite"]
    rec = dict(yaml.safe_load((other / "model.yaml").read_text())["aoti"])
    rec["weights_sha256"] = art.file_digest("weights.safetensors")
    update_artifact(cnn, files={"model.pt2": (other / "model.pt2").read_bytes()}, meta={"aoti": rec})
    art = load_artifact(cnn)
    with pytest.raises(ArtifactIntegrityError, match=rf"artifact {cnn}: model.pt2 (does not run on|gives scores)"):
        make_runner(art, art.model, "aoti", strict=True)
