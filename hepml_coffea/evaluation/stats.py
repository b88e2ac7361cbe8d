"""Statistics of a tagger evaluation: intervals, AUC errors, working points, bootstrap.

* intervals: :func:`clopper_pearson` (``hist.intervals``, central, 68.27 % by default);
* AUC with its DeLong standard error (DeLong, DeLong & Clarke-Pearson 1988; the fast
  mid-rank form of Sun & Xu 2014), class-balanced accuracy with its binomial error;
* working points: :func:`working_point` places every score cut at a signal efficiency;
  :func:`rejection_at_efficiency` / :func:`rejection_vs_pt` count the background passing it;
* mass sculpting (Jensen-Shannon divergence of passing vs failing QCD mass) and bootstrap
  cross-checks (:func:`bootstrap_check`, :func:`paired_rejection_ratio`).

Pure numpy/scipy functions of ``labels`` and ``scores`` arrays: nothing is read or plotted here.
:func:`clopper_pearson`, :func:`working_point`, :func:`rejection_at_efficiency` and
:data:`ONE_SIGMA` live in :mod:`hepml_coffea.stats` (a leaf the analysis layer shares) and
are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepml_coffea.stats import ONE_SIGMA, clopper_pearson, rejection_at_efficiency, working_point

__all__ = [
    "EFFICIENCIES",
    "ONE_SIGMA",
    "balanced_accuracy",
    "bootstrap_check",
    "clopper_pearson",
    "delong_auc",
    "jensen_shannon",
    "mass_sculpting",
    "paired_rejection_ratio",
    "rejection_at_efficiency",
    "rejection_vs_pt",
    "tagger_report",
    "working_point",
]

#: the signal efficiencies of the standard working points
EFFICIENCIES = (0.3, 0.5)


def delong_auc(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC (ties count one half) and its DeLong standard error.

    Parameters
    ----------
    labels : 1 for signal, 0 for background
    scores : larger = more signal-like (finite)

    Returns
    -------
    (auc, sigma)

    Shapes:
        labels, scores: (N,) -> two floats
    """
    from scipy.stats import rankdata

    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if lab.shape != s.shape:
        msg = f"labels {lab.shape} and scores {s.shape} differ in shape"
        raise ValueError(msg)
    if not np.all(np.isfinite(s)):
        msg = "scores contain NaN or inf; drop or count those jets before computing the AUC"
        raise ValueError(msg)
    x, y = s[lab], s[~lab]
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        msg = f"DeLong needs >= 2 signal and >= 2 background jets (have {m} and {n})"
        raise ValueError(msg)
    tz = rankdata(np.concatenate([x, y]))
    tx, ty = rankdata(x), rankdata(y)
    v10 = (tz[:m] - tx) / n  # per signal jet: fraction of background below (ties 1/2)
    v01 = 1.0 - (tz[m:] - ty) / m  # per background jet: fraction of signal above
    auc = float(v10.mean())
    var = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return auc, float(np.sqrt(max(var, 0.0)))


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, cut: float = 0.5) -> tuple[float, float]:
    """Mean of the signal and background efficiencies of ``score > cut`` and its binomial error.

    Equal to the accuracy on a sample with as many signal as background jets (as in the
    published tables), independent of our eval set's class ratio.

    Shapes:
        labels, scores: (N,) -> two floats
    """
    lab = np.asarray(labels).astype(bool)
    passed = np.asarray(scores, dtype=np.float64) > cut
    ns, nb = int(lab.sum()), int((~lab).sum())
    if ns == 0 or nb == 0:
        msg = f"balanced accuracy needs both classes (have {ns} signal, {nb} background)"
        raise ValueError(msg)
    tpr = float(passed[lab].mean())
    tnr = float((~passed[~lab]).mean())
    err = 0.5 * np.sqrt(tpr * (1 - tpr) / ns + tnr * (1 - tnr) / nb)
    return 0.5 * (tpr + tnr), float(err)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms (normalised here).

    Shapes:
        p, q: (B,) non-negative counts or densities -> float
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0 or np.any(p < 0) or np.any(q < 0):
        msg = f"JSD needs two non-negative, non-empty histograms of equal shape (got {p.shape}, {q.shape})"
        raise ValueError(msg)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def mass_sculpting(msd: np.ndarray, passed: np.ndarray, bins: np.ndarray | None = None, *,
                   n_boot: int = 200, seed: int = 1) -> dict[str, Any]:
    """JSD between the soft-drop mass of passing and failing background jets.

    Parameters
    ----------
    msd : soft-drop mass of background jets [GeV] (values beyond the last edge go to the
        last bin, non-finite values are dropped)
    passed : whether each jet passes the working point
    bins : histogram edges (default 0-300 GeV in 10 GeV bins)
    n_boot : Poisson bootstrap replicas of both histograms for the error
    seed : bootstrap seed

    Returns
    -------
    dict with ``jsd``, ``jsd_err`` (bootstrap std), ``jsd_random`` (mean JSD of a random
    selection of the same size: the statistical floor), ``n_pass``, ``n_fail``, ``bins``,
    ``hist_pass``, ``hist_fail``.

    Shapes:
        msd, passed: (N,) -> scalars and (B,) histograms
    """
    edges = np.linspace(0.0, 300.0, 31) if bins is None else np.asarray(bins, dtype=np.float64)
    m = np.asarray(msd, dtype=np.float64)
    p = np.asarray(passed, dtype=bool)
    ok = np.isfinite(m)
    m, p = np.clip(m[ok], edges[0], np.nextafter(edges[-1], -np.inf)), p[ok]
    hp = np.histogram(m[p], edges)[0].astype(np.float64)
    hf = np.histogram(m[~p], edges)[0].astype(np.float64)
    n_pass, n_fail = int(p.sum()), int((~p).sum())
    out: dict[str, Any] = {"n_pass": n_pass, "n_fail": n_fail, "bins": edges.tolist(),
                           "hist_pass": hp.tolist(), "hist_fail": hf.tolist()}
    if n_pass == 0 or n_fail == 0:
        out.update(jsd=float("nan"), jsd_err=float("nan"), jsd_random=float("nan"))
        return out
    rng = np.random.default_rng(seed)
    boots = [jensen_shannon(a, b) for a, b in zip(rng.poisson(hp, (n_boot, len(hp))), rng.poisson(hf, (n_boot, len(hf))))
             if a.sum() > 0 and b.sum() > 0]
    rand = []
    for _ in range(20):
        pick = np.zeros(len(m), dtype=bool)
        pick[rng.choice(len(m), n_pass, replace=False)] = True
        rand.append(jensen_shannon(np.histogram(m[pick], edges)[0], np.histogram(m[~pick], edges)[0]))
    out.update(jsd=jensen_shannon(hp, hf), jsd_err=float(np.std(boots, ddof=1)) if len(boots) > 1 else float("nan"),
               jsd_random=float(np.mean(rand)))
    return out


