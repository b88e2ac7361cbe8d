"""Stand-in artifacts (random weights, same architectures and input specs as the shipped
taggers) for developing the benchmarks while the shipped ones are still training, and for
full-size ParticleNet, which is not shipped.  Speed figures do not depend on the weights;
scores do, so nothing here is used for physics figures.

    python benchmarks/_standins.py /tmp/standin_artifacts
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hepml_coffea.artifacts import save_artifact  # noqa: E402
from hepml_coffea.models import CutBasedTopTagger, build_model  # noqa: E402
from hepml_coffea.models.registry import MODEL_REGISTRY  # noqa: E402
from hepml_coffea.training.dataset import standard_spec  # noqa: E402

NAMES = ("baseline", "pfn", "cnn", "lstm", "particlenet-lite")


def make_standin(name: str, out: Path, seed: int = 1) -> Path:
    """One random-weight artifact of registry model ``name`` (or the baseline) in ``out``."""
    import torch

    out = Path(out)
    if (out / "manifest.json").is_file():
        return out
    torch.manual_seed(seed)
    meta = {"standin": "random weights (benchmarks/_standins.py); speed only"}
    if name == "baseline":
        rng = np.random.default_rng(seed)
        n = 4000
        y = rng.integers(0, 2, n)
        msd = np.where(y == 1, rng.normal(172, 20, n), rng.exponential(60, n)).clip(0, 400)
        tau32 = np.where(y == 1, rng.normal(0.55, 0.1, n), rng.normal(0.75, 0.1, n)).clip(0, 1)
        model = CutBasedTopTagger().fit(msd, tau32, y)
        save_artifact(out, name=name, model=model, input_kind="observables", spec=None,
                      metrics={"working_points": {}}, meta=meta)
        return out
    kind = MODEL_REGISTRY[name].input_kind
    model = build_model(name).eval()
    save_artifact(out, name=name, model=model, input_kind=kind, spec=standard_spec(kind), metrics={},
                  meta=meta, torchscript=False)
    return out


def make_standins(root: str | Path, names: tuple[str, ...] = NAMES) -> dict[str, Path]:
    root = Path(root)
    return {n: make_standin(n, root / n) for n in names}


if __name__ == "__main__":
    print(make_standins(sys.argv[1] if len(sys.argv) > 1 else "/tmp/standin_artifacts"))
