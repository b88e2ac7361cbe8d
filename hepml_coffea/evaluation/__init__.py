"""Standard tagger evaluation with statistical uncertainties, one module per job.

* :mod:`~hepml_coffea.evaluation.stats` — intervals (``hist.intervals``), DeLong AUC error,
  working points, rejection, mass sculpting, bootstrap cross-checks (numpy/scipy only)
* :mod:`~hepml_coffea.evaluation.dataset` — the evaluation set: read, select, truth-match,
  score every jet (the scoring API analyses use), cached per file and artifact
* :mod:`~hepml_coffea.evaluation.evaluate` — ``evaluate`` / ``run_evaluation``
  (``hepml-coffea evaluate``): every figure of every tagger, results.json
* :mod:`~hepml_coffea.evaluation.report` — markdown tables, the published figures, TAGGERS.md block
* :mod:`~hepml_coffea.evaluation.plots` — evaluation plots and the package's plot style

Nothing is imported here, so ``import hepml_coffea.evaluation`` stays cheap.
"""
