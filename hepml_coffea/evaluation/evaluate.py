"""The standard evaluation: every figure of every tagger on one evaluation set.

``hepml-coffea evaluate --data data/evalset --out docs/eval`` calls :func:`run_evaluation`:
every jet of the evaluation files in the selection window (550 < pT < 650 GeV, |eta| < 2)
is scored (:mod:`~hepml_coffea.evaluation.dataset`), then :func:`evaluate` computes

* AUC with its DeLong standard error, class-balanced accuracy at score 0.5,
* background rejection 1/eB at eS = 30 % and 50 % with the 68 % Clopper-Pearson interval
  from the number of QCD jets passing the threshold, and its bootstrap cross-check,
* rejection vs pT at the fixed eS = 50 % threshold,
* mass sculpting: the Jensen-Shannon divergence of the QCD soft-drop mass of passing vs
  failing jets per working point, with the value of a random selection of the same size,
* the figures under both truth definitions (fully contained top vs top-only matched),

(:mod:`~hepml_coffea.evaluation.stats`) and writes results.json, report.md
(:mod:`~hepml_coffea.evaluation.report`) and the plots (:mod:`~hepml_coffea.evaluation.plots`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.evaluation.curve import learning_curve, resolve_curve_args
from hepml_coffea.evaluation.dataset import EvalSample, artifact_hash, load_eval_sample
from hepml_coffea.evaluation.report import format_report
from hepml_coffea.evaluation.report import update_markdown as write_markdown_block
from hepml_coffea.evaluation.stats import bootstrap_check, mass_sculpting, rejection_vs_pt, tagger_report

__all__ = ["evaluate", "run_evaluation", "write_results"]

_log = logging.getLogger(__name__)


def evaluate(sample: EvalSample, out: str | os.PathLike[str] | None = None, *,
             pt_edges: Sequence[float] = (550, 570, 590, 610, 630, 650),
             baseline: str = "baseline", meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All figures of the standard evaluation; writes results.json, report.md and plots to ``out``.

    Returns
    -------
    dict with ``taggers`` (per-tagger report incl. ``sculpting`` and ``vs_pt``), ``truth``
    (counts, fractions and per-tagger figures under the top-only definition), ``counts``,
    ``files`` and ``meta``.
    """
    use, labels = sample.labels("contained")
    res: dict[str, Any] = {"taggers": {}, "counts": dict(sample.counts), "files": sample.files,
                           "scoring_path": sample.scoring_path, "meta": dict(meta or {})}
    pt, msd = sample.pt[use], sample.msd[use]
    use_loose, labels_loose = sample.labels("top-only")
    for name, sc_all in sample.scores.items():
        sc = sc_all[use].astype(np.float64)
        rep = tagger_report(labels, sc)
        s_cut = np.where(np.isfinite(sc), sc, -np.inf)
        bkg = labels == 0
        rep["sculpting"] = {wp: mass_sculpting(msd[bkg], s_cut[bkg] >= rep[wp]["threshold"])
                            for wp in ("eS30", "eS50")}
        rep["bootstrap"] = bootstrap_check(labels, sc)
        rep["vs_pt"] = rejection_vs_pt(labels, s_cut, pt, rep["eS50"]["threshold"], np.asarray(pt_edges, float))
        loose = tagger_report(labels_loose, sc_all[use_loose].astype(np.float64))
        rep["top_only_definition"] = {k: loose[k] for k in ("auc", "auc_err", "accuracy", "accuracy_err",
                                                          "eS30", "eS50", "n_signal")}
        res["taggers"][name] = rep
    c = sample.counts
    n_tt = c["ttbar_contained"] + c["ttbar_top_only"] + c["ttbar_unmatched"]
    res["truth"] = {"n_ttbar_jets": n_tt,
                    **{f"fraction_{k}": (c[f"ttbar_{k}"] / n_tt if n_tt else float("nan"))
                       for k in ("contained", "top_only", "unmatched")}}
    if baseline in res["taggers"]:
        b = res["taggers"][baseline]
        for rep in res["taggers"].values():
            rep["x_baseline"] = {wp: _ratio(rep[wp], b[wp]) for wp in ("eS30", "eS50")}
    write_results(sample, res, out)
    return res