def rejection_vs_pt(labels: np.ndarray, scores: np.ndarray, pt: np.ndarray, threshold: float,
                    edges: np.ndarray, cl: float = ONE_SIGMA) -> dict[str, list[float]]:
    """Background rejection and signal efficiency per pT bin at a fixed score threshold.

    Returns
    -------
    dict of per-bin lists: ``edges``, ``n_background``, ``n_pass``, ``rejection``,
    ``rejection_low``, ``rejection_high`` (Clopper-Pearson; inf upper edge when no jet
    passes), ``signal_efficiency``.

    Shapes:
        labels, scores, pt: (N,); edges: (B+1,) -> lists of length B
    """
    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    ptv = np.asarray(pt, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.digitize(ptv, edges) - 1
    res: dict[str, list[float]] = {k: [] for k in ("n_background", "n_pass", "rejection", "rejection_low",
                                                   "rejection_high", "signal_efficiency")}
    res["edges"] = edges.tolist()
    for b in range(len(edges) - 1):
        inb = idx == b
        bkg = inb & ~lab
        n, k = int(bkg.sum()), int(np.sum(s[bkg] >= threshold))
        sig = inb & lab
        res["n_background"].append(n)
        res["n_pass"].append(k)
        res["signal_efficiency"].append(float(np.mean(s[sig] >= threshold)) if sig.any() else float("nan"))
        if n == 0:
            for key in ("rejection", "rejection_low", "rejection_high"):
                res[key].append(float("nan"))
            continue
        lo, hi = clopper_pearson(k, n, cl)
        res["rejection"].append(n / k if k else float("inf"))
        res["rejection_low"].append(float(1.0 / hi))
        res["rejection_high"].append(float(1.0 / lo) if lo > 0 else float("inf"))
    return res


def tagger_report(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUC +- DeLong, balanced accuracy +- binomial, 1/eB at eS = 30 %, 50 % with intervals.

    Jets with a non-finite score (e.g. the baseline without soft-drop mass) count as
    failing every working point and are reported as ``n_unscored``; the AUC uses the
    scored jets.

    Shapes:
        labels, scores: (N,) -> dict
    """
    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    s_cut = np.where(finite, s, -np.inf)
    auc, auc_err = delong_auc(lab[finite], s[finite])
    acc, acc_err = balanced_accuracy(lab, s_cut)
    return {
        "auc": auc, "auc_err": auc_err,
        "accuracy": acc, "accuracy_err": acc_err,
        "n_signal": int(lab.sum()), "n_background": int((~lab).sum()), "n_unscored": int((~finite).sum()),
        **{f"eS{round(e * 100)}": rejection_at_efficiency(lab, s_cut, e) for e in EFFICIENCIES},
    }


def bootstrap_check(labels: np.ndarray, scores: np.ndarray, n_boot: int = 200, seed: int = 1) -> dict[str, Any]:
    """Bootstrap (jets resampled with replacement) spread of the AUC and of 1/eB at eS = 30 %
    and 50 %, thresholds re-placed in every replica: a cross-check of the DeLong error and
    of the Clopper-Pearson intervals (which hold the threshold fixed).

    Returns
    -------
    dict with ``auc_std`` and, per working point, the 16th and 84th percentiles of 1/eB.

    Shapes:
        labels, scores: (N,) -> scalars
    """
    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    s = np.where(finite, s, -np.inf)
    rng = np.random.default_rng(seed)
    aucs, rej = [], {e: [] for e in EFFICIENCIES}
    for _ in range(n_boot):
        i = rng.integers(0, len(lab), len(lab))
        ok = finite[i]
        aucs.append(delong_auc(lab[i][ok], s[i][ok])[0])
        for e in EFFICIENCIES:
            rej[e].append(rejection_at_efficiency(lab[i], s[i], e)["rejection"])
    out: dict[str, Any] = {"n_boot": n_boot, "auc_std": float(np.std(aucs, ddof=1))}
    for e, v in rej.items():
        srt = np.sort(np.asarray(v, dtype=np.float64))  # may hold inf (no background passing)
        out[f"eS{round(e * 100)}"] = [float(srt[int(0.16 * (len(srt) - 1))]),
                                      float(srt[int(np.ceil(0.84 * (len(srt) - 1)))])]
    return out


def paired_rejection_ratio(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray, *,
                           n_boot: int = 200, seed: int = 1) -> dict[str, Any]:
    """1/eB of ``candidate`` over 1/eB of ``reference`` on the *same* jets, with a paired
    bootstrap (one resampling of the jets per replica, for both taggers; signal and
    background resampled separately, thresholds re-placed in every replica).

    The comparison that decides whether a retrained tagger replaces a shipped one: the two
    share the jets, so their independent intervals overlap even when one is better in
    every replica.

    Returns
    -------
    dict: per working point ``eS30`` / ``eS50``, ``[16th, 50th, 84th]`` percentiles of the
    ratio, and ``n_boot``.

    Shapes:
        labels, reference, candidate: (N,) -> scalars
    """
    lab = np.asarray(labels).astype(bool)
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if not (lab.shape == a.shape == b.shape):
        msg = f"labels {lab.shape}, reference {a.shape} and candidate {b.shape} scores differ in shape"
        raise ValueError(msg)
    a = np.where(np.isfinite(a), a, -np.inf)
    b = np.where(np.isfinite(b), b, -np.inf)
    sig, bkg = np.flatnonzero(lab), np.flatnonzero(~lab)
    rng = np.random.default_rng(seed)
    ratios: dict[float, list[float]] = {e: [] for e in EFFICIENCIES}
    for _ in range(n_boot):
        i = np.concatenate([rng.choice(sig, len(sig)), rng.choice(bkg, len(bkg))])
        for e in EFFICIENCIES:
            ra = rejection_at_efficiency(lab[i], a[i], e)["rejection"]
            rb = rejection_at_efficiency(lab[i], b[i], e)["rejection"]
            ratios[e].append(rb / ra)
    out: dict[str, Any] = {"n_boot": n_boot}
    for e, v in ratios.items():
        out[f"eS{round(e * 100)}"] = [float(x) for x in np.percentile(np.asarray(v), [16, 50, 84])]
    return out
