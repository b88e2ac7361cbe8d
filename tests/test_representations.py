"""Tests of hepml_coffea.representations (sequence, point cloud, graph, image, spec)."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

import hepml_coffea.representations as R
from hepml_coffea.representations import InputSpec, VarSpec

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings
from hypothesis import strategies as st

SAMPLES = [Path(__file__).parent / "samples", Path(__file__).resolve().parents[2] / "shared" / "samples"]
TWO_PI = 2 * math.pi


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def make(jets: list[dict], cands: list[list[dict]]) -> tuple[ak.Array, ak.Array]:
    """Jets/cands from python dicts, filling energy/mass/charge/pdgId defaults."""
    def e(pt, eta, m):
        return math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)

    js = []
    for j in jets:
        j = {"mass": 0.0, **j}
        j.setdefault("energy", e(j["pt"], j["eta"], j["mass"]))
        js.append(j)
    cs = []
    for row in cands:
        out = []
        for c in row:
            c = {"mass": 0.0, "charge": 1, "pdgId": 211, **c}
            c.setdefault("energy", e(c["pt"], c["eta"], c["mass"]))
            out.append(c)
        cs.append(out)
    cand_arr = ak.Array(cs) if any(cs) else ak.Array(
        ak.unflatten(ak.Array({k: np.zeros(0) for k in ["pt", "eta", "phi", "mass", "energy", "charge", "pdgId"]}),
                     np.zeros(len(cs), dtype=np.int64))
    )
    return cand_arr, ak.Array(js)


def random_jets(n_jets: int, mean_n: float = 20.0, seed: int = 0, extra_fields: bool = False):
    """Random jets with continuous (tie-free) values; constituents sorted by pt."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_n, n_jets).astype(np.int64)
    counts[:2] = [0, 1] if n_jets >= 2 else counts[:2]
    tot = int(counts.sum())
    jidx = np.repeat(np.arange(n_jets), counts)
    jpt = rng.uniform(300, 600, n_jets)
    jeta = rng.uniform(-2, 2, n_jets)
    jphi = rng.uniform(-np.pi, np.pi, n_jets)
    pt = rng.exponential(10.0, tot) + 0.1
    order = np.lexsort((-pt, jidx))
    pt = pt[order]
    eta = jeta[jidx] + rng.normal(0, 0.3, tot)
    phi = np.mod(jphi[jidx] + rng.normal(0, 0.3, tot) + np.pi, TWO_PI) - np.pi
    mass = np.full(tot, 0.14)
    charge = rng.integers(-1, 2, tot)
    pdg = np.where(charge != 0, 211 * charge, rng.choice([22, 130], tot))
    fields = {
        "pt": pt, "eta": eta, "phi": phi, "mass": mass,
        "energy": np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2), "charge": charge, "pdgId": pdg,
    }
    if extra_fields:
        fields["d0"] = rng.normal(0, 0.01, tot)
        fields["dz"] = rng.normal(0, 0.05, tot)
    cands = ak.unflatten(ak.zip(fields), counts)
    jmass = rng.uniform(50, 200, n_jets)
    jets = ak.zip({"pt": jpt, "eta": jeta, "phi": jphi, "mass": jmass,
                   "energy": np.sqrt((jpt * np.cosh(jeta)) ** 2 + jmass**2)})
    return cands, jets


