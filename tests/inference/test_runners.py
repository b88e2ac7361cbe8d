"""The runner protocol (``hepml_coffea/inference/runners.py``) and parse-once (issue 24).

Every runtime behind one interface returning probabilities; the engine never names a
runtime; a tagger handle is loaded once per process and found by its hash without
reading the disk; the client never builds the models it does not run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hepml_coffea.artifacts import load_artifact
from hepml_coffea.inference import engine, runners
from hepml_coffea.inference.backends import synthetic_inputs

PACKAGE = Path(engine.__file__).resolve().parents[1]

#: (shipped tagger, backend): one of each runtime
CASES = [("pfn", "torch"), ("pfn", "onnxruntime"), ("particlenet-lite", "aoti"), ("baseline", "auto"),
         ("particlenet-jetclass", "onnxruntime")]


@pytest.mark.parametrize(("name", "backend"), CASES)
def test_every_runtime_is_a_runner_returning_probabilities(name: str, backend: str) -> None:
    art = load_artifact(name)
    runner = runners.open_runner(art, "cpu", None, backend)
    assert isinstance(runner, runners.Runner)
    assert runner.device == "cpu" and runner.name == engine.get_tagger(name, "cpu", backend=backend).backend
    if art.input_kind == "observables":
        batch = [np.array([170.0, np.nan, 60.0]), np.array([0.5, 0.4, 0.9])]
    else:
        x = synthetic_inputs(art, n=8)
        batch = [x[k] for k in art.input_names]
    got = np.asarray(runner.run(batch))
    if runner.width is None:  # top probability per jet
        assert got.shape == (len(batch[0]),)
        assert np.all((got[np.isfinite(got)] >= 0) & (got[np.isfinite(got)] <= 1))
    else:  # class probabilities, rows summing to one
        assert got.shape == (8, runner.width) and np.allclose(got.sum(axis=1), 1, atol=1e-5)
    assert runners.runner_class(runner.name).supports(art, "cpu") is None


def test_onnx_runtime_gives_what_torch_gives() -> None:
    """One convention: ONNX Runtime returns probabilities exactly where torch eager does."""
    art = load_artifact("pfn")
    x = synthetic_inputs(art, n=32)
    batch = [x[k] for k in art.input_names]
    torch_p = runners.open_runner(art, "cpu", None, "torch").run(batch)
    onnx_p = runners.open_runner(art, "cpu", None, "onnxruntime").run(batch)
    np.testing.assert_allclose(onnx_p, torch_p, rtol=0, atol=1e-5)


def test_options_are_validated_in_one_place() -> None:
    with pytest.raises(ValueError, match="backend 'tensorrt' unknown"):
        runners.check_options("tensorrt", None)
    with pytest.raises(ValueError, match="amp 'int8' unknown: amp must be"):
        runners.check_options("auto", "int8")
    with pytest.raises(ValueError, match="runs on CPU only"):
        runners.resolve_backend("onnxruntime", "cuda", load_artifact("pfn"))
    assert runners.resolve_backend("auto", "cuda", load_artifact("pfn")) == "torch"
    assert runners.resolve_backend("aoti", "cpu", load_artifact("baseline")) == "numpy"


def test_no_runtime_branching_outside_the_runners() -> None:
    """``backend == ...`` and comparisons with a runtime name live in inference/runners.py only."""
    pattern = re.compile(r"""(backend|chosen)\s*[!=]=|[!=]=\s*["'](onnxruntime|aoti|compile|torch)["']""")
    found = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}"
             for p in sorted(PACKAGE.rglob("*.py")) if p.name != "runners.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_tagger_handle_is_hashable_and_found_by_hash_without_the_disk(monkeypatch) -> None:
    engine.clear_cache()
    t = engine.get_tagger("pfn", "cpu", backend="torch")
    again = engine.get_tagger("pfn", "cpu", backend="torch", hash=t.artifact.hash)
    assert again is t and hash(again) == hash(t) and {t: 1}[again] == 1
    with pytest.raises(AttributeError):
        t.device = "cuda"  # immutable
    from hepml_coffea.inference import engine as eng

    def no_disk(*args, **kwargs):  # a call naming the hash must not resolve or read anything
        raise AssertionError("disk touched")

    monkeypatch.setattr(eng, "resolve_artifact", no_disk)
    monkeypatch.setattr(eng, "load_artifact", no_disk)
    for _ in range(3):
        assert engine.get_tagger("pfn", "cpu", backend="torch", hash=t.artifact.hash) is t
    assert t.artifact.file_digest("weights.safetensors") == t.artifact.files["weights.safetensors"]


def test_client_builds_no_model(monkeypatch) -> None:
    import hepml_coffea.models as models
    from hepml_coffea.config import TaggerConfig

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built on the client")

    monkeypatch.setattr(models, "model_from_config", refuse)
    cfg = TaggerConfig.from_artifact("particlenet-lite")
    assert cfg.input_spec is cfg.input_spec and cfg.input_spec.kind == "pointcloud"  # parsed once
    assert cfg.build_key.startswith("particles:")
