"""Tests for the model zoo (hepml_coffea.models). Small inputs, CPU, < ~60 s."""

from __future__ import annotations

import io
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor

from hepml_coffea.models.lstm import UnpackedJetLSTM
from hepml_coffea.models import (
    MODEL_REGISTRY,
    CutBasedTopTagger,
    JetImageCNN,
    JetLSTM,
    ParticleFlowNetwork,
    ParticleNet,
    ParticleNetPyG,
    build_model,
    count_parameters,
    dense_to_pyg_batch,
    model_from_config,
    particlenet_pyg_forward,
    tau32_ratio,
)

SEQ_MODELS = ["lstm", "pfn", "particlenet", "particlenet-lite"]
ALL_MODELS = ["cnn", *SEQ_MODELS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # shared machine: keep it polite
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- helpers
def make_jets(counts: List[int], P: int, C: int = 7, seed: int = 0) -> Tuple[Tensor, Tensor, Tensor]:
    """Random padded jets: real particles first, zeros + mask 0 after."""
    g = torch.Generator().manual_seed(seed)
    N = len(counts)
    mask = torch.zeros(N, 1, P)
    for j, n in enumerate(counts):
        mask[j, 0, :n] = 1.0
    points = torch.randn(N, 2, P, generator=g) * 0.4 * mask
    features = torch.randn(N, C, P, generator=g) * mask
    return points, features, mask


def pad_to(x: Tensor, P: int) -> Tensor:
    return torch.nn.functional.pad(x, (0, P - x.size(-1)))


def run(model: torch.nn.Module, kind: str, points: Tensor, features: Tensor, mask: Tensor) -> Tensor:
    if kind == "pointcloud":
        return model(points, features, mask)
    if kind == "sequence":
        return model(features, mask)
    raise AssertionError(kind)


def model_inputs(name: str, N: int = 3, seed: int = 0) -> Tuple[Tensor, ...]:
    kind = MODEL_REGISTRY[name].input_kind
    if kind == "image":
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(N, 1, 40, 40, generator=g),)
    points, features, mask = make_jets([50, 12, 3][:N] + [20] * max(0, N - 3), P=60, seed=seed)
    return (points, features, mask) if kind == "pointcloud" else (features, mask)


