"""Physics metrics of a binary tagger: ROC, AUC, background rejection at fixed signal efficiency."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["roc_curve", "auc", "rejection_at", "threshold_at", "tagger_metrics"]


def roc_curve(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (signal efficiency, background efficiency, thresholds), thresholds descending.

    Ties in score are merged (one ROC point per distinct score).
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        msg = "scores contain NaN or inf; refusing to compute a ROC curve"
        raise ValueError(msg)
    order = np.argsort(-scores, kind="stable")
    s, lab, w = scores[order], labels[order], w[order]
    tps = np.cumsum(w * lab)
    fps = np.cumsum(w * ~lab)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, dtype=int)
    tps, fps, thr = tps[last], fps[last], s[last]
    n_s = tps[-1] if len(tps) else 0.0
    n_b = fps[-1] if len(fps) else 0.0
    if n_s <= 0 or n_b <= 0:
        msg = "need both signal and background jets for a ROC curve"
        raise ValueError(msg)
    return np.r_[0.0, tps / n_s], np.r_[0.0, fps / n_b], np.r_[np.inf, thr]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoidal over distinct scores)."""
    es, eb, _ = roc_curve(labels, scores)
    return float(np.trapezoid(es, eb))


def rejection_at(es: np.ndarray, eb: np.ndarray, target: float) -> float:
    """1/eB at signal efficiency ``target`` (linear interpolation in the ROC curve)."""
    e = float(np.interp(target, es, eb))
    return float("inf") if e <= 0 else 1.0 / e


def threshold_at(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """Score cut whose selection ``score >= cut`` keeps a fraction ``target`` of signal.

    The working point of :func:`hepml_coffea.stats.rejection_at_efficiency`: the jets
    that pass are those at or above the largest score keeping at least ``target`` of the
    signal. The cut is placed midway in the gap below that score (to the next lower score of
    any jet), so the same jets pass here, and a jet sitting exactly on the cut cannot flip
    when another batch size rounds its score differently in the last bit.
    """
    from hepml_coffea.stats import working_point

    s = np.asarray(scores, dtype=np.float64)
    sig = s[np.asarray(labels).astype(bool)]
    if len(sig) == 0:
        msg = "no signal jets"
        raise ValueError(msg)
    t = working_point(sig, target)
    below = s[s < t]
    return float(0.5 * (t + below.max())) if len(below) else t


def tagger_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUC with its DeLong error, balanced accuracy (threshold 0.5), 1/eB at eS = 30% / 50%
    with the 68 % Clopper-Pearson interval of the passing background count
    (``rejection_30_interval``, ``rejection_30_n_pass``), working-point thresholds.

    Every quantity uses the estimator of :func:`hepml_coffea.evaluation.stats.tagger_report`, so
    a model's metrics.json and ``hepml-coffea evaluate`` agree on the same jets: the AUC is
    the Mann-Whitney / DeLong one, the accuracy the balanced one, 1/eB the counted
    rejection at the largest threshold keeping at least eS of the signal (not an
    interpolated ROC). The errors are None with fewer than 2 jets of a class."""
    from hepml_coffea.evaluation.stats import balanced_accuracy, delong_auc, rejection_at_efficiency

    labels = np.asarray(labels).astype(bool)
    es, eb, _ = roc_curve(labels, scores)  # refuses NaN scores and a missing class
    rej = {eff: rejection_at_efficiency(labels, scores, eff) for eff in (0.3, 0.5)}
    out: dict[str, Any] = {
        "auc": float(np.trapezoid(es, eb)),  # = the Mann-Whitney / DeLong AUC (ties count 1/2)
        "auc_err": None,
        "accuracy": balanced_accuracy(labels, scores)[0],
        "rejection_30": float(rej[0.3]["rejection"]),
        "rejection_50": float(rej[0.5]["rejection"]),
        "working_points": {f"eS{int(t * 100)}": threshold_at(labels, scores, t) for t in (0.3, 0.5, 0.7)},
        "n_signal": int(labels.sum()),
        "n_background": int((~labels).sum()),
    }
    if out["n_signal"] >= 2 and out["n_background"] >= 2:
        out["auc_err"] = delong_auc(labels, scores)[1]
        for eff, r in rej.items():
            out[f"rejection_{int(eff * 100)}_interval"] = [r["rejection_low"], r["rejection_high"]]
            out[f"rejection_{int(eff * 100)}_n_pass"] = r["n_pass"]
    return out
