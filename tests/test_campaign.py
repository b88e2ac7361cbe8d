"""The GPU campaign (workflows/gpu_campaign.py, issue 12): its --smoke run end to end on
CPU in the device's package set, the environment check, and its pieces on hand-made input."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "workflows" / "gpu_campaign.py"

#: what the device run leaves out of its carried wheels (BENCHMARKS.md, "GPU campaign"):
#: the smoke run must work without them, in the main process and every child process
NOT_CARRIED = ("mplhep", "mplhep_data", "bokeh", "xyzservices", "ipywidgets", "widgetsnbextension",
               "jupyterlab_widgets", "comm", "traitlets")

_BLOCKER = """
import importlib.abc, sys
_BLOCKED = set({names!r})
class _NotCarried(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not carried to the device)", name=name)
        return None
sys.meta_path.insert(0, _NotCarried())
"""


def _load_campaign():
    spec = importlib.util.spec_from_file_location("gpu_campaign", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_campaign"] = mod
    spec.loader.exec_module(mod)
    return mod


camp = _load_campaign()


def _env_without(tmp: Path, names: tuple[str, ...]) -> dict[str, str]:
    """An environment whose Python processes (children too) cannot import ``names``."""
    site = tmp / "site_block"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(names=tuple(names)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_end_to_end_without_the_wheels_left_behind(tmp_path: Path) -> None:
    """The device path on CPU, tiny sizes, in the package set the device gets; then
    --finish on the CPU machine adds the artifact PNGs, plots and tables."""
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--smoke", "--work", str(tmp_path / "work")],
                       env=_env_without(tmp_path, NOT_CARRIED), capture_output=True, text=True, check=False, timeout=900,
                       cwd=tmp_path)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())
    steps = res["steps"]
    expected = ["environment", "model_stage", "generate_train", "train", "train_particlenet", "train_pfn",
                "train_particlenet-lite", "train_lstm", "train_cnn", "generate_eval", "evaluate", "cpu_vs_gpu",
                "processor"]
    assert [k for k in steps] == expected
    assert {k: v["status"] for k, v in steps.items()} == dict.fromkeys(expected, "ok")
    assert steps["environment"]["optional"]["mplhep"] is False  # blocked as on the device
    assert steps["train"]["plots_in_artifacts"] is False
    # every output file is one the device tool brings back (<= 8 files, none in folders)
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["artifacts.tar.gz", "campaign.log", "env.txt", "results.json", "scores.npz"]
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    # generation: both sets from fresh seeds, both classes
    gen = steps["generate_eval"]["sets"]
    assert gen["train"]["top_jets"] > 0 and gen["train"]["qcd_jets"] > 0
    assert gen["eval"]["top_jets"] > 0 and gen["eval"]["qcd_jets"] > 0
    for set_name in ("train", "eval"):
        for proc in ("ttbar", "qcd"):
            first = camp.SEEDS[(set_name, proc)]
            seeds = sorted(int(Path(f).stem.split("_")[1]) for f in gen[set_name]["files"][proc])
            assert seeds == list(range(first, first + len(seeds)))
    # model stage: every benchmarked tagger measured
    ms = steps["model_stage"]
    assert {r_["tagger"] for r_ in ms["rows"] if r_.get("jets_per_s", 0) > 0} == {
        "particlenet", "pfn", "cnn", "lstm", "particlenet-lite"}
    # evaluation: new and shipped taggers with uncertainties on the same jets
    ev = steps["evaluate"]["taggers"]
    assert {"particlenet (new)", "pfn (new)", "particlenet-lite (new)", "lstm (new)", "cnn (new)",
            "particlenet-lite (shipped)", "baseline (shipped)"} <= set(ev)
    for row in ev.values():
        assert 0.0 <= row["auc"] <= 1.0 and row["auc_err"] > 0
        assert "eS30" in row and "eS50" in row
    # CPU vs "GPU" (the CPU again in the smoke run): identical scores
    assert steps["cpu_vs_gpu"]["max_abs_diff_fp32"] == 0.0
    # processor on a one-worker cluster, with Dask's fine performance metrics per stage
    run = steps["processor"]["runs"][0]
    assert steps["processor"]["cluster"] == "LocalCluster" and run["scored_jets"] > 0
    fpm = run["fine_performance_metrics"]["share"]
    assert {"read_constituents", "build_representation", "infer", "fill"} <= set(fpm)
    assert math.isclose(sum(fpm.values()), 1.0, rel_tol=1e-9)
    # the artifacts: complete and loadable, without PNGs (no mplhep on the device)
    with tarfile.open(out / "artifacts.tar.gz") as tar:
        names = {Path(m.name).parts[1] for m in tar.getmembers() if len(Path(m.name).parts) > 1}
        assert not [m.name for m in tar.getmembers() if m.name.endswith(".png")]
    assert names == {"particlenet", "pfn", "particlenet-lite", "lstm", "cnn"}
    print(f"smoke run: {wall:.0f} s")

    # --finish on the CPU machine: PNGs into the artifacts (hash unchanged), plots, tables
    fin = tmp_path / "finished"
    r2 = subprocess.run([sys.executable, str(SCRIPT), "--finish", str(out), "--out", str(fin)],
                        capture_output=True, text=True, check=False, timeout=300, cwd=ROOT)
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-3000:]
    from hepml_coffea.artifacts import load_artifact

    for name in names:
        art = load_artifact(fin / "artifacts" / name)  # verifies every hashed file
        assert art.hash == ev[f"{name} (new)"]["hash"]
        assert (fin / "artifacts" / name / "roc.png").stat().st_size > 1000
        assert (fin / "artifacts" / name / "loss.png").stat().st_size > 1000
    assert (fin / "campaign_roc.png").stat().st_size > 1000
    assert (fin / "campaign_model_stage.png").stat().st_size > 1000
    md = (fin / "campaign.md").read_text()
    assert "| particlenet (new) |" in md and "Processor LocalCluster (cold)" in md


def test_environment_problem_stops_at_once_with_the_reason(tmp_path: Path) -> None:
    """A missing package: exit 2 within seconds, results.json says what and how to fix it."""
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--smoke", "--work", str(tmp_path / "w")],
                       env=_env_without(tmp_path, ("pythia8mc",)), capture_output=True, text=True, check=False, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert time.perf_counter() - t0 < 120
    res = json.loads((out / "results.json").read_text())
    env = res["steps"]["environment"]
    assert env["status"] == "failed"
    assert "import pythia8mc failed" in env["error"] and "pip install" in env["error"]
    assert list(res["steps"]) == ["environment"]
    assert "environment unusable" in r.stdout


def test_gpu_required_outside_smoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(camp.EnvironmentProblem, match="torch sees no CUDA device"):
        camp.check_environment(smoke=False, work=tmp_path)


# --------------------------------------------------------------------------- pieces
def test_plan_sizes_and_task_split() -> None:
    p = camp.Plan.make(540, smoke=False, workers=16)
    assert (p.workers, p.train_jets, p.eval_qcd_jets, p.batch_sizes) == (16, 50_000, 50_000, (1024, 4096, 16384))
    assert [m[0] for m in p.modes] == ["fp32", "bf16", "compile"]
    # 50k/50k jets: ttbar events / QCD events = (50k / 0.34) / (50k / 0.50) -> 59.5 % ttbar
    assert p.task_events("train", 50_000, 50_000) == (1429, 971)
    # only QCD missing: ttbar kept at the 10 % floor; evaluation tasks twice as large
    assert p.task_events("eval", 0, 1000) == (480, 4320)
    assert p.task_events("eval", 0, 0) == (2400, 2400)
    assert p.task_events("train", 0, 0) == (1200, 1200)
    s = camp.Plan.make(600, smoke=True)
    assert s.smoke and s.modes == camp.MODES[:1] and s.length == 30
    # the deadlines are in time order
    assert p.train_start_frac < p.eval_gen_end_frac < p.train_end_frac < p.evaluate_end_frac < p.processor_end_frac < 1


def test_seeds_are_fresh() -> None:
    used = set(range(101, 116)) | set(range(201, 216)) | {301, 401}
    used |= {b + k for b in (3001, 4001, 5001, 6001) for k in range(1000)}
    for base in camp.SEEDS.values():
        assert not used & set(range(base, base + 1000))
    bases = sorted(camp.SEEDS.values())
    assert all(b - a >= 1000 for a, b in itertools.pairwise(bases))  # sets never share a seed


def test_report_is_the_evaluation_estimator() -> None:
    """Hand-made scores: 10 top jets 0.9025..0.9925, 100 QCD jets 0.00..0.99 (steps of 0.01).
    The campaign reports what ``hepml-coffea evaluate`` does (one estimator, one working point)."""
    from scipy.stats import beta

    from hepml_coffea.evaluation.stats import tagger_report

    labels = np.r_[np.ones(10), np.zeros(100)]
    scores = np.r_[0.9025 + 0.01 * np.arange(10), np.arange(100) / 100]
    r = camp.campaign_report(labels, scores)
    assert r["method"] == "hepml_coffea.evaluation.stats.tagger_report"
    assert {k: v for k, v in r.items() if k != "method"} == tagger_report(labels, scores)
    # top jet k beats the 91 + k QCD jets below it: AUC = mean(91 + k) / 100
    assert r["auc"] == pytest.approx(0.955, abs=1e-12)
    assert 0 < r["auc_err"] < 0.05
    # eS = 50 %: the cut keeps the 5 best tops (>= 0.9525); QCD passing 0.96..0.99 -> 4 of 100
    e50, e30 = r["eS50"], r["eS30"]
    assert e50["threshold"] == pytest.approx(0.9525)
    assert e50["n_pass"] == 4 and e50["rejection"] == pytest.approx(25.0)
    assert e50["rejection_low"] == pytest.approx(1 / beta.ppf(0.84135, 5, 96), rel=1e-4)
    assert e50["rejection_high"] == pytest.approx(1 / beta.ppf(0.15865, 4, 97), rel=1e-4)
    # eS = 30 %: the 3 best tops (>= 0.9725); QCD passing 0.98, 0.99
    assert e30["threshold"] == pytest.approx(0.9725)
    assert e30["n_pass"] == 2 and e30["rejection"] == pytest.approx(50.0)


def test_stage_shares_from_metric_snapshots() -> None:
    before = [(["execute", "proc", "infer", "seconds"], 1.0), (["execute", "proc", "fill", "seconds"], 1.0),
              (["gather-dep", "x", "seconds"], 5.0)]
    after = [(["execute", "proc", "infer", "seconds"], 7.0), (["execute", "proc", "fill", "seconds"], 3.0),
             (["execute", "proc", "infer", "bytes"], 9e9), (["gather-dep", "x", "seconds"], 50.0)]
    r = camp.stage_shares(before, after)
    assert r["seconds"] == {"infer": 6.0, "fill": 2.0}
    assert r["share"] == {"infer": 0.75, "fill": 0.25}
    assert r["total_s"] == 8.0


def test_step_records_failure_and_goes_on(tmp_path: Path) -> None:
    plan = camp.Plan.make(60, smoke=True)
    c = camp.Campaign(tmp_path / "o", tmp_path / "w", plan, ["--smoke"])
    with c.step("broken") as rec:
        rec["partial"] = 1
        raise ValueError("boom")
    with c.step("fine") as rec:
        rec["value"] = np.float64(2.5)
    c.close()
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["steps"]["broken"]["status"] == "failed"
    assert res["steps"]["broken"]["error"] == "ValueError: boom" and res["steps"]["broken"]["partial"] == 1
    assert "raise ValueError" in res["steps"]["broken"]["traceback"]
    assert res["steps"]["fine"] == {"status": "ok", "started_s": res["steps"]["fine"]["started_s"], "value": 2.5,
                                    "seconds": res["steps"]["fine"]["seconds"]}
    assert "!! broken failed: ValueError: boom" in (tmp_path / "o" / "campaign.log").read_text()


def test_one_cycle_lr_shape() -> None:
    from hepml_coffea.training.train import _one_cycle_lr

    assert _one_cycle_lr(0.0, 1.0) == pytest.approx(1 / 25)
    assert _one_cycle_lr(0.2, 1.0) == pytest.approx(1.0)
    assert _one_cycle_lr(0.1, 1.0) == pytest.approx(1 / 25 + (1 - 1 / 25) / 2)
    assert _one_cycle_lr(1.0, 1.0) == pytest.approx(1 / 25e4)
    assert _one_cycle_lr(5.0, 1.0) == pytest.approx(1 / 25e4)  # past the end: stays at the floor
    assert _one_cycle_lr(0.6, 2.0) == pytest.approx(2 / 25e4 + (2 - 2 / 25e4) / 2)
