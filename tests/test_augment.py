"""Physics-aware training: jet-frame reflections / rotations, distillation, teacher cache."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hepml_coffea.representations import InputSpec, VarSpec
from hepml_coffea.training.augment import Augmenter, distillation_loss, teacher_logits
from hepml_coffea.training.dataset import standard_spec


def _batch():
    """Two jets, 3 particle slots, the third padded; features (deta, dphi, log_pt, ...)."""
    spec = standard_spec("pointcloud", length=3)
    f = np.zeros((2, spec.n_features, 3), np.float32)
    f[:, 0, :2] = [[0.1, -0.2], [0.3, 0.05]]   # deta
    f[:, 1, :2] = [[0.4, 0.1], [-0.2, -0.3]]   # dphi
    f[:, 2, :2] = [[1.0, 2.0], [3.0, 4.0]]     # log_pt (invariant)
    pts = f[:, :2, :].copy()
    mask = np.zeros((2, 1, 3), np.float32)
    mask[:, :, :2] = 1.0
    return spec, [torch.from_numpy(pts), torch.from_numpy(f), torch.from_numpy(mask)]


def test_reflections_flip_deta_dphi_per_jet_in_points_and_features_alike():
    spec, x = _batch()
    aug = Augmenter(spec, ("points", "features", "mask"), "reflect")
    seen = set()
    for seed in range(12):
        out = aug(x, torch.Generator().manual_seed(seed))
        pts, f, m = out
        for j in range(2):
            s_eta = float(f[j, 0, 0] / x[1][j, 0, 0])
            s_phi = float(f[j, 1, 0] / x[1][j, 1, 0])
            assert s_eta in (-1.0, 1.0) and s_phi in (-1.0, 1.0)
            seen.add((s_eta, s_phi))
            np.testing.assert_array_equal(f[j, 0].numpy(), s_eta * x[1][j, 0].numpy())
            np.testing.assert_array_equal(f[j, 1].numpy(), s_phi * x[1][j, 1].numpy())
            np.testing.assert_array_equal(pts[j].numpy(), f[j, :2].numpy())  # points follow the features
        np.testing.assert_array_equal(f[:, 2:].numpy(), x[1][:, 2:].numpy())  # direction-free features untouched
        assert torch.equal(m, x[2]) and float(f[:, :, 2].abs().sum()) == 0.0  # padding stays zero
    assert seen == {(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)}
    assert torch.equal(x[1][0, 0, :2], torch.tensor([0.1, -0.2]))  # the input is not modified in place


def test_rotation_keeps_distances_to_the_axis():
    spec, x = _batch()
    out = Augmenter(spec, ("points", "features", "mask"), "reflect+rotate")(x, torch.Generator().manual_seed(3))
    r_in = torch.hypot(x[1][:, 0], x[1][:, 1])
    r_out = torch.hypot(out[1][:, 0], out[1][:, 1])
    torch.testing.assert_close(r_out, r_in, rtol=0, atol=1e-6)
    assert not torch.allclose(out[1][:, 0], x[1][:, 0].abs()) and not torch.allclose(out[1][:, 0], -x[1][:, 0].abs())


def test_augmenter_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="already canonicalised"):
        Augmenter(standard_spec("image"), ("image",), "reflect")
    no_deta = InputSpec(kind="sequence", length=10, features=[VarSpec("dphi"), VarSpec("log_pt")])
    with pytest.raises(ValueError, match="no \\['deta'\\]"):
        Augmenter(no_deta, ("features", "mask"), "reflect")
    shifted = InputSpec(kind="sequence", length=10, features=[VarSpec("deta", center=0.1), VarSpec("dphi")])
    with pytest.raises(ValueError, match="centred at 0"):
        Augmenter(shifted, ("features", "mask"), "reflect")
    with pytest.raises(ValueError, match="choose one of"):
        Augmenter(standard_spec("sequence"), ("features", "mask"), "mirror")
    assert not Augmenter(standard_spec("image"), ("image",), "none").active


def test_teacher_logits_and_distillation_loss_pinned():
    tl = teacher_logits(np.array([0.5, 0.9, np.nan]))
    np.testing.assert_allclose(tl[0], [math.log(0.5), math.log(0.5)], rtol=1e-6)
    np.testing.assert_allclose(tl[1], [math.log(0.1), math.log(0.9)], rtol=1e-6)
    assert np.isnan(tl[2]).all()
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    labels = torch.tensor([1, 0])
    teacher = torch.from_numpy(teacher_logits(np.array([0.9, 0.2])))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert float(distillation_loss(logits, labels, teacher, 0.0, 2.0)) == pytest.approx(float(ce))
    # by hand: KL(q_T || p_T) with q_T = softmax(teacher / T), p_T = softmax(logits / T), T = 2
    t = 2.0
    q = torch.softmax(teacher / t, 1)
    p = torch.softmax(logits / t, 1)
    kl = float((q * (q.log() - p.log())).sum(1).mean()) * t * t
    got = float(distillation_loss(logits, labels, teacher, 0.25, t))
    assert got == pytest.approx(0.75 * float(ce) + 0.25 * kl, rel=1e-6)
    # a student that equals the teacher has no distillation term; jets without a teacher score: labels only
    assert float(distillation_loss(teacher, labels, teacher, 1.0, t)) == pytest.approx(0.0, abs=1e-6)
    nan_teacher = torch.full((2, 2), float("nan"))
    assert float(distillation_loss(logits, labels, nan_teacher, 0.5, t)) == pytest.approx(float(ce))


@pytest.mark.slow
def test_teacher_scores_cached_beside_the_data_and_distilled_training(arts, ttbar_file, qcd_file, tmp_path,
                                                                       monkeypatch):
    from hepml_coffea.scoring import FatJetTagger
    from hepml_coffea.selection import Selection
    from hepml_coffea.training import teacher as teacher_mod
    from hepml_coffea.training.dataset import load_dataset
    from hepml_coffea.training.train import TrainConfig, train_on_dataset

    sig, bkg = tmp_path / "ttbar_11.root", tmp_path / "qcd_21.root"
    shutil.copy(ttbar_file, sig)
    shutil.copy(qcd_file, bkg)
    ds = load_dataset([sig], [bkg], teacher=arts["pfn"])
    assert ds.teacher is not None and ds.teacher.shape == (len(ds),) and np.isfinite(ds.teacher).all()
    # the same numbers as scoring the dataset's jets directly with the teacher
    plain = load_dataset([sig], [bkg])
    assert np.array_equal(plain.event, ds.event) and len(plain) == len(ds) > 50
    cache = sorted(p.name for p in (tmp_path / "teacher").glob("*.npz"))
    assert len(cache) == 2 and all(".pfn-" in n for n in cache)
    man = json.loads((tmp_path / "teacher" / "manifest.json").read_text())
    assert {e["jets"] for e in man["files"].values()} == {int((ds.labels == 1).sum()), int((ds.labels == 0).sum())}
    # second load: from the cache (the teacher is not run again)
    monkeypatch.setattr(FatJetTagger, "score_constituents", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = load_dataset([sig], [bkg], teacher=arts["pfn"])
    np.testing.assert_array_equal(again.teacher, ds.teacher)
    # another selection is another key: recomputed, never a stale cache
    monkeypatch.undo()
    calls = []
    orig = teacher_mod.cached_teacher_scores

    def spy(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(teacher_mod, "cached_teacher_scores", spy)
    narrow = load_dataset([sig], [bkg], selection=Selection(pt_min=560, pt_max=640), teacher=arts["pfn"])
    assert len(narrow) < len(ds) and calls
    meta = json.loads((tmp_path / "teacher" / "manifest.json").read_text())
    assert any("560 < pT < 640" in e["key"]["selection"] for e in meta["files"].values())
    # distilled, augmented training runs and records its teacher
    cfg = TrainConfig(model="pfn", epochs=1, batch_size=64, progress=False, plots=False, onnx=False,
                      augment="reflect", distill=0.5)
    train_on_dataset(ds, tmp_path / "student", cfg)
    import yaml

    doc = yaml.safe_load((tmp_path / "student" / "model.yaml").read_text())
    assert doc["training"]["teacher"]["name"] == "pfn" and doc["training"]["config"]["distill"] == 0.5
    assert doc["training"]["config"]["augment"] == "reflect"
    with pytest.raises(ValueError, match="needs teacher scores"):
        train_on_dataset(plain, tmp_path / "x", TrainConfig(model="pfn", epochs=1, distill=0.5, progress=False,
                                                            plots=False, onnx=False))
