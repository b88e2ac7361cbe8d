"""Inference engine: Tagger.predict, backends, length bucketing, worker environment."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from hepml_coffea.inference import engine
from hepml_coffea.inference.engine import get_tagger


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
