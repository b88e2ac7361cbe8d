"""Tests of hepml_coffea.data.geometry: one phi convention, one energy formula, one offsets helper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepml_coffea.data.geometry import delta_r, energy, offsets, starts, wrap_phi


def test_wrap_phi_range_and_boundaries():
    assert wrap_phi(np.array([math.pi]))[0] == math.pi  # +pi stays
    assert wrap_phi(np.array([-math.pi]))[0] == math.pi  # -pi becomes +pi
    np.testing.assert_allclose(wrap_phi(np.array([3 * math.pi, -3 * math.pi, 0.5 + 4 * math.pi, -0.5 - 2 * math.pi])),
                               [math.pi, math.pi, 0.5, -0.5], atol=1e-12)
    # values a hair below a multiple of 2 pi, where np.mod rounds up to 2 pi
    tiny = np.array([-1e-300, -1e-17, 2 * math.pi - 1e-17, -2 * math.pi + 1e-17])
    w = wrap_phi(tiny)
    assert np.all(w > -math.pi) and np.all(w <= math.pi)
    rng = np.random.default_rng(1)
    x = rng.uniform(-50, 50, 100_000)
    w = wrap_phi(x)
    assert np.all(w > -math.pi) and np.all(w <= math.pi)
    np.testing.assert_allclose(np.cos(w), np.cos(x), atol=1e-9)
    np.testing.assert_allclose(np.sin(w), np.sin(x), atol=1e-9)
    x32 = x.astype(np.float32)
    w32 = wrap_phi(x32)
    assert w32.dtype == np.float32
    assert np.all(w32 > -np.float32(math.pi)) and np.all(w32 <= np.float32(math.pi))
    assert wrap_phi(np.array([4], dtype=np.int64)).dtype == np.float64
    assert np.isnan(wrap_phi(np.array([np.nan]))[0])


def test_energy_and_delta_r():
    np.testing.assert_allclose(energy(np.array([3.0, 10.0]), np.array([0.0, 1.0]), np.array([4.0, 0.0])),
                               [5.0, 10 * math.cosh(1.0)])
    assert np.isinf(energy(1e300, 1e3, 0.0))  # overflow flagged downstream, no warning here
    np.testing.assert_allclose(delta_r(np.array([0.3]), np.array([2 * math.pi - 0.4])), [0.5])


def test_offsets_and_starts():
    assert offsets([2, 0, 3]).tolist() == [0, 2, 2, 5]
    assert starts([2, 0, 3]).tolist() == [0, 2, 2]
    assert offsets([]).tolist() == [0] and starts([]).tolist() == []
    assert offsets(np.array([1, 1], dtype=np.int32)).dtype == np.int64


@pytest.mark.parametrize("module", ["hepml_coffea.data.constituents", "hepml_coffea.data.truth",
                                    "hepml_coffea.representations.features"])
def test_one_geometry_layer(module):
    import importlib
    import inspect

    src = inspect.getsource(importlib.import_module(module))
    # no private phi wraps or energy formulas left: they import hepml_coffea.data.geometry
    assert "hepml_coffea.data.geometry" in src
    assert "np.mod(" not in src and "np.cosh(" not in src
