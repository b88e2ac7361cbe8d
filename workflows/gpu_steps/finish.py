"""``--finish`` (on the CPU machine afterwards): unpack the artifacts, draw the plots
(:mod:`hepml_coffea.analysis.plots`) and write ``campaign.md`` from a campaign's files.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np


def finish(results_dir: Path, out: Path) -> list[Path]:
    """From a campaign's files: unpack the artifacts (adding roc.png / loss.png, which are
    not hashed), draw the evaluation ROC overlay and the model-stage throughput, and write
    ``campaign.md`` (the tables for BENCHMARKS.md / TAGGERS.md). Returns the files written."""
    from hepml_coffea.curveplots import plot_loss, plot_roc
    from hepml_coffea.training.metrics import roc_curve

    res = json.loads((results_dir / "results.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    scores = dict(np.load(results_dir / "scores.npz")) if (results_dir / "scores.npz").exists() else {}
    tar_path = results_dir / "artifacts.tar.gz"
    if tar_path.exists():
        with tarfile.open(tar_path) as tar:
            tar.extractall(out, filter="data")
        for art in sorted((out / "artifacts").iterdir()):
            name = art.name
            metrics = json.loads((art / "metrics.json").read_text())
            if not (art / "loss.png").exists() and metrics.get("history"):
                written.append(plot_loss(metrics["history"], art / "loss.png"))
            if not (art / "roc.png").exists() and f"test_{name}" in scores:
                es, eb, _ = roc_curve(scores["test_labels"], scores[f"test_{name}"])
                written.append(plot_roc({name: (es, eb)}, art / "roc.png"))
    if "eval_labels" in scores:
        curves = {}
        for k in sorted(scores):
            if k.startswith("eval_") and k not in ("eval_labels", "eval_pt", "eval_msd"):
                s = scores[k]
                ok = np.isfinite(s)
                es, eb, _ = roc_curve(scores["eval_labels"][ok], s[ok])
                curves[k[5:]] = (es, eb)
        if curves:
            written.append(plot_roc(curves, out / "campaign_roc.png", title="evaluation set (campaign)"))
    ms = res.get("steps", {}).get("model_stage", {})
    if ms.get("rows"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 6))
        for (tagger, mode) in sorted({(r["tagger"], r["mode"]) for r in ms["rows"] if "jets_per_s" in r}):
            pts = sorted((r["batch"], r["jets_per_s"]) for r in ms["rows"]
                         if r.get("tagger") == tagger and r.get("mode") == mode and "jets_per_s" in r)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{tagger} {mode}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (jets)")
        ax.set_ylabel("model stage jets/s")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "campaign_model_stage.png", dpi=110)
        plt.close(fig)
        written.append(out / "campaign_model_stage.png")
    (out / "campaign.md").write_text(summary_markdown(res))
    written.append(out / "campaign.md")
    return written


def _f(x: Any, nd: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{nd}f}"


def _rej(r: Any) -> str:
    """'1/eB [low, high] (k QCD jets)' from either report layout."""
    if not isinstance(r, dict):
        return "-"
    val = r.get("rejection", r.get("value"))
    lo = r.get("rejection_low", r.get("low"))
    hi = r.get("rejection_high", r.get("high"))
    k = r.get("n_background_passing", r.get("n_pass"))
    s = _f(val)
    if lo is not None and hi is not None:
        s += f" [{_f(lo)}, {_f(hi)}]"
    if k is not None:
        s += f" ({k})"
    return s


def summary_markdown(res: dict[str, Any]) -> str:
    """The campaign's tables in markdown."""
    st = res.get("steps", {})
    c = res.get("campaign", {})
    env = st.get("environment", {})
    L = [(f"Campaign `{c.get('command')}` started {c.get('started_utc')}, {c.get('elapsed_s')} s; "
          f"GPU {env.get('gpu', 'none')}, torch {env.get('torch')}, {env.get('cpus')} CPUs."), ""]
    L += ["| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for k, v in st.items():
        L.append(f"| {k} | {v.get('status')} | {v.get('seconds')} | {str(v.get('error') or v.get('reason') or '')[:120]} |")
    gt, ge = st.get("generate_train", {}), st.get("generate_eval", {}).get("sets", {}).get("eval", {})
    if gt:
        L += ["", (f"Generated: training set {gt.get('top_jets')} top / {gt.get('qcd_jets')} QCD jets "
                   f"({gt.get('tasks')} tasks), evaluation set {ge.get('top_jets')} top / {ge.get('qcd_jets')} "
                   "QCD jets.")]
    ev = st.get("evaluate", {}).get("taggers", {})
    if ev:
        L += ["", "| tagger | AUC | 1/eB at eS=30% [68% CL] (QCD passing) | 1/eB at eS=50% | top / QCD jets |",
              "| --- | --- | --- | --- | --- |"]
        for name, r in ev.items():
            if "auc" not in r:
                L.append(f"| {name} | {r.get('error', '-')[:80]} | | | |")
                continue
            L.append(f"| {name} | {r['auc']:.4f} ± {r.get('auc_err') or 0:.4f} | {_rej(r.get('eS30'))} | "
                     f"{_rej(r.get('eS50'))} | {r.get('n_signal')} / {r.get('n_background')} |")
    ms = st.get("model_stage", {})
    if ms.get("rows"):
        L += ["", f"Model stage ({ms.get('device')}, {ms.get('jets_source')}), jets/s:", "",
              "| tagger | mode | batch | jets/s | first call s |", "| --- | --- | --- | --- | --- |"]
        for r in ms["rows"]:
            L.append(f"| {r.get('tagger')} | {r.get('mode')} | {r.get('batch', '-')} | "
                     f"{_f(r.get('jets_per_s')) if 'jets_per_s' in r else (r.get('error') or r.get('skipped', ''))[:60]}"
                     f" | {r.get('first_call_s', '-')} |")
    cg = st.get("cpu_vs_gpu", {})
    if cg.get("taggers"):
        L += ["", f"CPU vs {cg.get('device')} fp32, max |score diff|: "
              + ", ".join(f"{k} {_f(v.get('max_abs_diff_fp32'), 8) if v.get('max_abs_diff_fp32') is not None else v.get('error', '-')}"
                          for k, v in cg["taggers"].items())]
    pr = st.get("processor", {})
    for r in pr.get("runs", []):
        if "wall_s" in r:
            shares = r["fine_performance_metrics"]["share"]
            L += ["", f"Processor {pr.get('cluster')} ({r['run']}): {pr.get('events')} events in {r['wall_s']} s = "
                      f"{_f(r['events_per_s'])} events/s; tagging {100 * r['tagging_share_of_wall']:.1f} % of wall; "
                      "fine performance metrics: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in
                                                             sorted(shares.items(), key=lambda kv: -kv[1]))]
    return "\n".join(L) + "\n"