def seeded(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(1234)
    return build_model(name, **kw).eval()


# --------------------------------------------------------------------------- basic contract
@pytest.mark.parametrize("name", ALL_MODELS)
def test_output_shape_and_contract(name: str) -> None:
    model = seeded(name)
    spec = MODEL_REGISTRY[name]
    assert model.input_kind == spec.input_kind in {"image", "sequence", "pointcloud"}
    inputs = model_inputs(name, N=4)
    with torch.inference_mode():
        out = model(*inputs)
    assert out.shape == (4, 2)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert repr(model)  # printable
    # config is plain YAML
    cfg = model.config()
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg


@pytest.mark.parametrize("name", ALL_MODELS)
def test_train_mode_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).train()
    inputs = model_inputs(name, N=3)
    loss = torch.nn.functional.cross_entropy(model(*inputs), torch.tensor([0, 1, 1]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_parameter_counts_pinned() -> None:
    counts: Dict[str, int] = {name: count_parameters(build_model(name)) for name in MODEL_REGISTRY}
    print("parameter counts:", counts)
    # ParticleNet with weaver's fusion block (use_fusion=True, weaver default):
    # 571,728. The paper's 366k corresponds to use_fusion=False (366,160 below).
    assert counts["particlenet"] == 571_728
    assert count_parameters(build_model("particlenet", use_fusion=False)) == 366_160  # paper: 366k
    # ParticleNet-Lite: 47,152 with fusion; 26,416 without (paper: 26k).
    assert counts["particlenet-lite"] == 47_152
    assert count_parameters(build_model("particlenet-lite", use_fusion=False)) == 26_416
    # PFN (100,100,256)/(100,100,100), 7 inputs: 82,858 (reference ~82k).
    assert counts["pfn"] == 82_858
    assert counts["cnn"] == 62_946  # DeepTop-like, 4x(8 ch 4x4) + 3x64 dense on 40x40
    # embed 7->64->64 (4,672) + LSTM(64->128) (99,328) + dense on mean+max 256->64 (16,448) + 64->2 (130)
    assert counts["lstm"] == 120_578
    assert count_parameters(build_model("lstm", pool="last", embed=[])) == 78_530  # the paper's form: LSTM(7->128) + 64 dense


# --------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("name", SEQ_MODELS)
def test_padding_invariance(name: str) -> None:
    """Same jets padded to P=60 and P=100 give the same output (eval mode).

    Includes jets with fewer real particles than k (16 / 7) and an empty jet.
    """
    model = seeded(name)
    kind = MODEL_REGISTRY[name].input_kind
    points, features, mask = make_jets([60, 33, 16, 7, 5, 1, 0], P=60, seed=3)
    with torch.inference_mode():
        a = run(model, kind, points, features, mask)
        b = run(model, kind, pad_to(points, 100), pad_to(features, 100), pad_to(mask, 100))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # and the scores, explicitly
    torch.testing.assert_close(a.softmax(1)[:, 1], b.softmax(1)[:, 1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["particlenet", "particlenet-lite"])
def test_particlenet_padding_shorter_than_k(name: str) -> None:
    """P <= k: phantom neighbours make P=8 and P=100 agree (weaver would differ)."""
    model = seeded(name)
    points, features, mask = make_jets([8, 5, 1], P=8, seed=6)
    with torch.inference_mode():
        a = model(points, features, mask)
        b = model(pad_to(points, 100), pad_to(features, 100), pad_to(mask, 100))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["pfn", "particlenet", "particlenet-lite"])
def test_permutation_invariance(name: str) -> None:
    model = seeded(name)
    kind = MODEL_REGISTRY[name].input_kind
    counts = [45, 20, 9, 4]
    points, features, mask = make_jets(counts, P=60, seed=5)
    p2, f2 = points.clone(), features.clone()
    g = torch.Generator().manual_seed(9)
    for j, n in enumerate(counts):
        perm = torch.randperm(n, generator=g)
        p2[j, :, :n] = points[j, :, perm]
        f2[j, :, :n] = features[j, :, perm]
    with torch.inference_mode():
        a = run(model, kind, points, features, mask)
        b = run(model, kind, p2, f2, mask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_lstm_is_order_sensitive() -> None:
    """Sanity: the LSTM (unlike PFN/ParticleNet) does depend on the order."""
    model = seeded("lstm")
    _, features, mask = make_jets([30], P=40, seed=2)
    f2 = features.clone()
    f2[0, :, :30] = features[0, :, :30].flip(-1)
    with torch.inference_mode():
        assert not torch.allclose(model(features, mask), model(f2, mask), atol=1e-5)


@pytest.mark.parametrize("name", SEQ_MODELS)
def test_zero_particle_jet_is_finite(name: str) -> None:
    kind = MODEL_REGISTRY[name].input_kind
    points, features, mask = make_jets([0, 0, 10], P=30, seed=1)
    model = seeded(name)
    with torch.inference_mode():
        out = run(model, kind, points, features, mask)
    assert torch.isfinite(out).all()
    # all-empty batch too
    with torch.inference_mode():
        out = run(model, kind, points[:2], features[:2], mask[:2])
    assert torch.isfinite(out).all()
    # train mode (BatchNorm batch statistics) must not produce NaN either
    model.train()
    out = run(model, kind, points, features, mask)
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- ParticleNet dense vs pyg
@pytest.mark.parametrize("lite", [True, False])
def test_particlenet_dense_vs_pyg(lite: bool) -> None:
    torch.manual_seed(7)
    model = (ParticleNet.lite() if lite else ParticleNet()).eval()
    # randomise BatchNorm running stats so the check is not trivially affine-free
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    points, features, mask = make_jets([40, 17, 16, 6, 2, 1, 0], P=40, seed=11)
    with torch.inference_mode():
        dense = model(points, features, mask)
        data = dense_to_pyg_batch(points, features, mask)
        pyg = particlenet_pyg_forward(model, data)
        wrapper = ParticleNetPyG(model)
        pyg2 = wrapper(data)
    torch.testing.assert_close(pyg, dense, rtol=0, atol=1e-5)
    torch.testing.assert_close(pyg2, dense, rtol=0, atol=1e-5)
    # building the pyg wrapper must not re-initialise the shared weights
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # weights are shared, not copied
    assert set(id(p) for p in wrapper.parameters()) == set(id(p) for p in model.parameters())


# --------------------------------------------------------------------------- ParticleNet inference form
@pytest.mark.parametrize("config", ["lite", "full", "identity-shortcut-no-fusion"])
def test_channels_last_particlenet_equals_eager(config: str) -> None:
    """The exported / compiled form (channels last, BatchNorm folded) gives the eager
    model's logits on jets with padding, fewer particles than k, one and none."""
    from hepml_coffea.models.particlenet import ChannelsLastParticleNet

    torch.manual_seed(3)
    if config == "lite":
        model = ParticleNet.lite()
    elif config == "full":
        model = ParticleNet()
    else:  # in_feat == out_feats[-1] in the block: no shortcut convolution
        model = ParticleNet(input_dims=7, conv_params=[[4, [7, 7]]], fc_params=[[16, 0.0]], use_fusion=False)
    for m in model.modules():  # non-trivial running statistics and affine parameters to fold
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.4, 1.6)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    with pytest.raises(ValueError, match="eval mode"):
        ChannelsLastParticleNet(model.train())
    model.eval()
    folded = ChannelsLastParticleNet(model)
    assert all(not isinstance(m, (torch.nn.BatchNorm2d,)) for m in folded.modules())
    points, features, mask = make_jets([40, 17, 16, 6, 2, 1, 0], P=44, seed=5)
    with torch.inference_mode():
        want = model(points, features, mask)
        got = folded(points, features, mask)
        # padding-invariant as the eager model: the same jets trimmed to their longest
        trimmed = folded(points[..., :40], features[..., :40], mask[..., :40])
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    torch.testing.assert_close(trimmed, want, rtol=0, atol=2e-5)
    assert torch.isfinite(got).all()


# --------------------------------------------------------------------------- TorchScript
@pytest.mark.parametrize("name", ALL_MODELS)
def test_script_matches_eager(name: str) -> None:
    model = seeded(name)
    scripted = torch.jit.script(model)
    for seed, N in ((0, 3), (1, 5)):
        inputs = model_inputs(name, N=N, seed=seed)
        if MODEL_REGISTRY[name].input_kind != "image" and seed == 1:
            # a different P and different lengths on the second input
            inputs = tuple(pad_to(t, 80) for t in inputs)
        with torch.inference_mode():
            torch.testing.assert_close(scripted(*inputs), model(*inputs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "pfn", "particlenet-lite", "particlenet"])
def test_trace_matches_eager(name: str) -> None:
    """torch.jit.trace also works for the non-recurrent models (LSTM: script only,
    packing is data dependent). Checked on a second input with other N, P, lengths."""
    model = seeded(name)
    inputs = model_inputs(name, N=3, seed=0)
    traced = torch.jit.trace(model, inputs)
    other = model_inputs(name, N=5, seed=1)
    if MODEL_REGISTRY[name].input_kind != "image":
        other = tuple(pad_to(t, 80) for t in other)
    checks = [inputs, other]
    if MODEL_REGISTRY[name].input_kind == "pointcloud":
        checks.append(make_jets([10, 3, 0], P=10, seed=2))  # P < k
    with torch.inference_mode():
        for inp in checks:
            torch.testing.assert_close(traced(*inp), model(*inp), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", ALL_MODELS)
def test_registry_round_trip(name: str) -> None:
    model = seeded(name)
    blob = yaml.safe_dump({"class_name": type(model).__name__, "kwargs": model.config()})
    spec = yaml.safe_load(io.StringIO(blob))
    rebuilt = model_from_config(spec["class_name"], spec["kwargs"]).eval()
    assert type(rebuilt) is type(model)
    assert rebuilt.config() == model.config()
    rebuilt.load_state_dict(model.state_dict())
    inputs = model_inputs(name, N=3)
    with torch.inference_mode():
        assert torch.equal(rebuilt(*inputs), model(*inputs))


def test_registry_errors_and_lite_factory() -> None:
    with pytest.raises(ValueError, match="known models"):
        build_model("transformer")
    with pytest.raises(ValueError, match="known classes"):
        model_from_config("os.system", {})
    with pytest.raises(ValueError):
        build_model("pfn", not_an_arg=1)
    assert ParticleNet.lite().config() == build_model("particlenet-lite").config()
    assert build_model("pfn", phi_sizes=[8, 8]).config()["phi_sizes"] == [8, 8]
    # defaults in the registry are not mutated through a model's config
    build_model("particlenet").config()["conv_params"][0][1].append(1)
    assert MODEL_REGISTRY["particlenet"].defaults["conv_params"][0] == [16, [64, 64, 64]]
    assert isinstance(build_model("cnn"), JetImageCNN)
    assert isinstance(build_model("lstm", bidirectional=True), JetLSTM)


def test_lstm_bidirectional_and_multilayer_padding() -> None:
    torch.manual_seed(0)
    model = JetLSTM(hidden=16, num_layers=2, bidirectional=True, dense=[8]).eval()
    _, features, mask = make_jets([25, 4, 1, 0], P=60, seed=4)
    with torch.inference_mode():
        a = model(features, mask)
        b = model(pad_to(features, 100), pad_to(mask, 100))
        c = torch.jit.script(model)(pad_to(features, 100), pad_to(mask, 100))
    assert a.shape == (4, 2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(c, a, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pool", ["last", "mean", "meanmax"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("embed", [[], [12, 10]])
def test_lstm_pooling_ignores_padding(pool: str, bidirectional: bool, embed: list) -> None:
    """Pooled outputs: padded length, packing and TorchScript give the same scores; the
    unpacked (exportable) form agrees for a unidirectional LSTM."""
    torch.manual_seed(0)
    model = JetLSTM(hidden=16, bidirectional=bidirectional, dense=[8], pool=pool, reverse=True, embed=embed).eval()
    _, features, mask = make_jets([25, 4, 1, 0], P=40, seed=4)
    with torch.inference_mode():
        a = model(features, mask)
        b = model(pad_to(features, 100), pad_to(mask, 100))
        c = torch.jit.script(model)(pad_to(features, 100), pad_to(mask, 100))
        if not bidirectional:
            d = UnpackedJetLSTM(model)(pad_to(features, 100), pad_to(mask, 100))
            torch.testing.assert_close(d, a, rtol=0, atol=1e-5)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(c, a, rtol=0, atol=1e-5)
    assert model.config()["pool"] == pool and model.config()["embed"] == embed
    assert model.lstm.input_size == (embed[-1] if embed else 7)
    assert type(model)(**model.config()).head[0].in_features == 16 * (1 + bidirectional) * (1 + (pool == "meanmax"))


def test_lstm_pooling_by_hand() -> None:
    """One jet, identity-like head: the pooled vector is the mean / max of the LSTM's outputs at
    the real particles only (computed here step by step with the LSTM's own cell)."""
    torch.manual_seed(3)
    model = JetLSTM(input_dim=2, hidden=3, dense=[], num_classes=6, pool="meanmax").eval()
    with torch.no_grad():
        model.head[0].weight.copy_(torch.eye(6))
        model.head[0].bias.zero_()
    features = torch.tensor([[[0.5, -1.0, 2.0, 9.0], [1.0, 0.25, -0.5, 9.0]]])  # (1, 2, 4)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    cell = torch.nn.LSTMCell(2, 3)
    cell.weight_ih.data, cell.weight_hh.data = model.lstm.weight_ih_l0.data, model.lstm.weight_hh_l0.data
    cell.bias_ih.data, cell.bias_hh.data = model.lstm.bias_ih_l0.data, model.lstm.bias_hh_l0.data
    h = c = torch.zeros(1, 3)
    outs = []
    with torch.no_grad():
        for t in range(3):
            h, c = cell(features[:, :, t], (h, c))
            outs.append(h)
        expected = torch.cat((torch.stack(outs).mean(0), torch.stack(outs).amax(0)), dim=1)
        got = model(features, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="pool 'sum'"):
        JetLSTM(pool="sum")


# --------------------------------------------------------------------------- training smoke test
def test_pfn_learns_toy_problem() -> None:
    torch.manual_seed(0)
    N, P = 256, 20
    counts = torch.randint(1, P + 1, (N,))
    mask = (torch.arange(P).view(1, 1, P) < counts.view(N, 1, 1)).float()
    labels = torch.randint(0, 2, (N,))
    features = torch.randn(N, 7, P)
    features[:, 0] += 1.5 * labels.view(N, 1).float()  # class 1: larger feature 0
    features = features * mask
    model = ParticleFlowNetwork(phi_sizes=[32, 32], f_sizes=[32])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn() -> Tensor:
        return torch.nn.functional.cross_entropy(model(features, mask), labels)

    with torch.no_grad():
        initial = loss_fn().item()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    final = loss_fn().item()
    assert final < 0.5 * initial
    model.eval()
    with torch.inference_mode():
        acc = (model(features, mask).argmax(1) == labels).float().mean().item()
    assert acc > 0.9


# --------------------------------------------------------------------------- baseline
def _toy_observables(n: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    msd = np.where(y == 1, rng.normal(172.0, 15.0, n), rng.exponential(50.0, n))
    tau32 = np.clip(np.where(y == 1, rng.normal(0.55, 0.12, n), rng.normal(0.75, 0.12, n)), 0.0, 1.0)
    return msd, tau32, y


def test_cut_based_tagger() -> None:
    msd, tau32, y = _toy_observables(4000)
    tagger = CutBasedTopTagger().fit(msd, tau32, y)
    msd_t, tau32_t, y_t = _toy_observables(2000, seed=1)
    s = tagger.score(msd_t, tau32_t)
    assert s.shape == (2000,)
    assert np.all((s >= 0) & (s <= 1))
    # separation (AUC via rank statistic)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    n1, n0 = (y_t == 1).sum(), (y_t == 0).sum()
    auc = (ranks[y_t == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    assert auc > 0.9
    # out-of-range values are clipped into edge bins, not errors
    assert np.all(np.isfinite(tagger.score([-5.0, 1e4], [1.5, -0.1])))
    # serialisation: plain lists, exact round trip
    d = tagger.to_dict()
    d2 = yaml.safe_load(yaml.safe_dump(d))
    clone = CutBasedTopTagger.from_dict(d2)
    np.testing.assert_array_equal(clone.score(msd_t, tau32_t), s)
    assert "fitted=True" in repr(clone)


def test_cut_based_tagger_invalid_inputs() -> None:
    msd, tau32, y = _toy_observables(200)
    tagger = CutBasedTopTagger().fit(msd, tau32, y)
    t32 = tau32_ratio([0.3, 0.2, np.nan], [0.5, 0.0, 0.4])
    assert t32[0] == pytest.approx(0.6) and np.isnan(t32[1]) and np.isnan(t32[2])
    with pytest.raises(ValueError, match="valid_mask"):
        tagger.score([100.0, 120.0, 150.0], t32)
    ok = CutBasedTopTagger.valid_mask([100.0, 120.0, 150.0], t32)
    assert ok.tolist() == [True, False, False]
    assert tagger.score(np.array([100.0, 120.0, 150.0])[ok], t32[ok]).shape == (1,)
    with pytest.raises(ValueError):
        tagger.fit(msd, tau32, np.zeros_like(y))  # single class
    with pytest.raises(RuntimeError):
        CutBasedTopTagger().score([1.0], [0.5])


def test_knn_ties_take_the_lower_index() -> None:
    from hepml_coffea.models._knn import knn_indices

    # particles 1, 2 and 3 are equally far from particle 0; 2 and 3 coincide
    x = torch.tensor([[[0.0, 1.0, 0.0, 0.0, 5.0], [0.0, 0.0, 1.0, 1.0, 5.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0, 0.0]]])
    idx, valid = knn_indices(x, mask, 2)
    assert idx[0, 0].tolist() == [1, 2] and valid[0, 0].all()
    assert idx[0, 2].tolist() == [3, 0]  # its twin first, then the lower of the two at distance 1
    # the same neighbours whatever the padding (trimmed batches)
    idx2, _ = knn_indices(x[..., :4], mask[..., :4], 2)
    assert torch.equal(idx2[0, :4], idx[0, :4])