def permute_within_jets(cands: ak.Array, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    key = ak.unflatten(rng.random(int(ak.sum(ak.num(cands)))), ak.num(cands))
    return cands[ak.argsort(key, axis=1)]


def brute_knn(points: np.ndarray, mask: np.ndarray, k: int) -> set[tuple[int, int, int]]:
    """(jet, centre_slot, neighbour_slot) by brute force in float64."""
    out = set()
    N = points.shape[0]
    for n in range(N):
        real = np.flatnonzero(mask[n, 0] > 0)
        for i in real:
            others = [j for j in real if j != i]
            d = [math.hypot(*(points[n, :, i].astype(np.float64) - points[n, :, j])) for j in others]
            for j in np.asarray(others)[np.argsort(d, kind="stable")][:k]:
                out.add((n, int(i), int(j)))
    return out


def edges_to_slots(edge_index: torch.Tensor, mask: np.ndarray) -> set[tuple[int, int, int]]:
    m = mask[:, 0] > 0
    jet, slot = np.nonzero(m)  # row-major, same numbering as the graph nodes
    src, dst = edge_index.numpy()
    assert np.all(jet[src] == jet[dst])
    return {(int(jet[d]), int(slot[d]), int(slot[s])) for s, d in zip(src, dst)}


# ---------------------------------------------------------------------------
# hand-made jets: exact values
# ---------------------------------------------------------------------------
def test_hand_made_features_and_phi_wrap():
    cands, jets = make(
        [{"pt": 100.0, "eta": 0.0, "phi": 3.1, "mass": 10.0, "energy": 110.0}],
        [[{"pt": 60.0, "eta": 0.1, "phi": -3.1, "energy": 61.0},
          {"pt": 40.0, "eta": -0.2, "phi": 3.0, "energy": 42.0, "charge": 0, "pdgId": 22}]],
    )
    spec = InputSpec(kind="sequence", length=4,
                     features=[VarSpec(n) for n in R.STANDARD_FEATURES]
                     + [VarSpec(n) for n in ["charge", "is_photon", "is_charged_hadron", "pt_rel", "e_rel"]])
    out = R.build_sequence(cands, jets, spec)
    f = out["features"]
    assert f.shape == (1, 12, 4) and f.dtype == np.float32
    dphi0 = TWO_PI - 6.2  # ~0.0832 across the +-pi boundary
    exp0 = [0.1, dphi0, math.log(60), math.log(61), math.log(0.6), math.log(61 / 110),
            math.hypot(0.1, dphi0), 1, 0, 1, 0.6, 61 / 110]
    exp1 = [-0.2, -0.1, math.log(40), math.log(42), math.log(0.4), math.log(42 / 110),
            math.hypot(0.2, 0.1), 0, 1, 0, 0.4, 42 / 110]
    np.testing.assert_allclose(f[0, :, 0], exp0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f[0, :, 1], exp1, rtol=1e-5, atol=1e-6)
    assert abs(f[0, 1, 0] - 0.0832) < 1e-4
    assert np.all(f[0, :, 2:] == 0)
    np.testing.assert_array_equal(out["mask"], [[[1, 1, 0, 0]]])
    np.testing.assert_array_equal(out["lengths"], [2])


def test_dphi_wrap_range():
    phis = np.array([-3.14, 3.14, 0.0, 1.0, -1.0, np.pi])
    d = R.wrap_phi(phis - (-3.0))
    d32 = R.wrap_phi(np.float32(np.pi) + np.zeros(1000, np.float32) - np.linspace(-1e-6, 1e-6, 1000, dtype=np.float32))
    # one convention for the whole package (hepml_coffea.data.geometry.wrap_phi): (-pi, pi]
    assert d32.dtype == np.float32
    assert np.all(d32 > -np.float32(np.pi)) and np.all(d32 <= np.float32(np.pi))
    assert np.all(d > -np.pi) and np.all(d <= np.pi)
    np.testing.assert_allclose(np.cos(d), np.cos(phis + 3.0), atol=1e-12)


def test_transform_clip_pad_value():
    cands, jets = make([{"pt": 100.0, "eta": 0.0, "phi": 0.0}],
                       [[{"pt": 50.0, "eta": 0.5, "phi": 0.0}, {"pt": 20.0, "eta": -0.1, "phi": 0.0}]])
    spec = InputSpec(kind="sequence", length=3,
                     features=[VarSpec("deta", center=0.1, scale=2.0, clip_max=0.5, pad_value=-9.0)])
    f = R.build_sequence(cands, jets, spec)["features"]
    np.testing.assert_allclose(f[0, 0], [0.5, -0.4, -9.0], rtol=1e-6)
    f2 = R.build_sequence(cands[:, ::-1], jets, spec)["features"]  # unsorted input, same result
    np.testing.assert_array_equal(f2, f)


def test_more_than_P_keeps_hardest_even_unsorted():
    pts = [5.0, 50.0, 1.0, 30.0, 7.0, 70.0, 2.0]
    cands, jets = make([{"pt": 200.0, "eta": 0.0, "phi": 0.0}],
                       [[{"pt": p, "eta": 0.01 * i, "phi": 0.0} for i, p in enumerate(pts)]])
    spec = InputSpec(kind="sequence", length=3, features=[VarSpec("log_pt"), VarSpec("deta")])
    out = R.build_sequence(cands, jets, spec)
    np.testing.assert_allclose(np.exp(out["features"][0, 0]), [70, 50, 30], rtol=1e-5)
    np.testing.assert_allclose(out["features"][0, 1], [0.05, 0.01, 0.03], rtol=1e-5)
    assert out["lengths"][0] == 3 and out["mask"].sum() == 3
    pc = R.build_pointcloud(cands, jets, R.default_pointcloud_spec(3))
    np.testing.assert_allclose(pc["points"][0, 0], [0.05, 0.01, 0.03], rtol=1e-5)


def test_zero_constituents_and_zero_energy():
    cands, jets = make(
        [{"pt": 100.0, "eta": 0.0, "phi": 0.0}, {"pt": 0.0, "eta": 0.0, "phi": 0.0, "energy": 0.0}],
        [[], [{"pt": 0.0, "eta": 0.0, "phi": 0.0, "energy": 0.0}]],
    )
    for spec in (R.default_sequence_spec(5), R.default_pointcloud_spec(5)):
        out = R.build(cands, jets, spec)
        for v in out.values():
            assert np.all(np.isfinite(v))
        assert np.all(out["features"][0] == 0) and np.all(out["mask"][0] == 0)
        assert out["lengths"].tolist() == [0, 1]
        np.testing.assert_allclose(out["features"][1, 2, 0], math.log(R.LOG_FLOOR), rtol=1e-6)
    img = R.build_image(cands, jets, R.InputSpec(kind="image", channels=list(R.IMAGE_CHANNELS)))
    assert np.all(np.isfinite(img)) and np.all(img[0] == 0)


def test_empty_input():
    cands, jets = random_jets(5)
    cands, jets = cands[:0], jets[:0]
    out = R.build_sequence(cands, jets, R.default_sequence_spec())
    assert out["features"].shape == (0, 7, 100) and out["mask"].shape == (0, 1, 100)
    assert out["lengths"].shape == (0,)
    pc = R.build_pointcloud(cands, jets, R.default_pointcloud_spec())
    assert pc["points"].shape == (0, 2, 100)
    assert R.build_image(cands, jets, R.default_image_spec()).shape == (0, 1, 40, 40)
    assert R.knn_edges(pc["points"], pc["mask"], 4).shape == (2, 0)
    b = R.to_pyg_batch(pc, k=4)
    assert b.num_graphs == 0 and b.x.shape == (0, 7)


def test_float64_and_float32_agree():
    cands, jets = random_jets(50, seed=3)
    c32 = ak.values_astype(cands, np.float32)
    j32 = ak.values_astype(jets, np.float32)
    a = R.build_sequence(cands, jets, R.default_sequence_spec())["features"]
    b = R.build_sequence(c32, j32, R.default_sequence_spec())["features"]
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


def test_matches_coffea_recipe():
    cands, jets = random_jets(200, mean_n=60, seed=7)
    P = 50
    deta = cands.eta - jets.eta
    dphi = np.mod(cands.phi - jets.phi + np.pi, TWO_PI) - np.pi
    feats = [deta, dphi, np.log(cands.pt), np.log(cands.energy), np.log(cands.pt / jets.pt),
             np.log(cands.energy / jets.energy), np.sqrt(deta**2 + dphi**2)]
    feats = [ak.to_numpy(ak.fill_none(ak.pad_none(x, P, clip=True), 0)) for x in feats]
    ref = ak.to_numpy(ak.concatenate([x[:, np.newaxis, :] for x in feats], axis=1))
    ours = R.build_sequence(cands, jets, R.default_sequence_spec(P))["features"]
    np.testing.assert_allclose(ours, ref, atol=2e-6, rtol=1e-6)


# ---------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------
def test_spec_roundtrip_and_errors():
    spec = InputSpec(kind="pointcloud", length=64,
                     features=[VarSpec("deta", 0.1, 3.3333333333333335, -5.0, 5.0, -1.0), VarSpec("log_pt", 1.7)])
    for s in (spec, R.default_sequence_spec(), R.default_pointcloud_spec(),
              InputSpec(kind="image", npix=33, extent=1.2, rotate=False, channels=["pt", "multiplicity"])):
        assert InputSpec.from_yaml(s.to_yaml()) == s
        assert InputSpec.from_dict(s.to_dict()) == s
    assert R.default_sequence_spec().feature_names == list(R.STANDARD_FEATURES)
    with pytest.raises(ValueError, match="not_a_feature") as ei:
        VarSpec("not_a_feature")
    assert "log_pt" in str(ei.value)  # lists the known names
    with pytest.raises(ValueError, match="bogus"):
        InputSpec.from_yaml("kind: sequence\nfeatures:\n- name: bogus\n")
    with pytest.raises(ValueError, match="weird"):
        InputSpec(kind="image", channels=["weird"])
    with pytest.raises(ValueError):
        InputSpec(kind="tensor")


def test_missing_field_error_names_field():
    cands, jets = random_jets(4)
    spec = InputSpec(kind="sequence", length=8, features=[VarSpec("deta"), VarSpec("d0")])
    with pytest.raises(KeyError, match="d0") as ei:
        R.build_sequence(cands, jets, spec)
    assert isinstance(ei.value, ValueError) and "'d0'" in str(ei.value)
    cands2, jets2 = random_jets(4, extra_fields=True)
    out = R.build_sequence(cands2, jets2, spec)
    assert np.isfinite(out["features"]).all()
    assert np.count_nonzero(out["features"][:, 1]) == out["mask"].sum()


def test_register_feature():
    name = "test_abs_deta"
    if name not in R.FEATURES:
        @R.register_feature(name)
        def _f(ctx):
            return np.abs(ctx.feature("deta"))
    cands, jets = random_jets(10, seed=2)
    out = R.build_sequence(cands, jets, InputSpec(length=30, features=[VarSpec(name), VarSpec("deta")]))
    np.testing.assert_allclose(out["features"][:, 0], np.abs(out["features"][:, 1]))
    with pytest.raises(ValueError):
        R.register_feature(name)(lambda ctx: ctx)


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def _img(cands, jets, **kw):
    spec = InputSpec(kind="image", **{"centre": False, "rotate": False, "flip": False, **kw})
    return R.build_image(cands, jets, spec)


def test_image_pixel_positions_and_channels():
    cands, jets = make([{"pt": 100.0, "eta": 1.0, "phi": 3.0}],
                       [[{"pt": 30.0, "eta": 1.1, "phi": 2.7},
                         {"pt": 20.0, "eta": 0.7, "phi": -3.063185307179586, "charge": 0, "pdgId": 22},
                         {"pt": 10.0, "eta": 2.5, "phi": 3.0}]])  # last one outside the extent
    img = _img(cands, jets, channels=["pt", "charged_pt", "neutral_pt", "multiplicity"])
    assert img.shape == (1, 4, 40, 40)
    # (deta, dphi) = (0.1, -0.3): ix = floor(0.9/0.04) = 22, iy = floor(0.5/0.04) = 12
    # (deta, dphi) = (-0.3, 0.22) (across the phi wrap): ix = floor(0.5/0.04) = 12, iy = floor(1.02/0.04) = 25
    assert img[0, 0, 12, 22] == pytest.approx(0.3)
    assert img[0, 0, 25, 12] == pytest.approx(0.2)
    assert img[0, 0].sum() == pytest.approx(0.5)  # third constituent dropped
    assert img[0, 1].sum() == pytest.approx(0.3) and img[0, 2].sum() == pytest.approx(0.2)
    assert img[0, 3].sum() == 2 and img[0, 3, 12, 22] == 1


def test_image_centre():
    cands, jets = make([{"pt": 100.0, "eta": 0.0, "phi": 0.0}],
                       [[{"pt": 50.0, "eta": 0.3, "phi": 0.1}, {"pt": 50.0, "eta": 0.1, "phi": 0.1}]])
    img = _img(cands, jets, centre=True, npix=41)  # centroid (0.2, 0.1) -> (+-0.1, 0)
    w = 1.6 / 41
    assert img[0, 0, 20, math.floor((0.1 + 0.8) / w)] == pytest.approx(0.5)
    assert img[0, 0, 20, math.floor((-0.1 + 0.8) / w)] == pytest.approx(0.5)


@pytest.mark.parametrize("pts, rows", [
    ([(0.2, 0.2), (-0.2, -0.2)], (27, 13)),  # diagonal -> vertical axis
    ([(0.3, 0.0), (-0.3, 0.0)], (28, 12)),   # horizontal -> vertical axis
])
def test_image_rotation_to_vertical(pts, rows):
    cands, jets = make([{"pt": 100.0, "eta": 0.0, "phi": 0.0}],
                       [[{"pt": 50.0, "eta": x, "phi": y} for x, y in pts]])
    img = _img(cands, jets, centre=True, rotate=True, npix=41)[0, 0]
    # x' = 0 is the centre of column 20 with 41 pixels
    assert img[:, 20].sum() == pytest.approx(1.0)
    assert img[rows[0], 20] == pytest.approx(0.5) and img[rows[1], 20] == pytest.approx(0.5)


def test_image_flip_hardest_quadrant_upper_right():
    cands, jets = make([{"pt": 100.0, "eta": 0.0, "phi": 0.0}],
                       [[{"pt": 60.0, "eta": -0.3, "phi": -0.1}, {"pt": 40.0, "eta": 0.1, "phi": 0.3}]])
    img = _img(cands, jets, flip=True)[0, 0]
    # both signs flipped: (0.3, 0.1) -> ix 27, iy 22 ; (-0.1, -0.3) -> ix 17, iy 12
    assert img[22, 27] == pytest.approx(0.6) and img[12, 17] == pytest.approx(0.4)
    img2 = _img(cands, jets, flip=False)[0, 0]
    assert img2[17, 12] == pytest.approx(0.6)


def test_image_full_preprocessing_properties():
    cands, jets = random_jets(40, mean_n=30, seed=11)
    img = R.build_image(cands, jets, R.default_image_spec())
    assert img.shape == (40, 1, 40, 40) and np.isfinite(img).all()
    # hardest quadrant in the upper right: x >= 0 (cols 20..), y >= 0 (rows 20..)
    q = img[:, 0]
    ur = q[:, 20:, 20:].sum((1, 2))
    for other in (q[:, :20, :20], q[:, :20, 20:], q[:, 20:, :20]):
        assert np.all(ur >= other.sum((1, 2)) - 1e-6)


# ---------------------------------------------------------------------------
# graphs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 16])
def test_knn_against_brute_force(k):
    rng = np.random.default_rng(k)
    N, P = 7, 12
    counts = np.array([0, 1, 2, 3, 5, 12, 9])
    points = rng.normal(size=(N, 2, P)).astype(np.float32)
    mask = (np.arange(P)[None, :] < counts[:, None]).astype(np.float32)[:, None, :]
    points *= mask
    # a non-prefix mask also works
    mask[6, 0, [0, 4]] = 0
    ei = R.knn_edges(points, mask, k)
    got = edges_to_slots(ei, mask)
    assert got == brute_knn(points, mask, k)
    assert ei.shape[1] == len(got)  # no duplicates
    assert all(c != n for _, c, n in got)  # no self loops
    idx, valid = R.knn_indices(points, mask, k, return_valid=True)
    assert idx.shape == (N, P, k)
    dense = {(n, c, int(idx[n, c, j])) for n, c, j in zip(*map(np.asarray, np.nonzero(valid.numpy())))}
    assert dense == got
    # invalid slots point to the centre itself
    inval = ~valid.numpy()
    assert np.all(idx.numpy()[inval] == np.broadcast_to(np.arange(P)[None, :, None], idx.shape)[inval])



def test_topk_by_key_orders_ties_by_column():
    """The compiled kNN's top-k on (distance bits, column) keys: pinned on a hand-made row
    with ties, a -0.0 and inf (padding) entries."""
    from hepml_coffea.knn import _topk_by_key

    d = torch.tensor([[[0.0, 0.5, 0.5, float("inf"), -0.0, 0.5, 1e-30, float("inf"), 2.0]]])
    valid, idx = _topk_by_key(d, 6)
    assert idx.tolist() == [[[0, 4, 6, 1, 2, 5]]]  # -0.0 ties with 0.0, ties by the lower column
    assert valid.all()
    valid, idx = _topk_by_key(d, 9)
    assert idx.tolist() == [[[0, 4, 6, 1, 2, 5, 8, 3, 7]]]
    assert valid.tolist() == [[[True] * 7 + [False, False]]]


@pytest.mark.parametrize("k", [3, 7])
def test_compiled_knn_picks_the_stable_sort_neighbours(k, monkeypatch):
    """dense_knn as compiled for AOTInductor (top-k on unique keys) returns exactly the
    eager stable sort's neighbours and validity, on coordinates full of exact ties
    (integer values), jets shorter than k and a non-prefix mask."""
    from hepml_coffea.representations import graph

    gen = torch.Generator().manual_seed(k)
    for p in (1, 2, k, k + 1, 19):
        x = torch.randint(0, 3, (6, 4, p), generator=gen).float()
        mask = (torch.rand(6, 1, p, generator=gen) > 0.25).float()
        eager = graph.dense_knn(x, mask, k)
        compiled = graph.dense_knn(x, mask, k, mode="keys")
        with graph.export_mode("keys"):  # what the AOTInductor export sees
            assert all(torch.equal(a, b) for a, b in zip(graph.dense_knn(x, mask, k), compiled))
        assert torch.equal(compiled[1], eager[1])
        assert torch.equal(compiled[0], eager[0])

def test_to_pyg_batch():
    cands, jets = random_jets(6, mean_n=8, seed=5)
    pc = R.build_pointcloud(cands, jets, R.default_pointcloud_spec(10))
    b = R.to_pyg_batch(pc, k=3)
    n_real = int(pc["mask"].sum())
    assert b.num_graphs == 6 and b.x.shape == (n_real, 7) and b.pos.shape == (n_real, 2)
    assert b.batch.shape == (n_real,)
    np.testing.assert_array_equal(np.bincount(b.batch.numpy(), minlength=6), pc["lengths"])
    m = pc["mask"][:, 0] > 0
    np.testing.assert_array_equal(b.x.numpy(), pc["features"].transpose(0, 2, 1)[m])
    assert torch.all(b.batch[b.edge_index[0]] == b.batch[b.edge_index[1]])
    assert edges_to_slots(b.edge_index, pc["mask"]) == brute_knn(pc["points"], pc["mask"], 3)


# ---------------------------------------------------------------------------
# permutation invariance (hypothesis)
# ---------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_jets=st.integers(1, 12), P=st.sampled_from([5, 20, 64]))
def test_permutation_invariance(seed, n_jets, P):
    cands, jets = random_jets(n_jets, mean_n=15, seed=seed)
    perm = permute_within_jets(cands, seed + 1)
    spec = InputSpec(kind="pointcloud", length=P,
                     features=[VarSpec(n) for n in R.STANDARD_FEATURES] + [VarSpec("charge")])
    a, b = R.build_pointcloud(cands, jets, spec), R.build_pointcloud(perm, jets, spec)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    s = R.build_sequence(perm, jets, InputSpec(length=P, features=spec.features))
    np.testing.assert_array_equal(s["features"], a["features"])
    img_spec = InputSpec(kind="image", channels=["pt", "multiplicity"])
    np.testing.assert_allclose(R.build_image(cands, jets, img_spec), R.build_image(perm, jets, img_spec),
                               atol=1e-6)

    # graph edge set as (centre pt, neighbour pt) particle identities
    def ident(pc):
        ei = R.knn_edges(pc["points"], pc["mask"], 4)
        m = pc["mask"][:, 0] > 0
        logpt = pc["features"].transpose(0, 2, 1)[m][:, 2]
        return {(float(logpt[d]), float(logpt[s])) for s, d in zip(*ei.numpy())}

    assert ident(a) == ident(b)


# ---------------------------------------------------------------------------
# real CMS files
# ---------------------------------------------------------------------------
def _sample(name: str) -> Path:
    for d in SAMPLES:
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} not available")


