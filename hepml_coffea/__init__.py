"""hepml_coffea: deep-learning jet taggers inside columnar (coffea) HEP analyses.

Data flow (eight floors; each module or folder imports only those below it)::

    data/               files, filesets, constituents of every NanoAOD flavour, truth, geometry
    selection.py, knn.py, stats.py, plotstyle.py, errors.py    small leaves
    samples/            Pythia8 + FastJet -> PFNano files (generation; the [generate] extra)
    representations/    sequences, point clouds, jet images, blocks, expressions (no torch)
    models/             CNN, LSTM, ParticleNet, PFN, cut-based baseline (one file each)
    artifacts/          self-describing, sealed model directories; import (TorchScript, ONNX)
    config.py           TaggerConfig, RunConfig
    inference/          runner protocol + one runner per runtime, engine, per-worker cache, Dask plugin
    scoring.py          FatJetTagger / score_fatjets: the one scoring path (eager or dask-awkward)
    weaver/             weaver models in and out (ONNX + preprocess.json)
    analysis/           TaggerProcessor, histograms, plots, run outputs
    evaluation/         statistics, evaluation set + cache, report, plots
    training/           training, fine-tuning, augmentation, distillation (writes artifacts)
    batch/              coffea Runner + executors; local / Dask-CUDA / Slurm / HTCondor clusters; job splitting
    cli/                the command line (sub-commands in three modules) and demo.py, the main job
"""

from __future__ import annotations

import difflib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DEFAULT_TAGGERS",
    "FatJetTagger",
    "RunConfig",
    "Selection",
    "TaggerConfig",
    "TaggerProcessor",
    "fatjet_constituents",
    "generate",
    "get_tagger",
    "import_onnx",
    "import_torchscript",
    "load_artifact",
    "run_fileset",
    "score_fatjets",
    "shipped_taggers",
    "top_labels",
]

_LAZY = {
    "ConfigurationError": "hepml_coffea.config",
    "DEFAULT_TAGGERS": "hepml_coffea.analysis.processor",
    "FatJetTagger": "hepml_coffea.scoring",
    "RunConfig": "hepml_coffea.config",
    "Selection": "hepml_coffea.selection",
    "TaggerConfig": "hepml_coffea.config",
    "TaggerProcessor": "hepml_coffea.analysis.processor",
    "fatjet_constituents": "hepml_coffea.data.constituents",
    "generate": "hepml_coffea.samples",
    "get_tagger": "hepml_coffea.inference.engine",
    "import_onnx": "hepml_coffea.artifacts",
    "import_torchscript": "hepml_coffea.artifacts",
    "load_artifact": "hepml_coffea.artifacts",
    "run_fileset": "hepml_coffea.batch.run",
    "score_fatjets": "hepml_coffea.scoring",
    "shipped_taggers": "hepml_coffea.artifacts",
    "top_labels": "hepml_coffea.data.truth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    close = difflib.get_close_matches(name, __all__, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    msg = f"module 'hepml_coffea' has no attribute {name!r}{hint}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
