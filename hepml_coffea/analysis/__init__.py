"""The analysis: scores -> histograms -> plots.

* :mod:`~hepml_coffea.analysis.processor` — ``TaggerProcessor``: scoring + truth labels per chunk
* :mod:`~hepml_coffea.analysis.histograms` — histogram factories and filling, ROC from histograms
* :mod:`~hepml_coffea.analysis.plots` — mplhep plots of a run (matplotlib imported on first call)

Nothing is imported here, so ``import hepml_coffea.analysis`` stays cheap.
"""