def _group(arrays, jet_pref, assoc_pref, cand_pref, cand_idx, cand_fields):
    """Group PF candidates by fat jet via the association rows; flat (cands, jets)."""
    pf = ak.zip({f: arrays[f"{cand_pref}_{f}"] for f in cand_fields})
    cand = pf[arrays[f"{assoc_pref}_{cand_idx}"]]
    jidx = arrays[f"{assoc_pref}_jetIdx"]
    njet = ak.to_numpy(ak.num(arrays[f"{jet_pref}_pt"]))
    offset = np.concatenate([[0], np.cumsum(njet)[:-1]]).astype(np.int64)
    gj = ak.to_numpy(ak.flatten(jidx + ak.Array(offset))).astype(np.int64)
    order = np.argsort(gj, kind="stable")
    counts = np.bincount(gj, minlength=int(njet.sum()))
    cands = ak.unflatten(ak.flatten(cand)[order], counts)
    cands = ak.with_field(cands, np.sqrt((cands.pt * np.cosh(cands.eta)) ** 2 + cands.mass**2), "energy")
    jets = ak.zip({f: ak.flatten(arrays[f"{jet_pref}_{f}"]) for f in ["pt", "eta", "phi", "mass"]})
    jets = ak.with_field(jets, np.sqrt((jets.pt * np.cosh(jets.eta)) ** 2 + jets.mass**2), "energy")
    return cands, jets, counts


