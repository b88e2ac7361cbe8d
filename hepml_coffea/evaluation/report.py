"""The evaluation report: markdown tables with 68 % intervals, and the published figures.

:func:`format_report` writes the tables of an :func:`~hepml_coffea.evaluation.evaluate.evaluate`
result; :func:`update_markdown` puts them between :data:`MARK_BEGIN` and :data:`MARK_END`
of a document (``TAGGERS.md``); :data:`PUBLISHED` holds the reference sample's figures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MARK_BEGIN", "MARK_END", "PUBLISHED", "format_learning_curve", "format_rejection", "format_report",
           "update_markdown"]

MARK_BEGIN = "<!-- hepml-coffea evaluate: begin (generated, do not edit) -->"
MARK_END = "<!-- hepml-coffea evaluate: end -->"

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
    if res.get("learning_curve"):
        lines += ["", *format_learning_curve(res["learning_curve"])]
    return "\n".join(lines) + "\n"


def format_learning_curve(curve: Mapping[str, Any]) -> list[str]:
    """Markdown lines of a :func:`~hepml_coffea.evaluation.curve.learning_curve` result."""
    lines = [
        ("Learning curve (1/eB on the same evaluation jets vs the jets of each training split, both classes; "
         "every point trained from scratch; gain per doubling from the previous point, "
         "(R2 / R1) ^ (1 / log2(n2 / n1)) +- the CP errors: above 1 = still data-limited):"),
        "",
        "| tagger | artifact | training jets | AUC | 1/eB @ eS=50% | 1/eB @ eS=30% | gain per doubling (30%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, points in curve["models"].items():
        for p in points:
            r = p["report"]
            d = p.get("per_doubling")
            gain = f"{d['gain']:.2f} +- {d['err']:.2f}" if d else "-"
            label = Path(str(p["artifact"])).name
            lines.append(f"| {model} | {label} | {p['n_train']:,} | {r['auc']:.4f} +- {r['auc_err']:.4f} "
                         f"| {format_rejection(r['eS50'])} | {format_rejection(r['eS30'])} | {gain} |")
    if curve.get("baseline"):
        lines += ["", f"(Baseline, no training: 1/eB {format_rejection(curve['baseline']['eS50'])} at eS = 50 %, "
                      f"{format_rejection(curve['baseline']['eS30'])} at 30 %.)"]
    if curve.get("duplicates"):
        lines += ["", "Same weights as a point above (one point each): " + ", ".join(
            f"{Path(str(n)).name} = {Path(str(f)).name}" for n, f in curve["duplicates"].items()) + "."]
    if curve.get("skipped"):
        lines += ["", "Not points (no training of their own, or warm-started from another artifact): "
                      + ", ".join(Path(str(n)).name for n in curve["skipped"]) + "."]
    return lines


def update_markdown(path: str | os.PathLike[str], res: Mapping[str, Any]) -> None:
    """Replace the block between :data:`MARK_BEGIN` and :data:`MARK_END` of the markdown file
    ``path`` by :func:`format_report` of ``res``."""
    md = Path(path)
    text = md.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        msg = f"{md}: no block between {MARK_BEGIN!r} and {MARK_END!r} to replace; add the two marker lines"
        raise ValueError(msg)
    head, rest = text.split(MARK_BEGIN, 1)
    tail = rest.split(MARK_END, 1)[1]
    md.write_text(f"{head}{MARK_BEGIN}\n{format_report(res)}{MARK_END}{tail}")
