"""Inference engine: Tagger.predict, backends, length bucketing, worker environment."""

from __future__ import annotations

from collections.abc import Iterator

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from hepml_coffea.artifacts import (
    import_torchscript,
    load_artifact,
)
from hepml_coffea.data.constituents import (
    fatjet_constituents,
)
from hepml_coffea.inference import engine
from hepml_coffea.inference.engine import get_tagger
from hepml_coffea.data.io import read_arrays


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sequence_inputs(counts: list[int], P: int = 40, C: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    """Random padded jets with ``counts`` real particles each (real first, padding zero)."""
    rng = np.random.default_rng(seed)
    n = len(counts)
    mask = np.zeros((n, 1, P), np.float32)
    for i, c in enumerate(counts):
        mask[i, 0, :c] = 1.0
    features = rng.normal(size=(n, C, P)).astype(np.float32) * mask
    points = rng.normal(scale=0.4, size=(n, 2, P)).astype(np.float32) * mask
    return {"points": points, "features": features, "mask": mask}


# --------------------------------------------------------------------------- Tagger.predict
def test_baseline_predict_nan_where_not_finite() -> None:
    tagger = get_tagger("baseline", "cpu")
    assert tagger.backend == "numpy"
    assert tagger.input_names == ("msoftdrop", "tau32")
    msd = np.array([172.0, np.nan, 80.0, 20.0])
    tau32 = np.array([0.45, 0.5, np.inf, 0.9])
    got = tagger.predict({"msoftdrop": msd, "tau32": tau32, "ignored": np.zeros(4)})
    assert got.dtype == np.float32 and got.shape == (4,)
    assert np.isnan(got[1]) and np.isnan(got[2])
    ref = tagger.model.score(msd[[0, 3]], tau32[[0, 3]])
    np.testing.assert_allclose(got[[0, 3]], ref, rtol=1e-6)
    assert got[0] > got[3]  # top-like jet above the QCD-like one


def test_predict_equals_module_level_predict() -> None:
    tagger = get_tagger("pfn", "cpu", backend="torch")
    x = sequence_inputs([3, 40, 17, 1, 0, 25])
    got = tagger.predict(x, batch_size=4)
    ref = engine.predict(tagger.model, [x["features"], x["mask"]], batch_size=64)
    assert got.dtype == np.float32 and got.shape == (6,)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_predict_input_errors() -> None:
    tagger = get_tagger("pfn", "cpu", backend="torch")
    x = sequence_inputs([3, 4])
    with pytest.raises(KeyError, match=r"needs inputs \['features', 'mask'\]; missing \['mask'\]"):
        tagger.predict({"features": x["features"]})
    with pytest.raises(ValueError, match="different numbers of jets"):
        tagger.predict({"features": x["features"], "mask": x["mask"][:1]})
    assert tagger.predict({"features": x["features"][:0], "mask": x["mask"][:0]}).shape == (0,)


def test_get_tagger_backend_choice_and_cache_key() -> None:
    with pytest.raises(ValueError, match="backend 'tensorrt' unknown"):
        get_tagger("pfn", "cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="amp 'int8' unknown"):
        get_tagger("pfn", "cpu", amp="int8")
    a = get_tagger("pfn", "cpu", backend="torch")
    assert get_tagger("pfn", "cpu", backend="torch") is a
    assert a.backend == "torch"
    assert get_tagger("baseline", "cpu", backend="onnxruntime").backend == "numpy"


# --------------------------------------------------------------------------- bucketing + trimming
def test_padded_lengths_pinned() -> None:
    mask = np.zeros((4, 1, 6), np.float32)
    mask[0, 0, :3] = 1  # contiguous: count
    mask[2, 0, [0, 4]] = 1  # not contiguous: one past the last real particle
    mask[3, 0, :] = 1
    np.testing.assert_array_equal(engine.padded_lengths(mask), [3, 0, 5, 6])
    assert engine.padded_lengths(np.zeros((0, 1, 6))).shape == (0,)
    assert engine.padded_lengths(np.zeros((2, 1, 0))).tolist() == [0, 0]


TRIM_MODELS = {
    "pfn": {"phi_sizes": [16, 16], "f_sizes": [16]},
    "lstm": {"hidden": 12, "dense": [8]},
    "lstm-bidirectional": {"hidden": 12, "dense": [8], "bidirectional": True, "num_layers": 2, "reverse": False},
    "particlenet-lite": {"conv_params": [[7, [16, 16]], [7, [16, 16]]], "fc_params": [[16, 0.1]]},
}


def _tiny(kind: str) -> torch.nn.Module:
    from hepml_coffea.models import build_model

    torch.manual_seed(5)
    model = build_model(kind.split("-bi")[0], **TRIM_MODELS[kind])
    # non-trivial BatchNorm statistics, so eval-mode normalisation is not the identity
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("kind", sorted(TRIM_MODELS))
def test_trimmed_batches_equal_untrimmed(kind: str) -> None:
    model = _tiny(kind)
    # empty jets, jets below k = 7, long jets; shuffled so sorting actually reorders
    counts = [0, 1, 2, 5, 7, 8, 12, 30, 64, 3, 0, 44, 6, 9, 63, 17, 1, 25, 40, 2, 11, 0, 50]
    x = sequence_inputs(counts, P=64, seed=3)
    names = ["points", "features", "mask"] if kind.startswith("particlenet") else ["features", "mask"]
    arrays = [x[k] for k in names]
    full = engine.predict(model, arrays, batch_size=len(counts))
    lengths = engine.padded_lengths(x["mask"])
    for bs in (1, 4, 7, 64):
        trimmed = engine.predict(model, arrays, batch_size=bs, lengths=lengths)
        np.testing.assert_allclose(trimmed, full, rtol=0, atol=1e-6)
    # the trimmed path really ran shorter inputs
    seen: list[int] = []
    real = engine._forward

    def spy(m, args):
        seen.append(int(args[0].shape[-1]))
        return real(m, args)

    try:
        engine._forward = spy
        engine.predict(model, arrays, batch_size=4, lengths=lengths)
    finally:
        engine._forward = real
    ordered = sorted(counts)
    assert seen == [max(1, ordered[min(i + 3, len(ordered) - 1)]) for i in range(0, len(ordered), 4)]
    assert seen == [1, 3, 8, 17, 44, 64]


def test_tagger_predict_trims_registry_models_only(tmp_path) -> None:
    from hepml_coffea.artifacts import save_artifact
    from hepml_coffea.representations import InputSpec

    model = _tiny("pfn")
    spec = InputSpec(kind="sequence", length=64)
    save_artifact(tmp_path / "pfn", name="tiny-pfn", model=model, input_kind="sequence", spec=spec, metrics={},
                  torchscript=False)
    ts = tmp_path / "pfn.ts"
    torch.jit.script(model).save(str(ts))
    import_torchscript(ts, spec, tmp_path / "byo")
    x = sequence_inputs([3, 0, 20, 7, 64, 1], P=64, seed=4)
    own = get_tagger(tmp_path / "pfn", "cpu", backend="torch")
    byo = get_tagger(tmp_path / "byo", "cpu", backend="torch")
    assert own.trims_padding and not byo.trims_padding
    seen: list[int] = []
    real = engine._forward
    try:
        engine._forward = lambda m, a: (seen.append(int(a[0].shape[-1])), real(m, a))[1]
        got = own.predict(x, batch_size=2)
        assert seen == [1, 7, 64]  # sorted by count: (0, 1), (3, 7), (20, 64)
        seen.clear()
        ref = byo.predict(x, batch_size=2)
        assert seen == [64, 64, 64]
    finally:
        engine._forward = real
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- worker environment
def test_worker_environment_values_and_problems() -> None:
    from hepml_coffea.inference.worker import allocator_problems, worker_environment

    env = worker_environment()
    assert env == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
    assert allocator_problems(env) == []
    dask_default = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    assert allocator_problems(dask_default) == [
        "MALLOC_ARENA_MAX unset (recommended 1)",
        "MALLOC_MMAP_MAX_ unset (recommended 0)",
        "MALLOC_TRIM_THRESHOLD_='65536' (recommended 1073741824)",
    ]


def test_apply_allocator_settings_in_a_fresh_process() -> None:
    import subprocess
    import sys

    code = ("from hepml_coffea.inference.worker import apply_allocator_settings as a; "
            "import sys; sys.exit(0 if a() else 3)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0


def test_local_cluster_workers_start_with_the_environment() -> None:
    import os

    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.inference.worker import allocator_problems, worker_environment

    cluster, client = make_cluster("dask", workers=1, dashboard_address="127.0.0.1:0")
    try:
        seen = client.run(lambda: {k: os.environ.get(k) for k in worker_environment()})
        (env,) = seen.values()
        assert env == worker_environment()
        assert list(client.run(allocator_problems).values()) == [[]]
    finally:
        client.close()
        cluster.close()


# --------------------------------------------------------------------------- backends
EXPORT_MODELS = {**TRIM_MODELS, "cnn": {"npix": 16, "conv_channels": [4, 4], "dense": [8]}}


def _tiny_artifact(kind: str, out) -> tuple:
    from hepml_coffea.artifacts import save_artifact
    from hepml_coffea.models import build_model
    from hepml_coffea.representations import InputSpec

    if kind == "cnn":
        torch.manual_seed(5)
        model = build_model("cnn", **EXPORT_MODELS["cnn"]).eval()
        spec = InputSpec(kind="image", npix=16)
    else:
        model = _tiny(kind)
        spec = InputSpec(kind="pointcloud" if kind.startswith("particlenet") else "sequence", length=40)
    save_artifact(out, name=f"tiny-{kind}", model=model, input_kind=spec.kind, spec=spec, metrics={}, torchscript=False)
    return model, spec


def _inputs(spec, n: int = 50, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if spec.kind == "image":
        return {"image": rng.exponential(size=(n, 1, spec.npix, spec.npix)).astype(np.float32) * 0.05}
    counts = rng.integers(0, spec.length + 1, n)
    x = sequence_inputs(list(counts), P=spec.length, seed=seed)
    x["features"] *= 0.3  # moderate logits: scores away from 0 and 1, so differences show
    # exact distance ties (as real jets have): equal coordinates and equal (zero) features
    x["points"][:, :, 3] = x["points"][:, :, 1] * x["mask"][:, :, 3]
    x["features"][:, :, 5] = x["features"][:, :, 4] * x["mask"][:, :, 5]
    return x


@pytest.mark.parametrize("kind", ["cnn", "lstm", "particlenet-lite", "pfn"])
def test_onnx_export_equals_torch_eager(kind: str, tmp_path) -> None:
    from hepml_coffea.artifacts import ArtifactIntegrityError, load_artifact
    from hepml_coffea.inference.backends import export_onnx

    _, spec = _tiny_artifact(kind, tmp_path / kind)
    x = _inputs(spec)
    export_onnx(tmp_path / kind, inputs=x)
    art = load_artifact(tmp_path / kind)
    assert art.file_digest("model.onnx") is not None and art.meta["onnx"]["max_abs_score_diff"] <= 1e-5
    eager = get_tagger(tmp_path / kind, "cpu", backend="torch")
    ort = get_tagger(tmp_path / kind, "cpu", backend="onnxruntime")
    assert (eager.backend, ort.backend) == ("torch", "onnxruntime")
    ref = eager.predict(x, batch_size=8)
    got = ort.predict(x, batch_size=8)
    assert 0.02 < float(np.median(ref)) < 0.98  # not saturated: the comparison means something
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    # the ONNX file is covered by the manifest
    onnx = tmp_path / kind / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="model.onnx has sha256"):
        load_artifact(tmp_path / kind)


def test_bidirectional_lstm_is_not_exported(tmp_path) -> None:
    from hepml_coffea.inference.backends import ExportError, export_onnx
    from hepml_coffea.inference.tuning import choose_backend

    _tiny_artifact("lstm-bidirectional", tmp_path / "bi")
    with pytest.raises(ExportError, match="bidirectional JetLSTM has no unpacked form"):
        export_onnx(tmp_path / "bi")
    assert choose_backend(tmp_path / "bi", backends=("onnxruntime", "torch"), repeats=1) == "torch"
    tagger = get_tagger(tmp_path / "bi", "cpu")
    assert tagger.backend == "torch" and tagger.artifact.meta["cpu_backend"]["chosen"] == "torch"
    assert "bidirectional" in tagger.artifact.meta["cpu_backend"]["onnx_export"]


def test_choose_backend_records_and_auto_follows(tmp_path) -> None:
    from hepml_coffea.artifacts import load_artifact
    from hepml_coffea.inference.tuning import choose_backend

    _, spec = _tiny_artifact("pfn", tmp_path / "pfn")
    assert get_tagger(tmp_path / "pfn", "cpu").backend == "torch"  # nothing recorded yet
    with pytest.raises(Exception, match="has no model.onnx"):
        get_tagger(tmp_path / "pfn", "cpu", backend="onnxruntime")
    chosen = choose_backend(tmp_path / "pfn", inputs=_inputs(spec, n=300), backends=("onnxruntime", "torch"), repeats=2)
    art = load_artifact(tmp_path / "pfn")
    rec = art.meta["cpu_backend"]
    assert art.cpu_backend == chosen == rec["chosen"] and rec["n_jets"] == 300 and rec["threads"] == 1
    assert set(rec["results"]) == {"onnxruntime", "torch"}
    assert rec["results"]["onnxruntime"]["max_abs_score_diff"] <= 1e-5
    auto = get_tagger(tmp_path / "pfn", "cpu")
    assert auto.backend == chosen
    with pytest.raises(ValueError, match="runs on CPU only"):
        engine.resolve_backend("onnxruntime", "cuda", art)
    assert engine.resolve_backend("auto", "cuda", art) == "torch"


def test_compile_backend_equals_torch_eager(tmp_path) -> None:
    _, spec = _tiny_artifact("lstm", tmp_path / "lstm")
    x = _inputs(spec, n=30)
    ref = get_tagger(tmp_path / "lstm", "cpu", backend="torch").predict(x, batch_size=16)
    got = get_tagger(tmp_path / "lstm", "cpu", backend="compile").predict(x, batch_size=16)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def aoti_cnn(tmp_path_factory) -> tuple[object, dict[str, np.ndarray]]:
    """A tiny CNN artifact with model.onnx and model.pt2 (compiled once for the module)."""
    from hepml_coffea.inference.backends import export_aoti, export_onnx

    path = tmp_path_factory.mktemp("aoti") / "cnn"
    _, spec = _tiny_artifact("cnn", path)
    x = _inputs(spec, n=40)
    export_onnx(path, inputs=x)
    export_aoti(path, inputs=x)
    return path, x


@pytest.mark.parametrize("kind", ["cnn", "pfn"])
def test_aoti_package_equals_torch_eager_and_is_sealed(kind: str, tmp_path, aoti_cnn) -> None:
    from hepml_coffea.artifacts import ArtifactIntegrityError, load_artifact
    from hepml_coffea.inference.backends import aoti_target, export_aoti

    if kind == "cnn":
        path, x = aoti_cnn
    else:  # dynamic jet and particle axes: the engine trims every batch to its longest jet
        path = tmp_path / kind
        _, spec = _tiny_artifact(kind, path)
        x = _inputs(spec)
        export_aoti(path, inputs=x)
    art = load_artifact(path)
    rec = art.meta["aoti"]
    assert art.file_digest("model.pt2") == rec["sha256"] and rec["max_abs_score_diff"] <= 1e-5
    assert {k: rec[k] for k in aoti_target()} == aoti_target()
    ref = get_tagger(path, "cpu", backend="torch").predict(x, batch_size=8)
    aoti = get_tagger(path, "cpu", backend="aoti")
    assert aoti.backend == "aoti"
    got = aoti.predict(x, batch_size=8)
    assert 0.02 < float(np.median(ref)) < 0.98
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(aoti.predict(x, batch_size=3), got, rtol=0, atol=1e-6)  # a batch of 1 included
    if kind == "pfn":  # compiled native code is covered by the manifest like every other file
        pt2 = path / "model.pt2"
        data = pt2.read_bytes()
        pt2.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(ArtifactIntegrityError, match="model.pt2 has sha256"):
            load_artifact(path)


def test_aoti_incompatibility_rules(monkeypatch) -> None:
    from hepml_coffea.inference import backends

    here = {"torch": "2.13.0+cpu", "system": "Linux", "machine": "x86_64", "cpu_capability": "AVX2"}
    monkeypatch.setattr(backends, "aoti_target", lambda: dict(here))
    assert backends.aoti_incompatibility(dict(here)) is None
    assert backends.aoti_incompatibility({**here, "cpu_capability": "DEFAULT"}) is None
    assert backends.aoti_incompatibility({**here, "cpu_capability": "AVX512"}) == (
        "built for CPU capability 'AVX512', this CPU has 'AVX2'")
    assert backends.aoti_incompatibility({**here, "torch": "2.11.0"}) == (
        "built for torch '2.11.0', this process has '2.13.0+cpu'")
    assert backends.aoti_incompatibility({**here, "machine": "aarch64"}) == (
        "built for machine 'aarch64', this process has 'x86_64'")
    assert backends.aoti_incompatibility(None) == "no aoti record in model.yaml"
    here["cpu_capability"] = "AVX512"  # code built for AVX2 runs on an AVX-512 CPU
    assert backends.aoti_incompatibility({**here, "cpu_capability": "AVX2"}) is None


def test_aoti_built_elsewhere_refused_by_name_auto_falls_back(tmp_path, aoti_cnn, caplog) -> None:
    import logging
    import shutil

    from hepml_coffea.artifacts import ArtifactError, load_artifact, update_artifact

    path = tmp_path / "cnn"
    shutil.copytree(aoti_cnn[0], path)
    x = aoti_cnn[1]
    rec = dict(load_artifact(path).meta["aoti"])
    update_artifact(path, meta={"aoti": {**rec, "torch": "0.0.1"}, "cpu_backend": {"chosen": "aoti"}})
    with pytest.raises(ArtifactError, match=r"model.pt2 cannot run here \(built for torch '0.0.1'"):
        get_tagger(path, "cpu", backend="aoti")
    with caplog.at_level(logging.WARNING, logger="hepml_coffea.inference"):
        auto = get_tagger(path, "cpu")
    assert auto.backend == "onnxruntime"  # the recorded choice cannot run here: the next best does
    assert "built for torch '0.0.1'" in caplog.text and "using onnxruntime" in caplog.text
    ref = get_tagger(path, "cpu", backend="torch").predict(x)
    np.testing.assert_allclose(auto.predict(x), ref, rtol=0, atol=1e-5)
    # without model.onnx either, "auto" ends in torch eager; by name "aoti" still refuses
    update_artifact(path, remove=("model.onnx",), meta={"onnx": None})
    assert get_tagger(path, "cpu").backend == "torch"
    update_artifact(path, remove=("model.pt2",), meta={"aoti": None})
    with pytest.raises(ArtifactError, match="has no model.pt2 for backend 'aoti'"):
        get_tagger(path, "cpu", backend="aoti")


def test_aoti_package_that_does_not_load_and_aoti_on_gpu(tmp_path, aoti_cnn, caplog) -> None:
    import logging
    import shutil

    from hepml_coffea.artifacts import ArtifactError, load_artifact, update_artifact

    path = tmp_path / "cnn"
    shutil.copytree(aoti_cnn[0], path)
    # sealed (hash matches, its record describes it) but not a package: by name a clear error,
    # under auto ONNX Runtime (a model.pt2 its record does not describe is refused at load:
    # tests/test_reliability_hashchain.py)
    import hashlib

    import yaml

    junk = b"not a zip archive"
    rec = {**yaml.safe_load((path / "model.yaml").read_text())["aoti"], "sha256": hashlib.sha256(junk).hexdigest()}
    update_artifact(path, files={"model.pt2": junk}, meta={"cpu_backend": {"chosen": "aoti"}, "aoti": rec})
    with pytest.raises(ArtifactError, match=r"model.pt2 does not load \("):
        get_tagger(path, "cpu", backend="aoti")
    with caplog.at_level(logging.WARNING, logger="hepml_coffea.inference"):
        assert get_tagger(path, "cpu").backend == "onnxruntime"
    assert "does not load" in caplog.text
    with pytest.raises(ValueError, match="backend 'aoti' runs on CPU only"):
        engine.resolve_backend("aoti", "cuda", load_artifact(path))
    assert engine.resolve_backend("auto", "cuda", load_artifact(path)) == "torch"


@pytest.mark.parametrize(("aoti_rate", "chosen"), [(1040.0, "onnxruntime"), (1200.0, "aoti")])
def test_choose_backend_aoti_margin_and_unchosen_package_removed(aoti_rate, chosen, tmp_path, aoti_cnn,
                                                                  monkeypatch) -> None:
    import shutil

    from hepml_coffea.artifacts import load_artifact
    from hepml_coffea.inference import tuning

    path = tmp_path / "cnn"
    shutil.copytree(aoti_cnn[0], path)  # has model.onnx and model.pt2 already
    monkeypatch.setattr(tuning, "export_onnx", lambda *a, **k: None)
    monkeypatch.setattr(tuning, "export_aoti", lambda *a, **k: None)
    rates = {"onnxruntime": 1000.0, "aoti": aoti_rate, "compile": 1090.0, "torch": 500.0}
    monkeypatch.setattr(tuning, "measure_backends", lambda *a, **k: {
        b: {"jets_per_s": r, "max_abs_score_diff": 1e-7, "setup_s": 0.1} for b, r in rates.items()})
    # aoti must beat ONNX Runtime by AOTI_MARGIN (1.05); compile (1.09x) never clears COMPILE_MARGIN here
    assert tuning.choose_backend(path, inputs=aoti_cnn[1]) == chosen
    art = load_artifact(path)
    assert art.cpu_backend == chosen and art.file_digest("model.onnx") is not None
    if chosen == "aoti":
        assert art.file_digest("model.pt2") is not None and art.meta["aoti"]["file"] == "model.pt2"
    else:  # measured, not chosen: the compiled package is not shipped
        assert not (path / "model.pt2").exists() and art.meta.get("aoti") is None
        assert art.meta["cpu_backend"]["aoti_export"] == "model.pt2 measured, not chosen: removed"


# --------------------------------------------------------------------------- RNTuple field index
def test_rntuple_field_index_lists_and_reads_the_same(tmp_path) -> None:

    from hepml_coffea.data import io
    from hepml_coffea.data.io import read_arrays

    with uproot.open("tests/samples/pfnano.root") as f:
        tree = f["Events"]
        names = [k for k in tree.keys() if k.split("_", 1)[0] in ("FatJet", "PFCands", "FatJetPFCands", "Jet")]  # noqa: SIM118
        arrays = tree.arrays(names + ["event"], how=dict)
    with uproot.recreate(tmp_path / "rn.root") as f:
        f["Events"] = arrays
    assert io.index_rntuple_fields() and io._UPSTREAM_FIELDS is not None
    from uproot.behaviors.RNTuple import HasFields

    patched = HasFields.__dict__["fields"]

    def listing(prop):
        HasFields.fields = prop
        try:
            rn = uproot.open(tmp_path / "rn.root")["Events"]
            return rn.keys(), [f.name for f in rn["FatJet_pt"].fields]
        finally:
            HasFields.fields = patched

    upstream = listing(io._UPSTREAM_FIELDS)
    indexed = listing(patched)
    assert indexed == upstream and len(indexed[0]) > len(names)  # sub-fields included, same order
    a = read_arrays(tmp_path / "rn.root")
    b = read_arrays("tests/samples/pfnano.root")
    assert ak.to_list(a.FatJet.pt) == ak.to_list(b.FatJet.pt)
    assert ak.to_list(a.PFCands.eta) == ak.to_list(b.PFCands.eta)


def test_shipped_taggers_onnx_equals_torch_on_real_jets() -> None:
    from hepml_coffea.representations import build

    jcs = [fatjet_constituents(read_arrays(f)) for f in ("tests/samples/pfnano.root", "tests/samples/nano_tt_v15.root")]
    jcs = [jc.select(jc.valid) for jc in jcs]
    from hepml_coffea.inference.backends import aoti_incompatibility

    chosen = {}
    for name in ("pfn", "cnn", "lstm", "particlenet-lite"):
        auto = get_tagger(name, "cpu")
        art = auto.artifact
        chosen[name] = art.cpu_backend
        assert art.file_digest("model.onnx") is not None
        runs = aoti_incompatibility(art.meta.get("aoti")) is None
        assert auto.backend == (art.cpu_backend if art.cpu_backend != "aoti" or runs else "onnxruntime")
        others = [get_tagger(name, "cpu", backend="onnxruntime")]
        if art.file_digest("model.pt2") is not None and runs:
            others.append(get_tagger(name, "cpu", backend="aoti"))
        eager = get_tagger(name, "cpu", backend="torch")
        for jc in jcs:
            built = build(jc.cands, jc.jets, art.spec)
            x = {k: np.asarray(built[k]) for k in auto.input_names}
            ref = engine.predict(eager.model, [x[k] for k in eager.input_names])  # eager, padded
            for tagger in (auto, *others):
                np.testing.assert_allclose(tagger.predict(x), ref, rtol=0, atol=1e-5)
            np.testing.assert_allclose(eager.predict(x), ref, rtol=0, atol=1e-6)
    # what the artifacts record (workflows/choose_backends.py, BENCHMARKS.md)
    assert chosen == {"pfn": "onnxruntime", "cnn": "aoti", "lstm": "compile", "particlenet-lite": "aoti"}


def test_predict_rejects_mismatched_inputs_and_outputs():
    model = torch.nn.Identity()
    with pytest.raises(ValueError, match="different lengths"):
        engine.predict(model, [np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32)])
    with pytest.raises(ValueError, match=r"output of shape \(3, 5\)"):
        engine.predict(lambda x: x, [np.zeros((3, 5), np.float32)])


def test_batch_size_does_not_change_scores(tiny_artifacts):
    art = load_artifact(tiny_artifacts["particlenet-lite"])
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 0.2, (37, 2, 100)).astype(np.float32)
    fts = rng.normal(0, 1, (37, 7, 100)).astype(np.float32)
    mask = (np.arange(100)[None, None, :] < rng.integers(1, 100, (37, 1, 1))).astype(np.float32)
    pts *= mask
    fts *= mask
    a = engine.predict(art.model, [pts, fts, mask], batch_size=37)
    b = engine.predict(art.model, [pts, fts, mask], batch_size=5)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)