@pytest.mark.parametrize("fname", ["pfnano.root", "nano_tt_v15.root"])
def test_real_files(fname):
    uproot = pytest.importorskip("uproot")
    path = _sample(fname)
    tree = uproot.open(path)["Events"]
    if fname == "pfnano.root":
        fields = ["pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz"]
        names = [f"FatJet_{f}" for f in ["pt", "eta", "phi", "mass"]] + [
            "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx"] + [f"PFCands_{f}" for f in fields]
        arrays = tree.arrays(names)
        cands, jets, counts = _group(arrays, "FatJet", "FatJetPFCands", "PFCands", "pFCandsIdx", fields)
        feats = list(R.STANDARD_FEATURES) + ["charge", "is_electron", "is_muon", "is_photon",
                                             "is_charged_hadron", "is_neutral_hadron", "d0", "dz"]
    else:
        fields = ["pt", "eta", "phi", "mass", "pdgId"]
        names = [f"FatJet_{f}" for f in ["pt", "eta", "phi", "mass"]] + [
            "FatJetPFCand_jetIdx", "FatJetPFCand_pfCandIdx"] + [f"PFCand_{f}" for f in fields]
        arrays = tree.arrays(names)
        cands, jets, counts = _group(arrays, "FatJet", "FatJetPFCand", "PFCand", "pfCandIdx", fields)
        feats = list(R.STANDARD_FEATURES)
        with pytest.raises(KeyError, match="charge"):  # NanoAOD v15 PFCand has no charge
            R.build_sequence(cands, jets, InputSpec(length=10, features=[VarSpec("charge")]))
    assert len(jets) > 0 and counts.sum() > 0
    P = 100
    spec = InputSpec(kind="pointcloud", length=P, features=[VarSpec(f) for f in feats])
    out = R.build_pointcloud(cands, jets, spec)
    for v in out.values():
        assert np.all(np.isfinite(v))
    np.testing.assert_array_equal(out["mask"][:, 0].sum(1), np.minimum(counts, P))
    pad = out["mask"][:, 0] == 0
    assert np.all(out["features"].transpose(0, 2, 1)[pad] == 0)
    assert np.all(out["points"].transpose(0, 2, 1)[pad] == 0)
    # real constituents are within the fat-jet cone and pt-ordered
    real = ~pad
    assert np.all(out["features"][:, 6][real] < 1.0)
    logpt = np.where(real, out["features"][:, 2], -1e30)
    assert np.all(np.diff(logpt, axis=1)[real[:, 1:]] <= 0)
    img = R.build_image(cands, jets, InputSpec(kind="image", channels=["pt", "multiplicity"]))
    assert np.isfinite(img).all() and img.shape == (len(jets), 2, 40, 40)
    assert np.all(img[:, 1].sum((1, 2)) <= counts)
    b = R.to_pyg_batch(out, k=16)
    assert b.num_graphs == len(jets) and b.x.shape[0] == int(out["mask"].sum())


