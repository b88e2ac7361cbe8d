"""Bring your own model: coffea's documented feature recipe, described in YAML alone.

A TorchScript model trained on coffea's ``torch_wrapper`` ParticleNet example inputs is
wrapped with ``docs/byo_coffea_recipe.yaml`` (feature expressions, no registered Python)
and scored by a fresh Python process through the engine; the scores must equal those of
``coffea.ml_tools.torch_wrapper`` fed by coffea's recipe on ``tests/samples/pfnano.root``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SPEC_YAML = ROOT / "docs" / "byo_coffea_recipe.yaml"
PFNANO = ROOT / "tests" / "samples" / "pfnano.root"
V15 = ROOT / "tests" / "samples" / "nano_tt_v15.root"
P = 100


class SoftEdgeNet(nn.Module):
    """A small ParticleNet-like network: ``forward(points, features, mask)`` -> (N, 2) logits.

    One EdgeConv block whose neighbourhood is a Gaussian weight ``exp(-d^2 / 2 s^2)`` in the
    point coordinates instead of a hard kNN, so the output is continuous in the points
    (an equality test at 1e-6 must not hinge on which of two equidistant neighbours a
    top-k picks), then a masked mean over particles and a linear head.

    Shapes:
        points (N, 2, P), features (N, C, P), mask (N, 1, P) any float dtype -> (N, 2)
    """

    def __init__(self, c_in: int = 5, hidden: int = 16, sigma: float = 0.3) -> None:
        super().__init__()
        self.edge = nn.Sequential(nn.Linear(2 * c_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 2)
        self.inv_two_s2 = 1.0 / (2.0 * sigma * sigma)

    def forward(self, points: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()  # coffea's recipe sends float16, the engine float32
        x = features.float().transpose(1, 2)  # (N, P, C)
        pts = points.float().transpose(1, 2)  # (N, P, 2)
        n_p = x.shape[1]
        d2 = ((pts[:, :, None, :] - pts[:, None, :, :]) ** 2).sum(-1)  # (N, P, P)
        w = torch.exp(-d2 * self.inv_two_s2) * m[:, 0, None, :]
        w = w / (w.sum(-1, keepdim=True) + 1e-6)
        xi = x[:, :, None, :].expand(-1, -1, n_p, -1)
        xj = x[:, None, :, :].expand(-1, n_p, -1, -1)
        e = self.edge(torch.cat([xi, xj - xi], dim=-1))  # (N, P, P, H)
        h = (w[..., None] * e).sum(2)  # (N, P, H)
        mt = m.transpose(1, 2)  # (N, P, 1)
        pooled = (h * mt).sum(1) / mt.sum(1).clamp(min=1.0)
        return self.head(pooled)


def _coffea_reference(ts_path: Path, pt_fraction_of: str = "sum") -> np.ndarray:
    """Scores of coffea's torch_wrapper with coffea's ParticleNet recipe on the PFNano file.

    ``pt_fraction_of="jet"`` swaps the third feature for ``log(pt / jet.pt)`` (the variant
    of coffea's notebook), to show that the comparison tells the two recipes apart.
    """
    import warnings

    from coffea.ml_tools.torch_wrapper import torch_wrapper
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    class CoffeaRecipe(torch_wrapper):  # type: ignore[misc]
        def prepare_awkward(self, jets, cands):
            def pad(a):
                return ak.fill_none(ak.pad_none(a, P, axis=1, clip=True), 0.0)

            def stack(arrays, dtype):
                return ak.values_astype(ak.concatenate([pad(a)[:, np.newaxis, :] for a in arrays], axis=1), dtype)

            points = [jets.eta - cands.eta, jets.delta_phi(cands)]
            features = [
                jets.delta_r(cands),
                np.log(cands.pt),
                np.log(cands.pt / (ak.sum(cands.pt, axis=-1) if pt_fraction_of == "sum" else jets.pt)),
                np.log(np.abs(cands.d0) + 1),
                np.log(np.abs(cands.dz) + 1),
            ]
            mask = [ak.ones_like(cands.pt)]
            return (), {"points": stack(points, np.float32), "features": stack(features, np.float32),
                        "mask": stack(mask, np.float16)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(PFNANO): "Events"}, schemaclass=PFNanoAODSchema,
                                             mode="virtual").events()
        # this file has no FatJet_nConstituents, so FatJet.constituents is unavailable: group the
        # PFCands by the association rows (FatJetPFCands_jetIdx / _pFCandsIdx), in file order
        rows = events.FatJetPFCands
        pf = ak.with_field(events.PFCands[rows.pFCandsIdx], rows.jetIdx, "jetIdx")
        pairs = ak.cartesian({"j": ak.local_index(events.FatJet.pt, axis=1), "c": pf}, axis=1, nested=True)
        cands = ak.flatten(pairs.c[pairs.c.jetIdx == pairs.j], axis=1)
        jets = ak.flatten(events.FatJet, axis=1)
        assert ak.max(ak.num(cands)) < P  # every constituent is kept, whatever the order
        logits = np.asarray(CoffeaRecipe(str(ts_path))(jets, cands), dtype=np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e[:, 1] / e.sum(axis=1)


# the whole scoring side, run by a fresh interpreter: nothing registered, nothing imported
# from the tests; only the artifact (with the YAML spec inside) and the files
_FRESH = r"""
import json, sys
import numpy as np
from hepml_coffea.data.constituents import MissingBranchError, fatjet_constituents
from hepml_coffea.inference.engine import get_tagger
from hepml_coffea.data.io import load_events, read_arrays
from hepml_coffea.representations import FEATURES, build

artifact, pfnano, v15, out = sys.argv[1:5]
builtin = set(FEATURES)
tagger = get_tagger(artifact, device="cpu")
spec = tagger.artifact.spec
events = load_events(pfnano)
jc = fatjet_constituents(events, cand_fields=spec.required_cand_fields(), jet_fields=spec.required_jet_fields())
good = jc.select(jc.valid)
scores = tagger.predict(build(good.cands, good.jets, spec))
try:
    fatjet_constituents(read_arrays(v15), cand_fields=spec.required_cand_fields())
    v15_error = None
except MissingBranchError as err:
    v15_error = str(err)
np.save(out, scores)
json.dump({"event_index": good.event_index.tolist(), "jet_index": good.jet_index.tolist(),
           "n_jets": len(jc), "features": [f.name for f in spec.features], "points": spec.points,
           "required": list(spec.required_cand_fields()), "new_features": sorted(set(FEATURES) - builtin),
           "v15_error": v15_error}, open(out + ".json", "w"))
"""


@pytest.fixture(scope="module")
def byo_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from hepml_coffea.artifacts import import_torchscript
    from hepml_coffea.representations import InputSpec

    torch.manual_seed(7)
    model = SoftEdgeNet().eval()
    tmp = tmp_path_factory.mktemp("byo")
    ts_path = tmp / "pn_coffea_recipe.pt"
    torch.jit.script(model).save(str(ts_path))
    spec = InputSpec.from_yaml(SPEC_YAML.read_text())
    import_torchscript(ts_path, spec, tmp / "artifact", name="pn-coffea-recipe")
    return ts_path, tmp / "artifact"


def test_yaml_spec_is_pure_expressions():
    from hepml_coffea.representations import FEATURES, InputSpec

    spec = InputSpec.from_yaml(SPEC_YAML.read_text())
    assert spec.kind == "pointcloud" and spec.length == P and spec.n_features == 5
    assert not [f.name for f in spec.features if f.name in FEATURES]  # nothing registered is needed
    assert spec.required_cand_fields() == ("d0", "dz", "eta", "phi", "pt")
    assert spec.required_jet_fields() == ("eta", "phi")


def test_fresh_process_matches_coffea_torch_wrapper(byo_artifact, tmp_path):
    ts_path, artifact = byo_artifact
    out = tmp_path / "scores.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH, str(artifact), str(PFNANO), str(V15), str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = np.load(out)
    info = json.loads(Path(str(out) + ".json").read_text())
    assert info["new_features"] == []  # nothing was registered in the fresh process
    assert info["features"][2] == "log(pt / sum(pt))" and info["points"][0] == "jet.eta - eta"
    # every fat jet of the file has constituents and is scored, in events.FatJet order
    ref = _coffea_reference(ts_path)
    assert info["n_jets"] == len(ref) == len(ours) == 24
    with __import__("uproot").open(PFNANO) as f:
        n_fj = f["Events"]["nFatJet"].array(library="np")
    assert info["event_index"] == np.repeat(np.arange(len(n_fj)), n_fj).tolist()
    assert ours.dtype == np.float32 and np.all((ours > 0) & (ours < 1))
    assert np.ptp(ref) > 1e-3  # the model separates the jets: the comparison has teeth
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # one feature defined differently (pT fraction of the jet instead of the constituent sum)
    # moves the scores far beyond the tolerance
    assert np.abs(_coffea_reference(ts_path, pt_fraction_of="jet") - ours).max() > 1e-5
    # a file without the branches the spec reads: one clear error naming them
    assert info["v15_error"] is not None and "PFCand_d0" in info["v15_error"] and "PFCand_dz" in info["v15_error"]