def test_oom_halves_batch_and_gives_identical_scores(tiny_artifacts, monkeypatch):
    import torch

    art = load_artifact(tiny_artifacts["pfn"])
    rng = np.random.default_rng(1)
    fts = rng.normal(0, 1, (64, 7, 100)).astype(np.float32)
    mask = np.ones((64, 1, 100), dtype=np.float32)
    ref = engine.predict(art.model, [fts, mask], batch_size=64)
    real = engine._forward
    sizes = []

    def flaky(model, args):
        sizes.append(len(args[0]))
        if len(args[0]) > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, args)

    monkeypatch.setattr(engine, "_forward", flaky)
    halved = []
    got = engine.predict(art.model, [fts, mask], batch_size=64, on_oom=halved.append)
    assert halved == [32, 16]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # a non-OOM error is not swallowed
    monkeypatch.setattr(engine, "_forward", lambda m, a: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.predict(art.model, [fts, mask], batch_size=64)



def test_warm_up_and_worker_plugin(tiny_artifacts):
    from types import SimpleNamespace

    import torch

    from hepml_coffea.inference.worker import TaggerWarmup

    before = torch.get_num_threads()
    engine.clear_cache()
    plugin = TaggerWarmup([str(p) for p in tiny_artifacts.values()], device="cpu")
    plugin.setup(SimpleNamespace(address="inproc://test", state=SimpleNamespace(nthreads=1)))
    info = engine.cache_info()
    assert info["misses"] == len(tiny_artifacts) and info["entries"] == len(tiny_artifacts)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