# ---------------------------------------------------------------------------
# feature expressions (declarative specs, no registration)
# ---------------------------------------------------------------------------
def _expr_jets():
    # jet 0: two constituents across the phi wrap; jet 1: none; jet 2: three
    return make(
        [{"pt": 100.0, "eta": 0.0, "phi": 3.1, "mass": 10.0, "energy": 110.0},
         {"pt": 50.0, "eta": 1.0, "phi": 0.0},
         {"pt": 80.0, "eta": -1.0, "phi": 0.5}],
        [[{"pt": 60.0, "eta": 0.1, "phi": -3.1, "energy": 61.0, "d0": -0.5, "puppiWeight": 1.0},
          {"pt": 40.0, "eta": -0.2, "phi": 3.0, "energy": 42.0, "charge": 0, "pdgId": 22, "d0": 0.0,
           "puppiWeight": 0.5}],
         [],
         [{"pt": 10.0, "eta": -1.1, "phi": 0.4, "d0": 2.0, "puppiWeight": 0.25},
          {"pt": 30.0, "eta": -0.9, "phi": 0.6, "d0": -1.0, "puppiWeight": 1.0},
          {"pt": 20.0, "eta": -1.0, "phi": 0.5, "charge": -1, "pdgId": 11, "d0": 0.0, "puppiWeight": 0.75}]],
    )


