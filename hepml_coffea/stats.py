"""Binomial intervals and working points shared by the analysis and evaluation layers.

A leaf module (numpy, with ``hist``/scipy imported on first call; nothing from the package):

* :func:`clopper_pearson`: central Clopper-Pearson interval (``hist.intervals``, 68.27 % by default);
* :func:`working_point`: the score cut at a signal efficiency;
* :func:`rejection_at_efficiency`: the background rejection there, with its interval.

The rest of the evaluation statistics (DeLong AUC, mass sculpting, bootstrap) is in
:mod:`hepml_coffea.evaluation.stats`, which re-exports these.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ONE_SIGMA", "clopper_pearson", "rejection_at_efficiency", "working_point"]

#: 68.27 % (one Gaussian sigma) coverage
ONE_SIGMA = 0.6826894921370859


def clopper_pearson(k: np.ndarray | int, n: np.ndarray | int, cl: float = ONE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Central Clopper-Pearson interval of a binomial efficiency k/n
    (``hist.intervals.clopper_pearson_interval``).

    Parameters
    ----------
    k : number of passing trials
    n : number of trials (> 0)
    cl : coverage (default 68.27 %)

    Returns
    -------
    (lower, upper) bounds on the efficiency; lower = 0 when k = 0, upper = 1 when k = n.

    Shapes:
        k, n: () or (M,) -> lower, upper: same shape, float64
    """
    from hist.intervals import clopper_pearson_interval

    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(n_arr <= 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        msg = f"Clopper-Pearson needs 0 <= k <= n and n > 0 (got k={k}, n={n})"
        raise ValueError(msg)
    k_arr, n_arr = np.broadcast_arrays(k_arr, n_arr)
    lo, hi = clopper_pearson_interval(k_arr, n_arr, coverage=cl)
    return lo, hi


def working_point(sig_scores: np.ndarray, eff: float) -> float:
    """The working point at signal efficiency ``eff``: the largest score cut ``t`` that keeps at
    least ``eff`` of the signal at ``score >= t`` (the one place a threshold is placed;
    :func:`hepml_coffea.training.metrics.threshold_at` moves it into the gap below).

    Shapes:
        sig_scores: (S,) -> float
    """
    s = np.sort(np.asarray(sig_scores, dtype=np.float64))[::-1]
    if len(s) == 0:
        msg = "no signal jets to set a working point"
        raise ValueError(msg)
    if not 0.0 < eff <= 1.0:
        msg = f"signal efficiency must be in (0, 1], got {eff}"
        raise ValueError(msg)
    k = int(np.ceil(eff * len(s) - 1e-9))
    return float(s[max(k, 1) - 1])


def rejection_at_efficiency(labels: np.ndarray, scores: np.ndarray, eff: float,
                            cl: float = ONE_SIGMA) -> dict[str, float | int]:
    """Background rejection at signal efficiency ``eff`` with its Clopper-Pearson interval.

    The working point is the largest score threshold ``t`` that keeps at least ``eff`` of
    the signal (``score >= t``); ``n_pass`` background jets out of ``n_background`` pass.

    Returns
    -------
    dict with ``threshold``, ``signal_efficiency`` (actual), ``n_pass``, ``n_background``,
    ``rejection`` (inf when n_pass = 0), ``rejection_low``, ``rejection_high`` (inf when
    n_pass = 0: only a lower limit), and ``rejection_sig_low`` / ``rejection_sig_high``: the
    rejection at eS +- sqrt(eS (1 - eS) / n_signal), the part of the uncertainty that comes
    from placing the threshold with a finite signal sample (not in the Clopper-Pearson interval).

    Shapes:
        labels, scores: (N,) -> scalars
    """
    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    t = working_point(s[lab], eff)
    k = int(np.sum(s[~lab] >= t))
    n = int((~lab).sum())
    if n == 0:
        msg = "no background jets: rejection undefined"
        raise ValueError(msg)
    lo, hi = clopper_pearson(k, n, cl)
    n_sig = int(lab.sum())
    d_eff = float(np.sqrt(eff * (1 - eff) / n_sig))
    sig_side = []
    for e in (min(eff + d_eff, 1.0), max(eff - d_eff, 1.0 / n_sig)):
        k_e = int(np.sum(s[~lab] >= working_point(s[lab], e)))
        sig_side.append(n / k_e if k_e else float("inf"))
    return {
        "rejection_sig_low": sig_side[0],
        "rejection_sig_high": sig_side[1],
        "threshold": t,
        "signal_efficiency": float(np.mean(s[lab] >= t)),
        "n_pass": k,
        "n_background": n,
        "rejection": n / k if k else float("inf"),
        "rejection_low": float(1.0 / hi),
        "rejection_high": float(1.0 / lo) if lo > 0 else float("inf"),
    }
