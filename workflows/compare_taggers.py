"""Regenerate the comparison tables of TAGGERS.md from the standard evaluation.

    python workflows/make_eval_set.py --out data/evalset
    python workflows/compare_taggers.py --data data/evalset

is ``hepml-coffea evaluate --data data/evalset --out docs/eval --cache data/eval_cache
--update-markdown TAGGERS.md``: every shipped tagger scored through the per-jet scoring API
(:class:`hepml_coffea.scoring.FatJetTagger`), the figures with their 68 % intervals and the
number of passing QCD jets written to ``docs/eval/report.md`` and into the generated block of
TAGGERS.md, the plots to ``docs/eval/``. See :mod:`hepml_coffea.evaluation`.
"""

from __future__ import annotations

import argparse
import logging

from hepml_coffea.evaluation.evaluate import run_evaluation
from hepml_coffea.evaluation.report import format_report


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the package logs its reports
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/evalset")
    ap.add_argument("--taggers", nargs="+", default=None)
    ap.add_argument("--out", default="docs/eval")
    ap.add_argument("--cache", default="data/eval_cache")
    ap.add_argument("--markdown", default="TAGGERS.md", help="file whose generated block is replaced ('' for none)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    res = run_evaluation(args.data, args.out, taggers=args.taggers, cache=args.cache, threads=args.threads,
                         update_markdown=args.markdown or None)
    print(format_report(res))


if __name__ == "__main__":
    main()
