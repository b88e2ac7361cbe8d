"""The workflows in workflows/ that users copy from: they run and their numbers add up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import awkward as ak
import uproot

ROOT = Path(__file__).parent.parent
SAMPLES = Path(__file__).parent / "samples"


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "workflows" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _events_with_two_fatjets(path):
    fj = uproot.open(path)["Events"].arrays(["FatJet_pt", "FatJet_eta"])
    good = (fj.FatJet_pt > 400) & (abs(fj.FatJet_eta) < 2.4)
    return int(ak.sum(ak.sum(good, axis=1) >= 2))


def test_example_ttbar_analysis_on_generated_and_cms_files(tiny_artifacts, ttbar_file, tmp_path):
    ana = _module("example_analysis")
    files = [ttbar_file, SAMPLES / "pfnano.root", SAMPLES / "nano_tt_v15.root"]
    out = ana.main([*map(str, files), "--tagger", str(tiny_artifacts["pfn"]), "--out", str(tmp_path),
                    "--chunksize", "1000"])
    for f in files:
        acc = out[Path(f).stem]
        n_two = _events_with_two_fatjets(f)
        assert acc["cutflow"]["two_fatjets"] == n_two
        # every selected event is in exactly one tag category (0, 1 or 2 tags)
        assert acc["histograms"]["mtt"].project("ntags").values(flow=True).sum() == n_two
        assert acc["histograms"]["msd"].sum(flow=True).value == n_two
        assert 0 <= acc["cutflow"]["tagged_jets"] <= 2 * n_two
    assert out["ttbar_11"]["cutflow"]["two_fatjets"] > 10
    assert out["pfnano"]["cutflow"]["two_fatjets"] == 10
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert "mtt_ttbar_11.png" in pngs and "msd_nano_tt_v15.png" in pngs
    assert (tmp_path / "analysis.coffea").is_file()


def test_compare_candidates_paired_table(tiny_artifacts, ttbar_file, qcd_file, tmp_path, monkeypatch, capsys):
    import shutil
    import sys

    import pytest

    from hepml_coffea.artifacts import update_artifact

    data = tmp_path / "evalset"
    data.mkdir()
    (data / "ttbar_1.root").symlink_to(ttbar_file)
    (data / "qcd_1.root").symlink_to(qcd_file)
    twin = tmp_path / "pfn-twin"  # the same weights under another name: every ratio is exactly 1
    shutil.copytree(tiny_artifacts["pfn"], twin)
    update_artifact(twin, meta={"name": "pfn-twin"})
    mod = _module("compare_candidates")
    monkeypatch.setattr(sys, "argv", ["compare_candidates.py", "--data", str(data), "--cache", "", "--n-boot", "5",
                                      f"{tiny_artifacts['pfn']}={twin}"])
    mod.main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "pfn-twin" in line)
    assert row.count("1.000 [1.000, 1.000]") == 2
    monkeypatch.setattr(sys, "argv", ["compare_candidates.py", "--data", str(data), "pfn"])
    with pytest.raises(SystemExit) as err:
        mod.main()
    assert err.value.code == 2
    assert "REFERENCE=CANDIDATE" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["compare_candidates.py", "--data", str(tmp_path / "nowhere"), "a=b"])
    with pytest.raises(SystemExit) as err:
        mod.main()
    assert err.value.code == 2
    assert "need ttbar_*.root and qcd_*.root" in capsys.readouterr().err


def test_choose_backends_records_the_measured_choice(tiny_artifacts, ttbar_file, qcd_file, tmp_path, capsys):
    import shutil

    import pytest

    from hepml_coffea.artifacts import load_artifact

    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_artifacts["pfn"], root / "pfn")
    shutil.copytree(tiny_artifacts["baseline"], root / "baseline")
    wf = _module("choose_backends")
    assert wf.main(["--files", str(ttbar_file), str(qcd_file), "--artifacts", str(root), "--jets", "60",
                    "--repeats", "1", "--backends", "onnxruntime", "torch"]) == 0
    art = load_artifact(root / "pfn")
    rec = art.meta["cpu_backend"]
    cands, jets = wf.selected_jets([str(ttbar_file), str(qcd_file)], 60)
    assert 0 < len(jets) <= 60 and rec["n_jets"] == len(jets) and rec["inputs"] == "given"
    assert set(rec["results"]) == {"onnxruntime", "torch"} and rec["chosen"] == art.cpu_backend
    assert art.file_digest("model.onnx") is not None
    printed = capsys.readouterr().out
    assert f"pfn: chose {rec['chosen']}" in printed and "baseline" not in printed  # the cut-based one has no choice
    with pytest.raises(SystemExit, match=r"no artifact named \['cnn'\]"):
        wf.main(["--files", str(ttbar_file), "--artifacts", str(root), "--taggers", "cnn"])
    # the CMS test files have no fat jet in the default 550-650 GeV window: said, nothing recorded
    before = load_artifact(root / "pfn").hash
    with pytest.raises(SystemExit, match="no selected fat jet with constituents in"):
        wf.main(["--files", str(SAMPLES / "pfnano.root"), "--artifacts", str(root)])
    assert load_artifact(root / "pfn").hash == before
