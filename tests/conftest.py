"""Shared fixtures: small generated samples (made once per test session, seeds fixed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hepml_coffea.samples import generate


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="session")
def ttbar_file(sample_dir: Path) -> Path:
    """300 ttbar events (seed 11), detector response on."""
    return generate("ttbar", 300, 11, sample_dir / "ttbar_11.root")


@pytest.fixture(scope="session")
def qcd_file(sample_dir: Path) -> Path:
    """300 QCD events (seed 21), detector response on."""
    return generate("qcd", 300, 21, sample_dir / "qcd_21.root")


@pytest.fixture(scope="session")
def tiny_artifacts(ttbar_file: Path, qcd_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tagger kind trained for one epoch on the small generated samples.

    Not good taggers - real artifacts of every kind, made in seconds, so processor,
    engine and reliability tests do not depend on the shipped ones.
    """
    from hepml_coffea.training.dataset import load_dataset
    from hepml_coffea.training.train import TrainConfig, train_on_dataset

    root = tmp_path_factory.mktemp("artifacts")
    ds = load_dataset([ttbar_file], [qcd_file])
    out = {}
    for name in ("baseline", "pfn", "cnn", "lstm", "particlenet-lite"):
        cfg = TrainConfig(model=name, epochs=1, batch_size=64, progress=False, seed=3)
        train_on_dataset(ds, root / name, cfg)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def arts(tiny_artifacts: dict[str, Path]) -> dict[str, str]:
    """The tiny artifacts as path strings."""
    return {k: str(v) for k, v in tiny_artifacts.items()}


@pytest.fixture(scope="session")
def fast_proc(arts: dict[str, str]):
    """Two fast taggers of two kinds (sequence model + observables baseline)."""
    from hepml_coffea.analysis.processor import TaggerProcessor

    return TaggerProcessor(taggers=[arts["pfn"], arts["baseline"]], device="cpu")


@pytest.fixture(scope="session")
def fast_proc_skip(arts: dict[str, str]):
    """:func:`fast_proc` skipping bad inputs."""
    from hepml_coffea.analysis.processor import TaggerProcessor

    return TaggerProcessor(taggers=[arts["pfn"], arts["baseline"]], device="cpu", skip_bad_inputs=True)


@pytest.fixture(scope="session")
def ref_output(fast_proc, ttbar_file: Path, qcd_file: Path):
    """The good files, no damage, through :func:`fast_proc`: the reference histograms."""
    from faults import run_iterative

    return run_iterative({"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}, fast_proc)


@pytest.fixture
def hepml_log(caplog: pytest.LogCaptureFixture):
    """``caplog`` attached to the package's logger itself, so the records are seen also after
    the command line (which stops propagation to the root logger) was run in this session."""
    import logging

    logger = logging.getLogger("hepml_coffea")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)
