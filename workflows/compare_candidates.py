"""Paired comparison of retrained candidates with the shipped taggers on the standard evaluation set.

    python workflows/compare_candidates.py --data data/evalset --cache data/eval_cache \\
        cnn=data/cmp/cnn-ft pfn=data/cmp/pfn-ft lstm=data/cmp/lstm-ft

Each ``REFERENCE=CANDIDATE`` pair is scored on the same jets (the per-jet scoring API, as
``hepml-coffea evaluate``; cached scores reused) and the ratio of their 1/eB at eS = 30 % and
50 % is given with a paired bootstrap (16-84 %). A candidate replaces the shipped tagger only
when the ratio's 16th percentile is above 1 at the working points that matter (TAGGERS.md).
Tagger names must be unique: copy a candidate and rename it first
(``hepml_coffea.artifacts.update_artifact(path, meta={"name": "cnn-ft"})``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hepml_coffea.evaluation.dataset import load_eval_sample
from hepml_coffea.evaluation.stats import paired_rejection_ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="REFERENCE=CANDIDATE (shipped names or artifact folders)")
    ap.add_argument("--data", default="data/evalset")
    ap.add_argument("--cache", default="data/eval_cache")
    ap.add_argument("--n-boot", type=int, default=200)
    args = ap.parse_args()
    pairs = []
    for p in args.pairs:
        if "=" not in p:
            ap.error(f"{p!r}: expected REFERENCE=CANDIDATE")
        pairs.append(tuple(p.split("=", 1)))
    folder = Path(args.data)
    sig = sorted(str(p) for p in folder.glob("ttbar_*.root"))
    bkg = sorted(str(p) for p in folder.glob("qcd_*.root"))
    if not sig or not bkg:
        ap.error(f"{folder}: need ttbar_*.root and qcd_*.root (workflows/make_eval_set.py)")
    names = list(dict.fromkeys(n for pair in pairs for n in pair))
    sample = load_eval_sample(sig, bkg, names, cache=args.cache or None, log=None)
    use, labels = sample.labels("contained")
    print(f"{int(labels.sum()):,} contained top jets, {int((labels == 0).sum()):,} QCD jets; "
          f"paired bootstrap, {args.n_boot} replicas, 16-50-84 %\n")
    print("| candidate / reference | 1/eB ratio @ eS=50% | 1/eB ratio @ eS=30% |")
    print("|---|---|---|")
    for ref, cand in pairs:
        r = paired_rejection_ratio(labels, sample.scores[ref][use], sample.scores[cand][use], n_boot=args.n_boot)
        cell = {k: f"{r[k][1]:.3f} [{r[k][0]:.3f}, {r[k][2]:.3f}]" for k in ("eS50", "eS30")}
        print(f"| {cand} / {ref} | {cell['eS50']} | {cell['eS30']} |")


if __name__ == "__main__":
    main()
