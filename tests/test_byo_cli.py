"""Bring your own model from the command line and on every executor (issue 21).

* ``hepml-coffea import torchscript|onnx MODEL --spec SPEC.yaml --name NAME`` seals the model,
  runs it once on the bundled CMS sample and prints the score summary; a wrong ONNX graph is
  one line naming the mismatch; ``hepml-coffea taggers`` lists the taggers with their domains.
* A BYO spec that reads extra candidate branches (``d0``, ``dz``: coffea's ParticleNet recipe,
  ``docs/byo_coffea_recipe.yaml``) scores the same jets to the same numbers on the iterative,
  futures and Dask executors and through ``hepml-coffea run`` (the Dask worker warm-up builds its
  synthetic jet from the tagger's own fields).
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


class MaskedSum(nn.Module):
    """Per-particle MLP over the 5 recipe features (incl. log|d0|, log|dz|), masked sum, head.

    Shapes:
        points (N, 2, P), features (N, 5, P), mask (N, 1, P) -> (N, 2) logits
    """

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())
        self.head = nn.Linear(8, 2)

    def forward(self, points: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.phi(features.float().transpose(1, 2)) * mask.float().transpose(1, 2)
        return self.head(h.sum(1) / 10.0) + 0.0 * points.float().sum((1, 2))[:, None]


def _cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hepml_coffea.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def byo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(11)
    model = MaskedSum().eval()
    tmp = tmp_path_factory.mktemp("byo_cli")
    ts = tmp / "recipe.pt"
    torch.jit.script(model).save(str(ts))
    onnx_path = tmp / "recipe.onnx"
    p = 100
    dummy = (torch.zeros(2, 2, p), torch.ones(2, 5, p), torch.ones(2, 1, p))
    torch.onnx.export(model, dummy, str(onnx_path), input_names=["points", "features", "mask"],
                      output_names=["logits"], dynamic_axes={k: {0: "n"} for k in ("points", "features", "mask")},
                      dynamo=False)
    bad = tmp / "bad_names.onnx"
    torch.onnx.export(model, dummy, str(bad), input_names=["pts", "feats", "m"], output_names=["logits"], dynamo=False)
    return {"dir": tmp, "ts": ts, "onnx": onnx_path, "bad": bad}


def test_import_torchscript_and_onnx_from_the_cli(byo_files):
    tmp = byo_files["dir"]
    r = _cli("import", "torchscript", str(byo_files["ts"]), "--spec", str(SPEC_YAML), "--name", "recipe-ts",
             "--pt-min", "300", "--pt-max", "2000", "--abs-eta-max", "2.4", "--sample", "my ttbar", cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    # sealed, described, and run once on the bundled CMS sample (10 events, 24 fat jets, all with constituents)
    assert "recipe-ts: artifact" in r.stdout
    line = next(x for x in r.stdout.splitlines() if "bundled CMS sample" in x)
    assert "24 of 24 fat jets scored" in line and "median" in line
    r2 = _cli("import", "onnx", str(byo_files["onnx"]), "--spec", str(SPEC_YAML), "--name", "recipe-onnx", cwd=tmp)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "24 of 24 fat jets scored" in r2.stdout
    # the same network through TorchScript and through ONNX Runtime: the same scores
    from hepml_coffea import score_fatjets
    from hepml_coffea.data.io import load_events

    events = load_events(PFNANO)
    s = score_fatjets(events, [str(tmp / "recipe-ts"), str(tmp / "recipe-onnx")], device="cpu")
    a = ak.to_numpy(ak.flatten(s["recipe-ts"])).astype(np.float64)
    b = ak.to_numpy(ak.flatten(s["recipe-onnx"])).astype(np.float64)
    assert len(a) == 24 and np.ptp(a) > 1e-4
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # the domain given on the command line is recorded and flags the jets outside it
    from hepml_coffea.artifacts import load_artifact

    dom = load_artifact(tmp / "recipe-ts").domain
    assert (dom.pt_min, dom.pt_max, dom.abs_eta_max, dom.sample) == (300.0, 2000.0, 2.4, "my ttbar")
    pt = ak.to_numpy(ak.flatten(events.FatJet.pt))
    eta = ak.to_numpy(ak.flatten(events.FatJet.eta))
    want = (pt >= 300) & (pt <= 2000) & (np.abs(eta) <= 2.4)
    assert ak.to_list(ak.flatten(s.in_domain["recipe-ts"])) == want.tolist()
    assert 0 < want.sum() < 24  # the flag has teeth on this file
    assert ak.to_list(ak.flatten(s.in_domain["recipe-onnx"])) == [None] * 24  # no domain recorded


def test_import_errors_are_one_line(byo_files):
    tmp = byo_files["dir"]
    r = _cli("import", "onnx", str(byo_files["bad"]), "--spec", str(SPEC_YAML), "--name", "bad", cwd=tmp)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "graph inputs ['pts', 'feats', 'm']" in err[0] and "points" in err[0]
    assert not (tmp / "bad").exists()
    r = _cli("import", "torchscript", str(byo_files["ts"]), "--spec", str(tmp / "nope.yaml"), "--name", "x", cwd=tmp)
    assert r.returncode == 1 and "--spec" in r.stderr and "does not exist" in r.stderr
    r = _cli("import", "onnx", str(byo_files["ts"]), "--spec", str(SPEC_YAML), "--name", "x", cwd=tmp)
    assert r.returncode == 1 and "not a loadable ONNX model" in r.stderr


def test_taggers_lists_every_shipped_tagger(tmp_path):
    from hepml_coffea.artifacts import load_artifact, shipped_taggers

    r = _cli("taggers", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert set(rows) == set(shipped_taggers())
    for name, row in rows.items():
        art = load_artifact(name)
        assert row["hash"] == art.hash[:16]
        assert row["domain"] == art.domain.describe()  # every shipped tagger records its domain
    assert rows["particlenet-jetclass"]["domain"].startswith("500 < pT < 1000 GeV, |eta| < 2 (JetClass")
    assert rows["pfn"]["domain"].startswith("550 < pT < 650 GeV, |eta| < 2")
    assert rows["pfn"]["inputs"] == "sequence 7x100"
    table = _cli("taggers", cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:2] == ["name", "inputs"] and len(table) == len(rows) + 1


@pytest.mark.slow
def test_byo_spec_with_extra_branches_on_every_executor(byo_files, tmp_path):
    from hepml_coffea import RunConfig, Selection, TaggerProcessor, run_fileset

    tmp = byo_files["dir"]
    art = tmp / "recipe-exec"
    if not art.exists():
        from hepml_coffea.artifacts import import_torchscript
        from hepml_coffea.representations import InputSpec

        import_torchscript(byo_files["ts"], InputSpec.from_yaml(SPEC_YAML.read_text()), art, name="recipe-exec")
    fileset = {"cms": [str(PFNANO)]}
    results = {}
    for executor in ("iterative", "futures", "dask"):
        proc = TaggerProcessor(taggers=[str(art)], device="cpu",
                               selection=Selection(pt_min=0.0, pt_max=1e5, abs_eta_max=10.0))  # every fat jet
        out = run_fileset(fileset, proc, config=RunConfig(executor=executor, workers=1, chunksize=5, status=False,
                                                          dashboard_address=":0"))
        results[executor] = out["datasets"]["cms"]
    (tmp_path / "fs.json").write_text(json.dumps(fileset))
    r = _cli("run", "--fileset", str(tmp_path / "fs.json"), "--executor", "dask", "--workers", "1", "--chunksize",
             "5", "--taggers", str(art), "--dashboard-address", ":0", "--out", str(tmp_path / "cli.coffea"),
             "--pt-min", "0", "--pt-max", "100000", "--eta-max", "10", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    from coffea.util import load

    results["cli"] = load(tmp_path / "cli.coffea")["datasets"]["cms"]
    ref = results["iterative"]["scores"]
    assert ref.sum(flow=True) == pytest.approx(24)  # every fat jet of the file scored
    for name, acc in results.items():
        assert acc["cutflow"] == results["iterative"]["cutflow"], name
        np.testing.assert_array_equal(acc["scores"].values(flow=True), ref.values(flow=True), err_msg=name)


def test_jets_outside_the_training_domain_are_counted_and_noticed(tmp_path, caplog):
    import logging

    from hepml_coffea import RunConfig, Selection, TaggerProcessor, run_fileset

    proc = TaggerProcessor(taggers=["pfn", "baseline"], device="cpu",
                           selection=Selection(pt_min=0.0, pt_max=1e5, abs_eta_max=10.0))
    with caplog.at_level(logging.WARNING, logger="hepml_coffea"):
        out = run_fileset({"cms": [str(PFNANO)]}, proc, config=RunConfig(executor="iterative", status=False))
    counts = out["datasets"]["cms"]["tagger_counts"]
    # the CMS PFNano jets (median pT 1.4 TeV) are all outside the 550-650 GeV training window
    assert counts["pfn"]["scored"] == 24 and counts["pfn"]["out_of_domain"] == 24
    assert counts["baseline"]["out_of_domain"] == counts["baseline"]["scored"] > 0
    notes = [r.getMessage() for r in caplog.records if "training domain" in r.getMessage()]
    assert len(notes) == 1 and "pfn 24 of 24" in notes[0]
