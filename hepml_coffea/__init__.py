"""hepml_coffea: deep-learning jet taggers inside columnar (coffea) HEP analyses.

Data flow (one module or folder per step)::

    samples/ (Pythia8 + FastJet -> PFNano files)
    constituents.py (fat jets -> constituents, every NanoAOD flavour), truth.py
    representations/ (sequences, point clouds + kNN graphs, jet images)
    models/ (CNN, LSTM, ParticleNet, PFN, cut-based baseline)
    training/ -> artifacts.py (self-describing model directories)
    inference/ (per-process model cache, batching, devices; Dask worker plugin)
    processor.py (TaggerProcessor) -> histograms.py -> plots.py
    run.py (coffea Runner, executors, local / Dask-CUDA / HTCondor clusters)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "TaggerProcessor",
    "DEFAULT_TAGGERS",
    "Selection",
    "fatjet_constituents",
    "top_labels",
    "load_artifact",
    "shipped_taggers",
    "get_tagger",
    "import_torchscript",
    "run_fileset",
    "generate",
]

_LAZY = {
    "TaggerProcessor": "hepml_coffea.processor",
    "DEFAULT_TAGGERS": "hepml_coffea.processor",
    "Selection": "hepml_coffea.selection",
    "fatjet_constituents": "hepml_coffea.constituents",
    "top_labels": "hepml_coffea.truth",
    "load_artifact": "hepml_coffea.artifacts",
    "shipped_taggers": "hepml_coffea.artifacts",
    "get_tagger": "hepml_coffea.inference.engine",
    "import_torchscript": "hepml_coffea.artifacts",
    "run_fileset": "hepml_coffea.run",
    "generate": "hepml_coffea.samples",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'hepml_coffea' has no attribute {name!r}"
    raise AttributeError(msg)
