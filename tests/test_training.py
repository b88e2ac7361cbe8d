"""Training loop, metrics and artifacts."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest
import torch

from hepml_coffea.artifacts import (
    ArtifactError,
    ArtifactIntegrityError,
    load_artifact,
    save_artifact,
)
from hepml_coffea.cli import main as cli_main
from hepml_coffea.inference.engine import predict
from hepml_coffea.models import build_model
from hepml_coffea.training.dataset import (
    TEST,
    TRAIN,
    VAL,
    load_dataset,
    split_of,
    standard_spec,
)
from hepml_coffea.training.metrics import auc, rejection_at, roc_curve, tagger_metrics
from hepml_coffea.training.train import TrainConfig, train_on_dataset


def test_metrics_exact_values():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    # pairs (s, b) ordered correctly: 0.9 and 0.8 beat all 3; 0.2 beats only 0.1 -> 7/9
    assert auc(labels, scores) == pytest.approx(7 / 9)
    es, eb, thr = roc_curve(labels, scores)
    assert es.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1, 1])
    assert rejection_at(es, eb, 0.5) == np.inf
    m = tagger_metrics(labels, scores)
    assert m["accuracy"] == pytest.approx(4 / 6)  # 0.7 (QCD) and 0.2 (top) on the wrong side
    # eS50: the tops at 0.9 and 0.8 pass (as in evaluation); the cut sits midway to the next score, 0.7
    assert m["working_points"]["eS50"] == pytest.approx(0.75)
    # uncertainties: DeLong on the AUC; at eS = 50 % the threshold keeps 0.9 and 0.8, no QCD jet
    # passes (only a lower limit on 1/eB); at eS = 30 % the same threshold (0.9 alone is 33 %)
    v10 = np.array([1.0, 1.0, 1 / 3])  # per top jet: fraction of QCD jets below
    v01 = np.array([2 / 3, 1.0, 2 / 3])  # per QCD jet (0.7, 0.1, 0.3): fraction of top jets above
    assert m["auc_err"] == pytest.approx(np.sqrt(np.var(v10, ddof=1) / 3 + np.var(v01, ddof=1) / 3))
    assert m["rejection_30_n_pass"] == 0 and m["rejection_50_n_pass"] == 0 and m["rejection_50_interval"][1] == np.inf
    # k = 0 of 3: the 68 % upper bound on eB solves (1 - eB)^3 = (1 - CL) / 2
    assert m["rejection_50_interval"][0] == pytest.approx(1 / (1 - ((1 - 0.682689492137086) / 2) ** (1 / 3)))
    assert tagger_metrics(np.array([1, 0]), np.array([0.9, 0.1]))["auc_err"] is None  # one jet per class
    with pytest.raises(ValueError, match="NaN"):
        roc_curve(labels, np.array([np.nan, 1, 0, 0, 1, 0]))


def test_split_is_deterministic_by_event_number():
    ev = np.arange(1000, dtype=np.uint64)
    s = split_of(ev)
    assert (s == TRAIN).sum() == 600 and (s == VAL).sum() == 200 and (s == TEST).sum() == 200
    assert np.array_equal(s, split_of(ev.copy()))


def test_dataset_classes(ttbar_file, qcd_file):
    ds = load_dataset([ttbar_file], [qcd_file])
    assert set(np.unique(ds.labels)) == {0, 1}
    pt = np.asarray(ds.jets.pt)
    assert np.all((pt > 550) & (pt < 650))
    capped = load_dataset([ttbar_file], [qcd_file], max_jets=10)
    assert (capped.labels == 1).sum() == 10 and (capped.labels == 0).sum() == 10


@pytest.mark.parametrize("name", ["pfn", "cnn", "lstm", "particlenet-lite"])
def test_artifact_round_trip_bit_identical(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    kind = {"cnn": "image", "particlenet-lite": "pointcloud"}.get(name, "sequence")
    spec = standard_spec(kind)
    rng = np.random.default_rng(0)
    if kind == "image":
        inputs = [rng.random((6, 1, 40, 40), dtype=np.float32)]
    else:
        mask = (np.arange(100)[None, None, :] < np.array([3, 50, 100, 1, 20, 70])[:, None, None]).astype(np.float32)
        fts = rng.normal(size=(6, 7, 100)).astype(np.float32) * mask
        inputs = [fts, mask]
        if kind == "pointcloud":
            inputs = [rng.normal(0, 0.3, (6, 2, 100)).astype(np.float32) * mask, fts, mask]
    ref = predict(model, inputs)
    save_artifact(tmp_path / name, name=name, model=model, input_kind=kind, spec=spec, metrics={"auc": 0.5},
                  example_inputs=tuple(torch.from_numpy(a) for a in inputs))
    art = load_artifact(tmp_path / name)
    assert art.spec == spec and art.class_name == type(model).__name__
    assert np.array_equal(predict(art.model, inputs), ref)
    ts = torch.jit.load(str(tmp_path / name / "model.ts"))
    assert np.allclose(predict(ts, inputs), ref, atol=1e-6)


def test_tampered_artifacts_refused(tiny_artifacts, tmp_path):
    import shutil

    for fname in ("metrics.json", "model.yaml", "weights.safetensors"):
        bad = tmp_path / fname.replace(".", "_")
        shutil.copytree(tiny_artifacts["pfn"], bad)
        with open(bad / fname, "ab") as f:
            f.write(b"\n ")
        with pytest.raises(ArtifactIntegrityError, match=fname):
            load_artifact(bad)
    bad = tmp_path / "nomanifest"
    shutil.copytree(tiny_artifacts["pfn"], bad)
    (bad / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest"):
        load_artifact(bad)


def test_training_lowers_loss_and_writes_artifact(ttbar_file, qcd_file, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    ds = load_dataset([ttbar_file], [qcd_file])
    cfg = TrainConfig(model="pfn", epochs=4, batch_size=32, lr=3e-3, progress=False, patience=10)
    m = train_on_dataset(ds, tmp_path / "pfn", cfg)
    assert not list(scratch.glob("hepml_plots_*"))  # plot scratch folders removed
    hist_ = m["history"]["train"]
    assert len(hist_) == 4 and hist_[-1] < hist_[0]
    assert len(m["history"]["val_auc"]) == 4 and len(m["history"]["lr"]) == 4
    meta = load_artifact(tmp_path / "pfn").meta["training"]
    assert meta["length_bucketing"] is True
    assert (tmp_path / "pfn" / "model.onnx").is_file()  # exported and sealed with the artifact
    assert set(meta["input_stats"]) >= {"log_pt", "dR"} and all(abs(v["mean"]) < 5 for v in meta["input_stats"].values())
    assert m["n_train"] + m["n_val"] + m["n_test"] == len(ds)
    for f in ("model.yaml", "weights.safetensors", "metrics.json", "model.ts", "roc.png", "loss.png", "manifest.json"):
        assert (tmp_path / "pfn" / f).is_file(), f
    saved = json.loads((tmp_path / "pfn" / "metrics.json").read_text())
    assert saved["auc"] == pytest.approx(m["auc"]) and 0 <= saved["auc"] <= 1
    # same seed, same data -> same weights (deterministic training on CPU)
    m2 = train_on_dataset(ds, tmp_path / "pfn2", cfg)
    assert m2["auc"] == m["auc"]


def test_length_batches_cover_every_jet_once_and_group_lengths():
    from hepml_coffea.training.train import _length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, 1000)
    order = rng.permutation(1000)
    batches = _length_batches(order, lengths, 10, np.random.default_rng(1), pool=5)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) == 10 for b in batches)
    # within a pool of 50 jets the batches are sorted by length: spread far below random batches
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.mean([np.ptp(lengths[order[i:i + 10]]) for i in range(0, 1000, 10)])


def test_length_bucketing_does_not_change_pfn_outputs():
    torch.manual_seed(0)
    model = build_model("pfn").eval()
    feats = torch.randn(3, 7, 20)
    mask = torch.zeros(3, 1, 20)
    mask[0, :, :5] = 1
    mask[1, :, :9] = 1
    mask[2, :, :2] = 1
    with torch.no_grad():
        full = model(feats * mask, mask)
        trimmed = model((feats * mask)[..., :9], mask[..., :9])
    torch.testing.assert_close(full, trimmed)


def test_warm_start_continues_from_an_artifact(ttbar_file, qcd_file, tmp_path):
    ds = load_dataset([ttbar_file], [qcd_file])
    cfg = TrainConfig(model="pfn", epochs=1, batch_size=64, progress=False, seed=5)
    train_on_dataset(ds, tmp_path / "parent", cfg)
    parent = load_artifact(tmp_path / "parent")
    child_cfg = TrainConfig(model="pfn", epochs=1, batch_size=64, lr=1e-9, progress=False, seed=5,
                            init_from=str(tmp_path / "parent"))
    train_on_dataset(ds, tmp_path / "child", child_cfg)
    child = load_artifact(tmp_path / "child")
    assert child.meta["training"]["init_from"]["hash"] == parent.hash
    # a vanishing learning rate leaves the parent's weights (almost) unchanged
    for (k, a), b in zip(parent.model.state_dict().items(), child.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=k)
    with pytest.raises(ValueError, match="same architecture"):
        train_on_dataset(ds, tmp_path / "bad", TrainConfig(model="lstm", epochs=1, progress=False,
                                                           init_from=str(tmp_path / "parent")))


def test_model_options_reach_the_artifact(ttbar_file, qcd_file, tmp_path):
    """``TrainConfig.model_options`` builds the model with them; the artifact rebuilds the same
    model (ONNX export included: the pooled LSTM has an unpacked form); unknown options are an error."""
    ds = load_dataset([ttbar_file], [qcd_file])
    cfg = TrainConfig(model="lstm", epochs=1, batch_size=64, progress=False, plots=False, seed=5,
                      model_options={"pool": "meanmax", "hidden": 16})
    train_on_dataset(ds, tmp_path / "pooled", cfg)
    art = load_artifact(tmp_path / "pooled")
    assert art.model.config()["pool"] == "meanmax" and art.model.config()["hidden"] == 16
    assert (tmp_path / "pooled" / "model.onnx").exists()
    with pytest.raises(ValueError, match="unknown argument"):
        train_on_dataset(ds, tmp_path / "bad", TrainConfig(model="pfn", epochs=1, progress=False,
                                                           model_options={"pool": "mean"}))


def test_cli_train_model_option(ttbar_file, qcd_file, tmp_path, capsys):
    """--model-option KEY=VALUE (YAML values) reaches the model; a wrong key is a one-line error
    before any data is read."""
    rc = cli_main(["train", "--model", "lstm", "--signal", str(ttbar_file), "--background", str(qcd_file),
                   "--out", str(tmp_path / "paper"), "--epochs", "1", "--model-option", "pool=last",
                   "--model-option", "embed=[]"])
    assert rc == 0
    cfg = load_artifact(tmp_path / "paper").model.config()
    assert cfg["pool"] == "last" and cfg["embed"] == []
    capsys.readouterr()
    rc = cli_main(["train", "--model", "pfn", "--signal", str(ttbar_file), "--background", str(qcd_file),
                   "--out", str(tmp_path / "bad"), "--model-option", "pool=last"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "--model-option pool: not an argument of model 'pfn'" in err and not (tmp_path / "bad").exists()


def test_cli_train_model_choices_follow_the_registry():
    from hepml_coffea.cli import build_parser
    from hepml_coffea.models import MODEL_REGISTRY

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    model_action = next(a for a in train_parser._actions if "--model" in a.option_strings)
    assert set(model_action.choices) == {*MODEL_REGISTRY, "baseline"}


def test_cli_train_baseline(ttbar_file, qcd_file, tmp_path, capsys):
    assert cli_main(["train", "--model", "baseline", "--signal", str(ttbar_file), "--background", str(qcd_file),
                     "--out", str(tmp_path / "b")]) == 0
    art = load_artifact(tmp_path / "b")
    assert art.input_kind == "observables" and "auc" in art.metrics
    assert '"auc"' in capsys.readouterr().out


def test_onnx_export_after_training_is_checked_on_the_test_jets(tiny_artifacts, tmp_path, monkeypatch):
    """Training checks its ONNX export on the model's own test jets (the first
    EXPORT_CHECK_JETS, in input order), not on synthetic ones; with real-looking inputs
    the export of a sound model is written and sealed."""
    import shutil

    from hepml_coffea.inference import backends
    from hepml_coffea.training import train as train_mod

    art = tmp_path / "particlenet-lite"
    shutil.copytree(tiny_artifacts["particlenet-lite"], art)
    n = train_mod.EXPORT_CHECK_JETS + 5
    rng = np.random.default_rng(1)
    mask = (np.arange(100)[None, None, :] < rng.integers(1, 100, n)[:, None, None]).astype(np.float32)
    points = (rng.normal(scale=0.2, size=(n, 2, 100)) * mask).astype(np.float32)
    features = (rng.normal(size=(n, 7, 100)) * mask).astype(np.float32)
    seen = {}
    real_export = backends.export_onnx

    def spy(path, *, inputs=None, atol=1e-5):
        seen.update(inputs)
        return real_export(path, inputs=inputs, atol=atol)

    monkeypatch.setattr(backends, "export_onnx", spy)
    new_hash = train_mod._export_onnx(art, "pointcloud", [points, features, mask])
    assert set(seen) == {"points", "features", "mask"}
    assert len(seen["mask"]) == train_mod.EXPORT_CHECK_JETS
    np.testing.assert_array_equal(seen["points"], points[: train_mod.EXPORT_CHECK_JETS])
    np.testing.assert_array_equal(seen["features"], features[: train_mod.EXPORT_CHECK_JETS])
    assert new_hash == load_artifact(art).hash and (art / "model.onnx").is_file()
    assert load_artifact(art).meta["onnx"]["inputs"] == "given"  # the record says what it was checked on
    # an empty test split: checked on synthetic jets, and the record says so
    seen.clear()
    empty = [a[:0] for a in (points, features, mask)]
    monkeypatch.setattr(backends, "export_onnx", lambda path, *, inputs=None, atol=1e-5: seen.update(
        {"inputs": inputs}) or real_export(path, inputs=inputs, atol=atol))
    assert train_mod._export_onnx(art, "pointcloud", empty)
    assert seen == {"inputs": None} and load_artifact(art).meta["onnx"]["inputs"] == "synthetic"
