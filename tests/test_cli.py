"""The command line (``hepml_coffea/cli/``): thin, one line per error, selection options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import coffea.util
import pytest

from hepml_coffea.cli import build_parser, main

SAMPLES = Path(__file__).parent / "samples"


def test_cli_run_and_plot(tiny_artifacts, ttbar_file, qcd_file, tmp_path):
    import json as _json

    from hepml_coffea.cli import main

    fs = tmp_path / "fileset.json"
    fs.write_text(_json.dumps({"ttbar": [str(ttbar_file)], "qcd": {"files": {str(qcd_file): "Events"}}}))
    out = tmp_path / "out.coffea"
    assert main(["run", "--fileset", str(fs), "--executor", "iterative", "--chunksize", "500", "--taggers",
                 *[str(p) for p in tiny_artifacts.values()], "--out", str(out)]) == 0
    assert out.is_file() and not list(tmp_path.glob(".*.tmp"))
    assert main(["plot", str(out), "--outdir", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert {"roc.png", "cutflow.png", "rejection_vs_pt.png", "score_pfn.png"} <= set(pngs)


def test_run_on_cms_pfnano_with_wide_selection_scores_every_jet(tiny_artifacts, tmp_path):
    fs = tmp_path / "cms.json"
    fs.write_text(json.dumps({"cms": [str(SAMPLES / "pfnano.root")]}))
    out = tmp_path / "cms.coffea"
    assert main(["run", "--fileset", str(fs), "--executor", "iterative", "--taggers", str(tiny_artifacts["pfn"]),
                 "--pt-min", "200", "--pt-max", "3000", "--eta-max", "2.5", "--out", str(out)]) == 0
    o = coffea.util.load(out)
    cf = o["datasets"]["cms"]["cutflow"]
    assert cf["fat_jets"] == 24 and cf["selected"] == 24 and cf["no_constituents"] == 0
    assert cf["scored"] == 24 == o["datasets"]["cms"]["scores"].sum()
    assert o["run"]["selection"] == "200 < pT < 3000 GeV, |eta| < 2.5"


def test_zero_jets_scored_says_why(tiny_artifacts, tmp_path, capsys):
    fs = tmp_path / "cms.json"
    fs.write_text(json.dumps({"cms": [str(SAMPLES / "pfnano.root")]}))
    assert main(["run", "--fileset", str(fs), "--executor", "iterative", "--taggers", str(tiny_artifacts["pfn"]),
                 "--out", str(tmp_path / "o.coffea")]) == 0
    err = capsys.readouterr().err
    assert "no fat jet was scored. 10 events had 24 fat jets; the selection (550 < pT < 650 GeV, |eta| < 2) " \
           "rejected 24 of them" in err


def test_errors_are_one_line_and_debug_gives_the_traceback(tmp_path, capsys):
    args = ["run", "--fileset", str(tmp_path / "missing.json"), "--executor", "iterative", "--out", "x.coffea"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("hepml-coffea: error: FilesetError: fileset JSON ") and "missing.json does not exist" in err[0]
    assert "Traceback" not in err[0]
    from hepml_coffea.batch.run import FilesetError

    with pytest.raises(FilesetError):
        main([*args, "--debug"])
    assert main(["run", "--fileset", str(tmp_path / "missing.json"), "--taggers", "nosuchtagger",
                 "--executor", "iterative", "--out", "x.coffea"]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("hepml-coffea: error: ArtifactError: tagger 'nosuchtagger' not found") and "\n" not in line


def test_schema_warnings_are_filtered_in_the_cli_only(tiny_artifacts, tmp_path):
    fs = tmp_path / "v15.json"
    fs.write_text(json.dumps({"v15": [str(SAMPLES / "nano_tt_v15.root")]}))
    cmd = [sys.executable, "-m", "hepml_coffea.cli", "run", "--fileset", str(fs), "--executor", "iterative",
           "--taggers", str(tiny_artifacts["pfn"]), "--out", str(tmp_path / "o.coffea")]
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONWARNINGS"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Missing cross-reference" not in res.stderr
    # the same file read directly does warn (so the check above can fail)
    probe = ("import warnings; warnings.simplefilter('default');"
             "from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema;"
             f"NanoEventsFactory.from_root({{{str(SAMPLES / 'nano_tt_v15.root')!r}: 'Events'}},"
             " schemaclass=PFNanoAODSchema, mode='virtual').events()")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert "Missing cross-reference" in res.stderr


def test_executor_choices_come_from_the_config():
    from hepml_coffea.config import EXECUTORS

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    executor = next(a for a in run._actions if a.dest == "executor")  # noqa: SLF001
    assert tuple(executor.choices) == EXECUTORS
