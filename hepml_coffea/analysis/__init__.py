"""The analysis: scores -> histograms -> plots.

* :mod:`~hepml_coffea.analysis.processor` — ``TaggerProcessor``: scoring + truth labels per chunk
* :mod:`~hepml_coffea.analysis.histograms` — histogram factories and filling, ROC from histograms
* :mod:`~hepml_coffea.analysis.plots` — mplhep plots of a run (matplotlib imported on first call)
* :mod:`~hepml_coffea.analysis.outputs` — the run output: stage report, non-finite-input summary, atomic saving
* :mod:`~hepml_coffea.analysis.summary` — the constituent summary of a file (``hepml-coffea summary``)

Nothing is imported here, so ``import hepml_coffea.analysis`` stays cheap.
"""