def test_expressions_exact_values():
    cands, jets = _expr_jets()
    exprs = ["log(pt / sum(pt))", "jet.eta - eta", "wrap_phi(jet.phi - phi)", "log1p(abs(d0))",
             "abs(pdgId) == 22", "max(pt)", "min(pt) + mean(pt)", "cand.puppiWeight", "pt * 2 ** 2 % 7",
             "-(1 <= charge) + pi", "where(charge != 0, pt, -pt)", "hypot(3, 4) + clip(pt, 15, 35)"]
    spec = InputSpec(kind="sequence", length=4, features=[VarSpec(e) for e in exprs])
    f = R.build_sequence(cands, jets, spec)["features"]
    assert f.shape == (3, len(exprs), 4) and f.dtype == np.float32
    exp0 = [[math.log(0.6), math.log(0.4)], [-0.1, 0.2], [6.2 - TWO_PI, 0.1], [math.log(1.5), 0.0],
            [0, 1], [60, 60], [40 + 50, 40 + 50], [1.0, 0.5], [240 % 7, 160 % 7],
            [-1 + math.pi, math.pi], [60, -40], [5 + 35, 5 + 35]]
    # jet 2 in pt order: 30, 20, 10
    exp2 = [[math.log(0.5), math.log(1 / 3), math.log(1 / 6)], [-0.1, 0.0, 0.1], [-0.1, 0.0, 0.1],
            [math.log(2), 0.0, math.log(3)], [0, 0, 0], [30, 30, 30], [10 + 20, 10 + 20, 10 + 20],
            [1.0, 0.75, 0.25], [120 % 7, 80 % 7, 40 % 7], [-1 + math.pi, math.pi, -1 + math.pi],
            [30, 20, 10], [5 + 30, 5 + 20, 5 + 15]]
    np.testing.assert_allclose(f[0, :, :2], exp0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f[2, :, :3], exp2, rtol=1e-6, atol=1e-6)
    assert np.all(f[1] == 0) and np.all(f[0, :, 2:] == 0) and np.all(f[2, :, 3:] == 0)