def write_results(sample: EvalSample, res: Mapping[str, Any], out: str | os.PathLike[str] | None) -> None:
    """results.json, report.md and the plots of an :func:`evaluate` result in ``out`` (nothing if None)."""
    if out is None:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(_jsonable(res), indent=1) + "\n")
    (out / "report.md").write_text(format_report(res))
    from hepml_coffea.evaluation.plots import plot_evaluation, plot_rejection_curve

    plot_evaluation(sample, res, out)
    if res.get("learning_curve"):
        plot_rejection_curve(res["learning_curve"], out / "learning_curve.png")


def _ratio(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, float]:
    """Ratio of two rejections with the 68 % interval (relative errors from CP added in quadrature)."""
    def rel(r: Mapping[str, Any]) -> float:
        if not np.isfinite(r["rejection"]):
            return float("nan")
        hi = r["rejection_high"] if np.isfinite(r["rejection_high"]) else r["rejection"] * 2
        return 0.5 * (hi - r["rejection_low"]) / r["rejection"]

    ratio = a["rejection"] / b["rejection"]
    err = ratio * float(np.hypot(rel(a), rel(b)))
    return {"ratio": float(ratio), "err": err}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if np.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def run_evaluation(data: str | os.PathLike[str], out: str | os.PathLike[str], *, taggers: Sequence[str] | None = None,
                   cache: str | os.PathLike[str] | None = None, device: str = "cpu", threads: int = 0,
                   update_markdown: str | os.PathLike[str] | None = None, log: Any = _log.info,
                   curve: Sequence[str] | None = None) -> dict[str, Any]:
    """``hepml-coffea evaluate``: every tagger on ``data/ttbar_*.root`` + ``data/qcd_*.root``.

    Parameters
    ----------
    data : folder of the evaluation set (``workflows/make_eval_set.py``)
    out : folder for results.json, report.md and the plots
    taggers : shipped names or artifact folders (default: every shipped tagger)
    cache : folder caching per-file jets and per-artifact scores
    device : scoring device
    threads : torch CPU threads (0: leave torch's default)
    update_markdown : a markdown file whose block between :data:`MARK_BEGIN` and
        :data:`MARK_END` is replaced by the report (e.g. ``TAGGERS.md``)
    log : progress callable (default: INFO on logger ``hepml_coffea.evaluation.evaluate``;
        ``None`` for silence)
    curve : extra learning-curve points (artifact folders or folders of them,
        :func:`~hepml_coffea.evaluation.curve.resolve_curve_args`); with them, ``res["learning_curve"]``
        holds every point (these and the listed taggers trained from scratch), the report a table and
        ``out/learning_curve.png`` the plot
    """
    from hepml_coffea.artifacts import shipped_taggers

    folder = Path(data)
    sig = sorted(str(p) for p in folder.glob("ttbar_*.root"))
    bkg = sorted(str(p) for p in folder.glob("qcd_*.root"))
    if not sig or not bkg:
        msg = (f"{folder}: need ttbar_*.root and qcd_*.root files (found {len(sig)} and {len(bkg)}); "
               f"make them with `python workflows/make_eval_set.py --out {folder}`")
        raise FileNotFoundError(msg)
    names = list(taggers) if taggers else sorted(shipped_taggers())
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    extra = resolve_curve_args(curve) if curve else []
    t0 = time.perf_counter()
    sample = load_eval_sample(sig, bkg, [*names, *extra], cache=cache, device=device, log=log)
    meta = {"command": f"hepml-coffea evaluate --data {data} --out {out}" + (f" --taggers {' '.join(names)}" if taggers else "")
            + (f" --curve {' '.join(curve)}" if curve else ""),
            "artifact_hashes": {n: artifact_hash(n) for n in names}, "seconds_scoring": round(time.perf_counter() - t0, 1)}
    curve_scores = {n: sample.scores.pop(n) for n in extra if n not in names}
    res = evaluate(sample, None, meta=meta)
    if curve:
        use, labels = sample.labels("contained")
        scores = {n: (sample.scores[n] if n in sample.scores else curve_scores[n])[use] for n in [*names, *extra]}
        res["learning_curve"] = learning_curve(labels, scores, list(dict.fromkeys([*names, *extra])))
        if "baseline" in res["taggers"]:
            res["learning_curve"]["baseline"] = {w: res["taggers"]["baseline"][w] for w in ("eS30", "eS50")}
    write_results(sample, res, out)
    from hepml_coffea.evaluation.plots import plot_learning_curves

    plot_learning_curves(names, Path(out) / "learning_curves.png")
    if update_markdown is not None:
        write_markdown_block(update_markdown, res)
    return res
