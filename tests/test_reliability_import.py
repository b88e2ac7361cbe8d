"""Issue 23, item 2: ``import_torchscript`` loads and runs the model on a dry batch of the
spec's shapes before sealing; a spec that does not fit the model is refused at import and
when a tagger is configured (``FatJetTagger(...)``), not at the first chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hepml_coffea.artifacts import ArtifactError, import_torchscript, load_artifact, update_artifact
from hepml_coffea.representations import InputSpec
from hepml_coffea.scoring import FatJetTagger


class _SumPool(torch.nn.Module):
    """(features (N, 7, P), mask (N, 1, P)) -> (N, 2) logits: a linear layer on the masked mean."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(7, 2)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (features * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1.0)
        return self.lin(pooled)


def _spec(n: int) -> InputSpec:
    names = ["deta", "dphi", "log_pt", "log_e", "log_pt_rel", "log_e_rel", "dR", "charge"][:n]
    return InputSpec.from_dict({"kind": "sequence", "length": 20, "features": [{"name": f} for f in names]})


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ts") / "sumpool.ts"
    torch.jit.script(_SumPool().eval()).save(str(path))
    return path


def test_matching_spec_imports_and_configures(ts_file, tmp_path):
    import_torchscript(ts_file, _spec(7), tmp_path / "ok")
    assert FatJetTagger([tmp_path / "ok"]).names == ["sumpool"]


def test_feature_count_mismatch_refused_at_import_nothing_written(ts_file, tmp_path):
    with pytest.raises(ArtifactError) as err:
        import_torchscript(ts_file, _spec(5), tmp_path / "bad")
    msg = str(err.value)
    assert msg.startswith(f"TorchScript model {ts_file} does not run on a batch of its input spec's shapes "
                          "(features (2, 5, 20), mask (2, 1, 20); 5 features ")
    assert "RuntimeError" in msg and "\n" not in msg
    assert not (tmp_path / "bad").exists() and list(tmp_path.iterdir()) == []


def test_not_torchscript_refused_at_import(tmp_path):
    junk = tmp_path / "model.ts"
    junk.write_bytes(b"this is not a TorchScript archive")
    with pytest.raises(ArtifactError, match=r"TorchScript model .*model.ts cannot be loaded \("):
        import_torchscript(junk, _spec(7), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_spec_changed_after_import_refused_when_configured(ts_file, tmp_path):
    import_torchscript(ts_file, _spec(7), tmp_path / "art")
    update_artifact(tmp_path / "art", meta={"input_spec": _spec(8).to_dict()})  # re-sealed: hashes agree
    with pytest.raises(ArtifactError, match=r"artifact .*art: model.ts does not run on a batch of its input spec's "
                                            r"shapes \(features \(2, 8, 20\)"):
        FatJetTagger([tmp_path / "art"])
    with pytest.raises(ArtifactError, match="8 features"):
        load_artifact(tmp_path / "art")


def test_wrong_output_shape_refused(tmp_path):
    class _Bad(torch.nn.Module):
        def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return features  # (N, F, P): not logits

    path = tmp_path / "bad.ts"
    torch.jit.script(_Bad()).save(str(path))
    with pytest.raises(ArtifactError, match=r"returns \(2, 7, 20\) for a batch of 2 jets"):
        import_torchscript(path, _spec(7), tmp_path / "art")