def test_expressions_reduce_over_all_constituents_not_only_P():
    cands, jets = _expr_jets()
    spec = InputSpec(kind="sequence", length=1, features=[VarSpec("sum(pt)"), VarSpec("mean(1)")])
    f = R.build_sequence(cands, jets, spec)["features"]
    np.testing.assert_allclose(f[:, :, 0], [[100, 1], [0, 0], [60, 1]])


def test_registered_names_resolve_first_and_match_their_expressions():
    cands, jets = random_jets(30, seed=4)
    pairs = {"deta": "eta - jet.eta", "dphi": "wrap_phi(phi - jet.phi)", "log_pt": "log(pt)",
             "log_e_rel": "log(energy / jet.energy)",
             "dR": "sqrt((eta - jet.eta)**2 + wrap_phi(phi - jet.phi)**2)", "charge": "cand.charge",
             "is_photon": "abs(pdgId) == 22"}
    named = R.build_sequence(cands, jets, InputSpec(length=40, features=[VarSpec(n) for n in pairs]))
    expr = R.build_sequence(cands, jets, InputSpec(length=40, features=[VarSpec(e) for e in pairs.values()]))
    np.testing.assert_allclose(named["features"], expr["features"], rtol=1e-6, atol=1e-6)
    # points accept expressions too (coffea's recipe: jet minus candidate)
    pc = R.build_pointcloud(cands, jets, InputSpec(kind="pointcloud", length=40,
                                                   points=["jet.eta - eta", "wrap_phi(jet.phi - phi)"]))
    ref = R.build_pointcloud(cands, jets, R.default_pointcloud_spec(40))
    np.testing.assert_allclose(pc["points"], -ref["points"], atol=1e-6)


