"""Reliability (README, section Reliability): bad inputs, bad models, faults, safety, determinism.

Every test feeds the bad input and checks either the clear error (naming the problem and
the file / branch / event) or the counted skip that appears in the output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from hepml_coffea.artifacts import (
    HASHED,
    ArtifactError,
    ArtifactIntegrityError,
    _combined,
    _sha256,
    load_artifact,
    save_artifact,
)
from hepml_coffea.processor import TaggerProcessor

SAMPLES = Path(__file__).parent / "samples"


# --------------------------------------------------------------------------- bad files


# --------------------------------------------------------------------------- bad models
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


# --------------------------------------------------------------------------- faults


def test_interrupted_save_artifact_leaves_nothing(arts, tmp_path, monkeypatch):
    import hepml_coffea.artifacts as artifacts

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


# --------------------------------------------------------------------------- safety & determinism
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


