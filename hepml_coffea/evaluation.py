"""Standard tagger evaluation with statistical uncertainties.

``hepml-coffea evaluate --data data/evalset --out docs/eval`` calls :func:`evaluate`:
every jet of the evaluation files in the selection window (550 < pT < 650 GeV, |eta| < 2)
is scored through the per-jet scoring API analyses use
(:meth:`hepml_coffea.scoring.FatJetTagger.score_constituents`: the constituents,
representations and engine the processor uses), then

* AUC with its DeLong standard error (DeLong, DeLong & Clarke-Pearson 1988; the fast
  mid-rank form of Sun & Xu 2014),
* background rejection 1/eB at eS = 30 % and 50 % with the 68 % Clopper-Pearson interval
  from the number of QCD jets passing the threshold (the count is reported with it),
* class-balanced accuracy at score 0.5 with its binomial error,
* rejection vs pT at the fixed eS = 50 % threshold, with Clopper-Pearson error bars,
* mass sculpting: the QCD soft-drop mass of passing vs failing jets per working point and
  their Jensen-Shannon divergence (base 2), with a bootstrap error and the value expected
  from a random selection of the same size (the finite-statistics floor),
* the truth definition: signal = fully contained top (top and its three quarks within
  dR < 0.8 of the jet axis, :func:`hepml_coffea.truth.top_labels`) vs top-only matched
  (the top within 0.8); the fractions and how AUC / 1/eB move.

Scores are cached per (file, selection, artifact hash) under ``cache`` so re-evaluations
after a retraining only score what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MARK_BEGIN",
    "MARK_END",
    "PUBLISHED",
    "EvalSample",
    "balanced_accuracy",
    "bootstrap_check",
    "clopper_pearson",
    "delong_auc",
    "evaluate",
    "format_rejection",
    "format_report",
    "jensen_shannon",
    "load_eval_sample",
    "mass_sculpting",
    "paired_rejection_ratio",
    "plot_learning_curves",
    "rejection_at_efficiency",
    "rejection_vs_pt",
    "run_evaluation",
    "tagger_report",
    "top_only_matched",
]

MARK_BEGIN = "<!-- hepml-coffea evaluate: begin (generated, do not edit) -->"
MARK_END = "<!-- hepml-coffea evaluate: end -->"

#: 68.27 % (one Gaussian sigma) coverage
ONE_SIGMA = 0.6826894921370859
EFFICIENCIES = (0.3, 0.5)
SCORING_PATH = "hepml_coffea.scoring.FatJetTagger.score_constituents"
TRUTH_CONTAINED, TRUTH_TOP_ONLY, TRUTH_UNMATCHED, TRUTH_QCD = 2, 1, 0, -1

#: Published figures on the community reference sample (Pythia8 + Delphes, 14 TeV):
#: Kasieczka et al., SciPost Phys. 7, 014 (2019); Qu & Gouskos, PRD 101, 056019 (2020).
#: tagger -> (published model, AUC, accuracy, 1/eB at 50 %, 1/eB at 30 %, parameters)
PUBLISHED: dict[str, tuple[str, float | None, float | None, float | None, float | None, str]] = {
    "particlenet": ("ParticleNet", 0.9858, 0.940, 397, 1615, "366k"),
    "particlenet-jetclass": ("ParticleNet (trained on the reference sample; ours on JetClass)", 0.9858, 0.940, 397,
                             1615, "366k"),
    "particlenet-lite": ("ParticleNet-Lite", 0.9844, 0.937, 325, 1262, "26k"),
    "pfn": ("PFN (Deep Sets)", 0.9819, 0.932, 247, 888, "82k"),
    "cnn": ("ResNeXt-50 (jet images)", 0.9837, 0.936, 302, 1147, "1.46M"),
    "lstm": ("LSTM (Egan et al. 2017, another sample)", None, None, 100, None, "-"),
}


#: line colours of plots with one line per tagger (matplotlib's tab10: ten distinct colours;
#: the ROOT style's cycle repeats after six, and seven taggers are shipped)
TAGGER_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                  "#7f7f7f", "#bcbd22", "#17becf")


# --------------------------------------------------------------------------- statistics
def clopper_pearson(k: np.ndarray | int, n: np.ndarray | int, cl: float = ONE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Central Clopper-Pearson interval of a binomial efficiency k/n.

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
    from scipy.special import betaincinv

    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(n_arr <= 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        msg = f"Clopper-Pearson needs 0 <= k <= n and n > 0 (got k={k}, n={n})"
        raise ValueError(msg)
    alpha = 1.0 - cl
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k_arr > 0, betaincinv(np.maximum(k_arr, 1e-300), n_arr - k_arr + 1, alpha / 2), 0.0)
        hi = np.where(k_arr < n_arr, betaincinv(k_arr + 1, np.maximum(n_arr - k_arr, 1e-300), 1 - alpha / 2), 1.0)
    return lo, hi


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


def _threshold(sig_scores: np.ndarray, eff: float) -> float:
    """Smallest cut t with at least ``eff`` of the signal at score >= t."""
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
    t = _threshold(s[lab], eff)
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
        k_e = int(np.sum(s[~lab] >= _threshold(s[lab], e)))
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


# --------------------------------------------------------------------------- truth
def top_only_matched(events: Any, event_index: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray,
                     radius: float = 0.8) -> np.ndarray:
    """Whether a hadronically decaying top quark lies within ``radius`` of each jet axis.

    The looser of the two truth definitions (no requirement on the decay quarks); the
    strict one is :func:`hepml_coffea.truth.top_labels`.

    Shapes:
        event_index, jet_eta, jet_phi: (N,) -> (N,) bool
    """
    from hepml_coffea.truth import TOP, top_labels

    return top_labels(events, event_index, jet_eta, jet_phi, radius=radius, require_quarks=False) == TOP


# --------------------------------------------------------------------------- data
@dataclass
class EvalSample:
    """Per-jet columns of an evaluation set (jets in the selection window only).

    Attributes
    ----------
    pt, eta, msd : (N,) jet kinematics and soft-drop mass
    truth : (N,) int8: 2 fully contained top, 1 top-only matched, -1 QCD file
        (ttbar jets with no top within 0.8 are not kept; they are counted in ``counts``)
    scores : tagger -> (N,) float32 scores (NaN where not scored)
    files : file names read
    counts : per-process jet counts (e.g. ``ttbar_unmatched``)
    scoring_path : which API produced the scores
    cache_hits : (file, tagger) score arrays read from the cache instead of scored now
    """

    pt: np.ndarray
    eta: np.ndarray
    msd: np.ndarray
    truth: np.ndarray
    scores: dict[str, np.ndarray]
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    scoring_path: str = ""
    cache_hits: int = 0

    def labels(self, definition: str = "contained") -> tuple[np.ndarray, np.ndarray]:
        """(mask of jets used, labels) for signal = ``contained`` or ``top-only`` matched tops."""
        if definition == "contained":
            use = (self.truth == TRUTH_CONTAINED) | (self.truth == TRUTH_QCD)
        elif definition == "top-only":
            use = self.truth != TRUTH_UNMATCHED
        else:
            msg = f"truth definition {definition!r} unknown; choose 'contained' or 'top-only'"
            raise ValueError(msg)
        return use, (self.truth[use] >= TRUTH_TOP_ONLY).astype(np.int8)


def _code_digest() -> str:
    """Digest of the sources that turn a file into model inputs (constituents, truth,
    representations), so cached jets and scores are redone when that code changes."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted([root / "constituents.py", root / "truth.py", root / "selection.py",
                     *(root / "representations").glob("*.py")]):
        if f.exists():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _file_key(path: Path, extra: Any) -> str:
    st = path.stat()
    blob = json.dumps([path.name, st.st_size, st.st_mtime_ns, extra, _code_digest()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _artifact_hash(name: str) -> str:
    from hepml_coffea.artifacts import resolve_artifact

    return str(json.loads((resolve_artifact(name) / "manifest.json").read_text())["hash"])


def score_jets(jc: Any, taggers: Sequence[str], device: str = "cpu",
               batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Scores of ``taggers`` for the flat jets of ``jc`` through the analysis scoring path.

    Calls :meth:`hepml_coffea.scoring.FatJetTagger.score_constituents`, the code the
    processor and analyses use (same constituents, representations, engine).

    Returns
    -------
    tagger (as given) -> (N,) float32 scores, NaN where a jet could not be scored

    Shapes:
        jc of N jets -> each score (N,)
    """
    from hepml_coffea.scoring import FatJetTagger

    tagger = FatJetTagger(taggers=list(taggers), device=device, batch_size=batch_size)
    got = tagger.score_constituents(jc)
    return {given: np.asarray(got[cfg.name], dtype=np.float32) for given, cfg in zip(taggers, tagger.taggers)}


def load_eval_sample(signal: Sequence[str | os.PathLike[str]], background: Sequence[str | os.PathLike[str]],
                     taggers: Sequence[str], *, selection: Any = None, cache: str | os.PathLike[str] | None = None,
                     device: str = "cpu", batch_size: int | None = 512, log: Any = print) -> EvalSample:
    """Read, select, truth-match and score every jet of the evaluation files.

    Parameters
    ----------
    signal : ttbar files (jets kept when a top is within 0.8; labelled contained / top-only)
    background : QCD files (every jet in the window)
    taggers : shipped tagger names or artifact paths
    selection : :class:`hepml_coffea.selection.Selection` (default reference window)
    cache : folder for per-file jet columns and per-(file, artifact) scores
    device, batch_size : scoring options
    log : callable for progress lines (``None`` for silence)
    """
    import awkward as ak

    from hepml_coffea.constituents import fatjet_constituents
    from hepml_coffea.io import read_arrays
    from hepml_coffea.selection import Selection
    from hepml_coffea.truth import TOP, top_labels

    selection = selection or Selection()
    if not signal or not background:
        msg = f"need signal (ttbar) and background (QCD) files; got {len(signal)} and {len(background)}"
        raise ValueError(msg)
    cache_dir = Path(cache) if cache else None
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
    hashes = {t: _artifact_hash(t) for t in taggers}
    from hepml_coffea.scoring import FatJetTagger

    # the branches the taggers' specs read beyond the standard ones (a BYO spec's d0, ...)
    configured = FatJetTagger(taggers=list(taggers), device=device)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("pt", "eta", "msd", "truth")}
    scores: dict[str, list[np.ndarray]] = {t: [] for t in taggers}
    counts = {"ttbar_contained": 0, "ttbar_top_only": 0, "ttbar_unmatched": 0, "qcd": 0}
    hits = 0
    files = [(Path(f), True) for f in signal] + [(Path(f), False) for f in background]
    for path, is_sig in files:
        if not path.exists():
            msg = f"evaluation file {path} does not exist"
            raise FileNotFoundError(msg)
        t0 = time.perf_counter()
        base_key = _file_key(path, selection.to_dict())
        col_file = cache_dir / f"{path.stem}.{base_key}.jets.npz" if cache_dir else None
        todo = [t for t in taggers if not (cache_dir and (cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy").exists())]
        jc = None
        if col_file is not None and col_file.exists():
            with np.load(col_file) as z:
                c = {k: z[k] for k in ("pt", "eta", "msd", "truth", "n_unmatched")}
        else:
            c = None
        if c is None or todo:
            ev = read_arrays(path)
            jc = fatjet_constituents(ev, cand_fields=configured.cand_fields, jet_fields=configured.jet_fields)
            keep = selection.mask(jc) & jc.valid
            jc = jc.select(keep)
            eta = np.asarray(ak.to_numpy(jc.jets.eta), dtype=np.float64)
            phi = np.asarray(ak.to_numpy(jc.jets.phi), dtype=np.float64)
            if is_sig:
                contained = top_labels(ev, jc.event_index, eta, phi) == TOP
                matched = top_only_matched(ev, jc.event_index, eta, phi) | contained
                truth = np.where(contained, TRUTH_CONTAINED, np.where(matched, TRUTH_TOP_ONLY, TRUTH_UNMATCHED))
            else:
                truth = np.full(len(jc), TRUTH_QCD)
            n_unmatched = int((truth == TRUTH_UNMATCHED).sum())
            kept = truth != TRUTH_UNMATCHED
            jc = jc.select(kept)
            msd = (np.asarray(ak.to_numpy(jc.jets.msoftdrop), dtype=np.float64)
                   if "msoftdrop" in ak.fields(jc.jets) else np.full(len(jc), np.nan))
            c = {"pt": np.asarray(ak.to_numpy(jc.jets.pt), dtype=np.float64), "eta": eta[kept], "msd": msd,
                 "truth": truth[kept].astype(np.int8), "n_unmatched": np.asarray(n_unmatched)}
            if col_file is not None:
                np.savez(col_file, **c)
        got: dict[str, np.ndarray] = {}
        if todo:
            assert jc is not None
            got = score_jets(jc, todo, device=device, batch_size=batch_size)
            if cache_dir:
                for t in todo:
                    np.save(cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy", got[t])
        hits += len(taggers) - len(todo)
        for t in taggers:
            sc = got[t] if t in got else np.load(cache_dir / f"{path.stem}.{base_key}.{hashes[t][:16]}.npy")  # type: ignore[operator]
            if len(sc) != len(c["pt"]):
                msg = f"cached scores of {t} for {path} have {len(sc)} jets, expected {len(c['pt'])}; delete the cache"
                raise ValueError(msg)
            scores[t].append(sc)
        for k, col in cols.items():
            col.append(c[k])
        tr = c["truth"]
        if is_sig:
            counts["ttbar_contained"] += int((tr == TRUTH_CONTAINED).sum())
            counts["ttbar_top_only"] += int((tr == TRUTH_TOP_ONLY).sum())
            counts["ttbar_unmatched"] += int(c["n_unmatched"])
        else:
            counts["qcd"] += len(tr)
        if log:
            log(f"{path.name}: {len(tr)} jets kept, scored {todo or 'from cache'} in {time.perf_counter() - t0:.0f} s")
    return EvalSample(
        pt=np.concatenate(cols["pt"]), eta=np.concatenate(cols["eta"]), msd=np.concatenate(cols["msd"]),
        truth=np.concatenate(cols["truth"]), scores={t: np.concatenate(v) for t, v in scores.items()},
        files=[p.name for p, _ in files], counts=counts, scoring_path=SCORING_PATH, cache_hits=hits,
    )


# --------------------------------------------------------------------------- evaluation
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
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(_jsonable(res), indent=1) + "\n")
        (out / "report.md").write_text(format_report(res))
        plot_all(sample, res, out)
    return res


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
                   update_markdown: str | os.PathLike[str] | None = None, log: Any = print) -> dict[str, Any]:
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
    log : progress callable (``None`` for silence)
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
    t0 = time.perf_counter()
    sample = load_eval_sample(sig, bkg, names, cache=cache, device=device, log=log)
    meta = {"command": f"hepml-coffea evaluate --data {data} --out {out}" + (f" --taggers {' '.join(names)}" if taggers else ""),
            "artifact_hashes": {n: _artifact_hash(n) for n in names}, "seconds_scoring": round(time.perf_counter() - t0, 1)}
    res = evaluate(sample, out, meta=meta)
    plot_learning_curves(names, Path(out) / "learning_curves.png")
    if update_markdown is not None:
        md = Path(update_markdown)
        text = md.read_text()
        if MARK_BEGIN not in text or MARK_END not in text:
            msg = f"{md}: no block between {MARK_BEGIN!r} and {MARK_END!r} to replace; add the two marker lines"
            raise ValueError(msg)
        head, rest = text.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1]
        md.write_text(f"{head}{MARK_BEGIN}\n{format_report(res)}{MARK_END}{tail}")
    return res


# --------------------------------------------------------------------------- report
def format_rejection(r: Mapping[str, Any], target: float | None = None) -> str:
    """``1/eB [68 % CP] (passing QCD jets)`` of a :func:`rejection_at_efficiency` result
    (``> lower limit (0 of n)`` when none passes); the actual eS when score ties (or score
    bins) move it off ``target``."""
    off = (f"; eS {100 * r['signal_efficiency']:.1f} %" if target is not None
           and abs(r["signal_efficiency"] - target) > 1e-3 else "")
    if r["n_pass"] == 0:
        return f"> {r['rejection_low']:.0f} (0 of {r['n_background']:,}{off})"
    return (f"{r['rejection']:.0f} [{r['rejection_low']:.0f}, {r['rejection_high']:.0f}] "
            f"({r['n_pass']:,}{off})")


def format_report(res: Mapping[str, Any]) -> str:
    """Markdown tables of an :func:`evaluate` result (figures with 68 % intervals)."""
    c = res["counts"]
    any_rep = next(iter(res["taggers"].values()))
    lines = [
        (f"Evaluation set: {any_rep['n_signal']:,} fully contained top jets and {any_rep['n_background']:,} QCD jets "
         f"(550 < pT < 650 GeV, |eta| < 2) from {len(res['files'])} files; scored through "
         f"`{res['scoring_path']}`."),
        "",
        ("1/eB: value [68 % Clopper-Pearson interval] (QCD jets passing). AUC +- DeLong standard error. "
         "Accuracy: class-balanced, score > 0.5, +- binomial error. x baseline: ratio of 1/eB to the cut-based "
         "baseline's at the same eS, +- the two relative errors in quadrature."),
        "",
        ("| tagger | AUC | accuracy | 1/eB @ eS=50% | 1/eB @ eS=30% | x baseline (50%) | x baseline (30%) "
         "| JSD eS=50% (random) | JSD eS=30% (random) |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["taggers"].items():
        xb = r.get("x_baseline", {})
        xs = [f"{xb[w]['ratio']:.2f} +- {xb[w]['err']:.2f}" if w in xb else "-" for w in ("eS50", "eS30")]
        js = [f"{r['sculpting'][w]['jsd']:.4f} +- {r['sculpting'][w]['jsd_err']:.4f} ({r['sculpting'][w]['jsd_random']:.4f})"
              for w in ("eS50", "eS30")]
        lines.append(f"| {name} | {r['auc']:.4f} +- {r['auc_err']:.4f} | {r['accuracy']:.4f} +- {r['accuracy_err']:.4f} "
                     f"| {format_rejection(r['eS50'], 0.5)} | {format_rejection(r['eS30'], 0.3)} | {xs[0]} | {xs[1]} | {js[0]} | {js[1]} |")
    lines += [
        "",
        "Cross-check of the uncertainties: bootstrap over jets (200 replicas, thresholds re-placed in each):",
        "",
        ("| tagger | AUC: DeLong sd / bootstrap sd | 1/eB @ 50%: CP 68 % / bootstrap 16-84 % "
         "| 1/eB @ 30%: CP 68 % / bootstrap 16-84 % |"),
        "|---|---|---|---|",
    ]
    for name, r in res["taggers"].items():
        b = r["bootstrap"]
        lines.append(f"| {name} | {r['auc_err']:.5f} / {b['auc_std']:.5f} | " + " | ".join(
            f"[{r[w]['rejection_low']:.0f}, {r[w]['rejection_high']:.0f}] / [{b[w][0]:.0f}, {b[w][1]:.0f}]"
            for w in ("eS50", "eS30")) + " |")
    if any("x_baseline" in r for r in res["taggers"].values()):
        lines += [
            "",
            "Targets of issue 13 (ratio to the baseline's 1/eB at the same eS, in units of its uncertainty):",
            "",
            "| tagger | beats baseline @ eS=50% | beats baseline @ eS=30% | >= 2x baseline @ eS=30% |",
            "|---|---|---|---|",
        ]
        for name, r in res["taggers"].items():
            xb = r.get("x_baseline")
            if not xb or name == "baseline":
                continue
            cells = []
            for w in ("eS50", "eS30"):
                ratio, err = xb[w]["ratio"], xb[w]["err"]
                z = (ratio - 1.0) / err if err > 0 else float("inf")
                cells.append(f"{'yes' if z > 1 else 'no'} ({ratio:.2f} +- {err:.2f}, {z:+.1f} sd)")
            ratio, err = xb["eS30"]["ratio"], xb["eS30"]["err"]
            cells.append(f"{'yes' if ratio >= 2 else 'no'} ({ratio:.2f} +- {err:.2f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        ("Threshold placement with a finite signal sample (not in the intervals above): 1/eB at "
         "eS -+ sqrt(eS (1 - eS) / n_signal):"),
        "",
        "| tagger | 1/eB @ eS=50%: at eS+1sd .. eS-1sd | 1/eB @ eS=30%: at eS+1sd .. eS-1sd |",
        "|---|---|---|",
    ]
    for name, r in res["taggers"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{r[w]['rejection_sig_low']:.0f} .. {r[w]['rejection_sig_high']:.0f}" for w in ("eS50", "eS30")) + " |")
    lines += [
        "",
        ("JSD: Jensen-Shannon divergence (base 2) between the QCD soft-drop mass of jets passing and failing "
         "the working point (0-300 GeV, 10 GeV bins), +- bootstrap; in brackets the value for a random "
         "selection of the same size (the floor set by the statistics). Lower = less mass sculpting."),
        "",
        ("Published figures on the community reference sample (Pythia8 + Delphes, another sample: compare "
         "orderings and margins, not values):"),
        "",
        "| tagger | published model | AUC | accuracy | 1/eB @ eS=50% | 1/eB @ eS=30% | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in res["taggers"]:
        if name in PUBLISHED:
            p = PUBLISHED[name]
            vals = ["-" if v is None else str(v) for v in p[1:5]]
            lines.append(f"| {name} | {p[0]} | {' | '.join(vals)} | {p[5]} |")
    t = res["truth"]
    lines += [
        "",
        (f"Truth definition ({t['n_ttbar_jets']:,} jets of the ttbar files in the window): fully contained "
         f"(top and its three quarks within dR < 0.8) {c['ttbar_contained']:,} ({100 * t['fraction_contained']:.1f} %), "
         f"top within 0.8 but a quark outside {c['ttbar_top_only']:,} ({100 * t['fraction_top_only']:.1f} %), "
         f"no top within 0.8 {c['ttbar_unmatched']:,} ({100 * t['fraction_unmatched']:.1f} %). "
         "Figures with signal = fully contained (as above, the reference sample's definition) vs "
         "signal = any top within 0.8:"),
        "",
        ("| tagger | AUC contained | AUC top-only | 1/eB(50%) contained | 1/eB(50%) top-only "
         "| 1/eB(30%) contained | 1/eB(30%) top-only |"),
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["taggers"].items():
        lo = r["top_only_definition"]
        lines.append(f"| {name} | {r['auc']:.4f} +- {r['auc_err']:.4f} | {lo['auc']:.4f} +- {lo['auc_err']:.4f} "
                     f"| {format_rejection(r['eS50'])} | {format_rejection(lo['eS50'])} | {format_rejection(r['eS30'])} | {format_rejection(lo['eS30'])} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    return plt


def plot_all(sample: EvalSample, res: Mapping[str, Any], out: Path) -> list[Path]:
    """ROC with bands, rejection vs pT, score distributions, mass sculpting (PNG files in ``out``)."""
    plt = _plt()
    use, labels = sample.labels("contained")
    written = []
    names = list(res["taggers"])
    colours = dict(zip(names, TAGGER_COLORS * 3))

    # ROC: 1/eB vs eS with the 68 % Clopper-Pearson band from the passing-jet counts
    fig, ax = plt.subplots(figsize=(8, 7))
    for name in names:
        s = np.where(np.isfinite(sample.scores[name][use]), sample.scores[name][use], -np.inf)
        order = np.argsort(-s, kind="stable")
        lab = labels[order].astype(bool)
        ns, nb = int(lab.sum()), int((~lab).sum())
        tp, fp = np.cumsum(lab), np.cumsum(~lab)
        keep = (fp > 0) & (tp / ns > 0.05)
        es, k = tp[keep] / ns, fp[keep]
        lo, hi = clopper_pearson(k, np.full(len(k), nb))
        step = max(1, len(es) // 2000)
        ax.plot(es[::step], nb / k[::step], color=colours[name], label=name)
        ax.fill_between(es[::step], 1 / hi[::step], 1 / lo[::step], color=colours[name], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.legend(title="68 % CP bands, 550 < pT < 650 GeV", fontsize=13, title_fontsize=13)
    ax.grid(alpha=0.3)
    written.append(_save(plt, fig, out / "roc.png"))

    # rejection vs pT at eS = 50 %
    fig, ax = plt.subplots(figsize=(8, 7))
    for i, name in enumerate(names):
        v = res["taggers"][name]["vs_pt"]
        e = np.asarray(v["edges"])
        x = 0.5 * (e[1:] + e[:-1]) + (i - len(names) / 2) * 1.5
        r = np.asarray(v["rejection"], dtype=float)
        lo, hi = np.asarray(v["rejection_low"], float), np.asarray(v["rejection_high"], float)
        fin = np.isfinite(r)
        ax.errorbar(x[fin], r[fin], yerr=[r[fin] - lo[fin], np.where(np.isfinite(hi[fin]), hi[fin] - r[fin], 0)],
                    fmt="o", color=colours[name], label=name, capsize=3)
        if (~fin).any():
            ax.plot(x[~fin], lo[~fin], marker="^", ls="none", color=colours[name])
    ax.set_yscale("log")
    ax.set_xlabel("jet $p_T$ [GeV]")
    ax.set_ylabel(r"$1/\epsilon_B$ at the $\epsilon_S$ = 50 % working point")
    ax.legend(fontsize=13, title="68 % CP intervals; ^ = lower limit", title_fontsize=12)
    written.append(_save(plt, fig, out / "rejection_vs_pt.png"))

    # score distributions: truth-matched (contained) top vs QCD
    ncol = min(3, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(6 * ncol, 5 * nrow), squeeze=False)
    edges = np.linspace(0, 1, 41)
    for ax, name in zip(axes.flat, names):
        s = sample.scores[name][use]
        for cls, lab_name, col in ((1, "top (contained)", "tab:red"), (0, "QCD", "tab:blue")):
            v = s[(labels == cls) & np.isfinite(s)]
            h = np.histogram(np.clip(v, 0, 1), edges)[0].astype(float)
            norm = h.sum() * np.diff(edges)
            ax.errorbar(0.5 * (edges[1:] + edges[:-1]), h / norm, yerr=np.sqrt(h) / norm, fmt=".", color=col,
                        label=f"{lab_name} ({len(v):,})")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=16)
        ax.set_xlabel("score", fontsize=16)
        ax.set_ylabel("density", fontsize=16)
        ax.legend(fontsize=11)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    written.append(_save(plt, fig, out / "scores.png"))

    # mass sculpting: QCD msd passing vs failing, eS = 50 % and 30 %
    fig, axes = plt.subplots(nrow, ncol, figsize=(6 * ncol, 5 * nrow), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for wp, style in (("eS50", "-"), ("eS30", "--")):
            sc = res["taggers"][name]["sculpting"][wp]
            e = np.asarray(sc["bins"])
            for key, col, lab_name in (("hist_pass", "tab:red", "pass"), ("hist_fail", "tab:blue", "fail")):
                h = np.asarray(sc[key], float)
                if h.sum() == 0:
                    continue
                ax.stairs(h / h.sum() / np.diff(e), e, color=col, ls=style,
                          label=f"{lab_name} {wp} ({int(h.sum()):,})" + (f", JSD {sc['jsd']:.3f}" if key == "hist_pass" else ""))
        ax.set_title(name, fontsize=16)
        ax.set_xlabel(r"QCD $m_{SD}$ [GeV]", fontsize=16)
        ax.set_ylabel("density", fontsize=16)
        ax.legend(fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    written.append(_save(plt, fig, out / "mass_sculpting.png"))
    return written


def plot_learning_curves(taggers: Sequence[str], out: str | os.PathLike[str]) -> Path | None:
    """Validation loss and AUC per epoch from each artifact's recorded training history.

    Returns the PNG path, or ``None`` when no artifact records a history (e.g. only the
    cut-based baseline).
    """
    from hepml_coffea.artifacts import resolve_artifact

    hist = {}
    for name in taggers:
        m = json.loads((resolve_artifact(name) / "metrics.json").read_text())
        if m.get("history"):
            hist[name] = m["history"]
    if not hist:
        return None
    plt = _plt()
    with_auc = any(h.get("val_auc") for h in hist.values())
    fig, axes = plt.subplots(1, 2 if with_auc else 1, figsize=(14 if with_auc else 8, 6), squeeze=False)
    for a in axes.flat:
        a.set_prop_cycle(color=TAGGER_COLORS)
    a1 = axes[0, 0]
    for name, h in hist.items():
        n_train = len(h.get("train", []))
        # a fine-tuning also records the validation loss of its starting weights, as epoch 0
        ep = np.arange(n_train - len(h["validation"]) + 1, n_train + 1)
        line = a1.plot(ep, h["validation"], marker="o", label=f"{name} validation")[0]
        a1.plot(np.arange(1, n_train + 1), h.get("train", []), ls="--", color=line.get_color(), label=f"{name} train")
        if with_auc and h.get("val_auc"):
            axes[0, 1].plot(np.arange(1, len(h["val_auc"]) + 1), h["val_auc"], marker="o", color=line.get_color(),
                            label=name)
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy loss")
    a1.legend(fontsize=10, ncol=2)
    if with_auc:
        axes[0, 1].set_xlabel("epoch")
        axes[0, 1].set_ylabel("validation AUC")
        axes[0, 1].legend(fontsize=10)
    return _save(plt, fig, Path(out))


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