def test_expression_errors_name_the_token():
    cases = {
        "foo(pt)": "unknown function 'foo'",
        "pt[0]": "unknown token 'pt\\[0\\]'",
        "__import__('os')": "unknown function '__import__'",
        "().__class__": "unknown token",
        "os.system('ls')": "unknown function 'os.system'",
        "pt.real": "attributes only as jet.<field> or cand.<field>",
        "pt // 2": "unknown operator '//'",
        "pt and eta": "BoolOp is not allowed",
        "log(pt, 2)": "log\\(\\) takes 1 argument",
        "clip(pt, lo=1)": "no keyword arguments",
        "'pt' + 1": "only int and float",
        "_secret + 1": "names starting with '_'",
        "log(pt": "not valid syntax",
        "jet + 1": "'jet' needs a field",
        "log + 1": "'log' is a function",
    }
    for text, match in cases.items():
        with pytest.raises(ValueError, match=match) as ei:
            VarSpec(text)
        assert "allowed:" in str(ei.value) and "log1p" in str(ei.value)  # lists what is allowed
    with pytest.raises(ValueError, match="cand.puppiWeight"):  # bare names must be registered features
        VarSpec("puppiWeight")
    with pytest.raises(ValueError, match="in points"):
        InputSpec(kind="pointcloud", points=["eta -"])
    # a branch the input lacks: named, with the available ones
    cands, jets = random_jets(3)
    with pytest.raises(KeyError, match="'puppiWeight'") as ei:
        R.build_sequence(cands, jets, InputSpec(length=5, features=[VarSpec("log1p(cand.puppiWeight)")]))
    assert "log1p(cand.puppiWeight)" in str(ei.value) and "available" in str(ei.value)


def test_expressions_never_eval(monkeypatch):
    import ast
    import builtins

    real_compile = builtins.compile

    def refuse(*a, **k):
        raise AssertionError("eval/exec called")

    def ast_only(source, filename, mode, flags=0, *a, **k):
        assert flags & ast.PyCF_ONLY_AST, "compiled to code, not to a syntax tree"
        return real_compile(source, filename, mode, flags, *a, **k)

    cands, jets = _expr_jets()
    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", ast_only)
    spec = InputSpec(length=3, features=[VarSpec("log(pt / sum(pt)) * (jet.eta - eta) + 1e-3 * abs(d0)")])
    assert np.isfinite(R.build_sequence(cands, jets, spec)["features"]).all()


def test_required_fields_and_yaml_roundtrip():
    spec = InputSpec.from_yaml(
        "kind: pointcloud\nlength: 10\npoints: [jet.eta - eta, wrap_phi(jet.phi - phi)]\n"
        "features:\n- name: log1p(abs(d0))\n- name: cand.puppiWeight * jet.msoftdrop\n- name: is_electron\n"
        "- {name: 'log(pt / sum(pt))', center: 1.5, scale: 0.5}\n"
    )
    assert spec.required_cand_fields() == ("d0", "eta", "pdgId", "phi", "pt", "puppiWeight")
    assert spec.required_jet_fields() == ("eta", "msoftdrop", "phi")
    assert InputSpec.from_yaml(spec.to_yaml()) == spec
    assert spec.features[3].name == "log(pt / sum(pt))" and spec.features[3].center == 1.5
    assert R.default_sequence_spec().required_cand_fields() == ("energy", "eta", "phi", "pt")
    assert R.default_image_spec().required_cand_fields() == ("eta", "phi", "pt")
    img = InputSpec(kind="image", channels=["pt", "neutral_pt"])
    assert img.required_cand_fields() == ("charge", "eta", "phi", "pt") and img.required_jet_fields() == ("eta", "phi", "pt")


def test_expressions_on_real_pfnano_with_extra_branches():
    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays

    spec = InputSpec(kind="pointcloud", length=50, points=["jet.eta - eta", "wrap_phi(jet.phi - phi)"],
                     features=[VarSpec(e) for e in ["log(pt / sum(pt))", "log1p(abs(d0))", "cand.puppiWeight",
                                                    "tanh(dz / dzErr)", "jet.area"]])
    events = read_arrays(_sample("pfnano.root"))
    jc = fatjet_constituents(events, cand_fields=spec.required_cand_fields(), jet_fields=spec.required_jet_fields())
    assert {"puppiWeight", "dzErr"} <= set(ak.fields(jc.cands)) and "area" in ak.fields(jc.jets)
    out = R.build(jc.cands[jc.valid], jc.jets[jc.valid], spec)
    assert np.isfinite(out["features"]).all()
    real = out["mask"][:, 0] > 0
    w = ak.to_numpy(ak.pad_none(jc.cands[jc.valid].puppiWeight, 50, clip=True).to_numpy(allow_missing=True).filled(0))
    np.testing.assert_allclose(out["features"][:, 2][real], w[real], rtol=1e-6)
    # log(pt / sum(pt)) uses every constituent, so the exp over all of a jet's constituents sums to 1
    pt = jc.cands[jc.valid].pt
    np.testing.assert_allclose(ak.to_numpy(ak.sum(pt / ak.sum(pt, axis=1), axis=1)), 1.0, rtol=1e-9)
    np.testing.assert_allclose(np.exp(out["features"][:, 0])[real],
                               ak.to_numpy(ak.pad_none(pt / ak.sum(pt, axis=1), 50, clip=True)
                                           .to_numpy(allow_missing=True).filled(1))[real], rtol=1e-5)
