"""Steps 5 and 6, ``evaluate`` and ``cpu_vs_gpu``: every artifact on the evaluation set
(:func:`hepml_coffea.evaluation.stats.tagger_report`), and fp32 scores of the same jets on CPU and GPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from gpu_steps.common import Campaign
from gpu_steps.model_stage import tagger_inputs
from gpu_steps.training import save_scores


def campaign_report(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUC +- DeLong error and 1/eB at eS = 30 %, 50 % with 68 % Clopper-Pearson intervals:
    :func:`hepml_coffea.evaluation.stats.tagger_report`, the estimator of ``hepml-coffea evaluate``.

    Shapes:
        labels, scores: (N,) -> dict
    """
    from hepml_coffea.evaluation.stats import tagger_report

    return {"method": "hepml_coffea.evaluation.stats.tagger_report", **tagger_report(labels, scores)}


def evaluate(camp: Campaign, ds: Any, taggers: dict[str, Path], device: str,
             scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every tagger on the evaluation set, scored through the engine (``Tagger.predict``)."""
    import awkward as ak

    from hepml_coffea.inference.engine import get_tagger

    rows: dict[str, Any] = {}
    cache: dict[str, dict[str, np.ndarray]] = {}
    scores["eval_labels"] = ds.labels.astype(np.int8)
    scores["eval_pt"] = np.asarray(ak.to_numpy(ds.jets.pt), dtype=np.float32)
    scores["eval_msd"] = np.asarray(ak.to_numpy(ds.jets.msoftdrop), dtype=np.float32)
    for name, path in taggers.items():
        try:
            tagger = get_tagger(path, device, None, backend="torch")
            t0 = time.perf_counter()
            sc = tagger.predict(tagger_inputs(tagger, ds.cands, ds.jets, cache),
                                batch_size=4096 if device != "cpu" else 256)
            rows[name] = {"artifact": str(path), "hash": tagger.artifact.hash, "score_seconds":
                          round(time.perf_counter() - t0, 2), **campaign_report(ds.labels, sc)}
            scores[f"eval_{name}"] = sc.astype(np.float32)
            camp.log(f"evaluate {name}: AUC {rows[name]['auc']:.4f}")
        except Exception as err:  # noqa: BLE001
            rows[name] = {"artifact": str(path), "error": f"{type(err).__name__}: {err}"[:500]}
        camp.record("evaluate", {"taggers": rows})
    save_scores(camp, scores)
    res: dict[str, Any] = {"taggers": rows, "n_top": int((ds.labels == 1).sum()), "n_qcd": int((ds.labels == 0).sum())}
    full, lite = rows.get("particlenet (new)", {}), rows.get("particlenet-lite (shipped)", {})
    if "auc" in full and "auc" in lite:
        res["full_particlenet_beats_shipped_lite"] = {
            "auc_diff": full["auc"] - lite["auc"],
            "auc_err_combined": math.hypot(full.get("auc_err") or 0.0, lite.get("auc_err") or 0.0),
            "note": "same jets: the errors are correlated, the combined error is conservative"}
    return res


# --------------------------------------------------------------------------- 6. CPU vs GPU
def cpu_vs_gpu(camp: Campaign, ds: Any, taggers: dict[str, Path], device: str) -> dict[str, Any]:
    """fp32 scores of the same jets on CPU and on ``device`` (TF32 off): max |diff|; and
    bf16 autocast vs fp32 on ``device`` for scale."""
    import torch

    from hepml_coffea.inference.engine import get_tagger

    n = min(camp.plan.compare_jets, len(ds))
    sub = ds.subset(np.arange(len(ds)) < n)
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows: dict[str, Any] = {}
    cache: dict[str, dict[str, np.ndarray]] = {}
    try:
        for name, path in taggers.items():
            try:
                cpu = get_tagger(path, "cpu", None, backend="torch")
                gpu = get_tagger(path, device, None, backend="torch")
                inp = tagger_inputs(cpu, sub.cands, sub.jets, cache)
                a = cpu.predict(inp, batch_size=256)
                b = gpu.predict(inp, batch_size=1024)
                ok = np.isfinite(a) & np.isfinite(b)
                row = {"jets": n, "max_abs_diff_fp32": float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else None,
                       "nan_mismatch": int((np.isfinite(a) != np.isfinite(b)).sum())}
                if device != "cpu" and cpu.input_kind != "observables":
                    c = get_tagger(path, device, "bf16", backend="torch").predict(inp, batch_size=1024)
                    row["max_abs_diff_bf16_vs_fp32"] = float(np.max(np.abs(c - b)))
                rows[name] = row
            except Exception as err:  # noqa: BLE001
                rows[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    diffs = [r["max_abs_diff_fp32"] for r in rows.values() if r.get("max_abs_diff_fp32") is not None]
    return {"device": device, "taggers": rows, "max_abs_diff_fp32": max(diffs) if diffs else None,
            "target": 1e-5, "met": bool(diffs) and max(diffs) <= 1e-5}
