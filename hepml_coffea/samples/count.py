"""Jets a generated file contributes to training: the evaluation's selection and truth.

A QCD file contributes every jet in the window; a ttbar file its *fully contained* top
jets (top and its three decay quarks within dR < 0.8): what
:func:`hepml_coffea.training.dataset.load_dataset` takes and what the standard evaluation
counts as signal (:func:`hepml_coffea.evaluation.load_eval_sample`, truth "contained").
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["count_window_jets"]


def count_window_jets(path: str | os.PathLike[str], process: str, selection: Any = None) -> int:
    """Number of training jets in ``path``: jets passing ``selection`` (default 550 < pT <
    650 GeV, |eta| < 2) with finite kinematics and >= 1 constituent; for ``process ==
    "ttbar"`` only the truth-matched (fully contained) top jets."""
    import awkward as ak

    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays
    from hepml_coffea.selection import Selection
    from hepml_coffea.data.truth import TOP, top_labels

    selection = selection or Selection()
    ev = read_arrays(path)
    jc = fatjet_constituents(ev)
    keep = selection.mask(jc) & jc.valid
    if process == "ttbar":
        eta = np.asarray(ak.to_numpy(jc.jets.eta), dtype=np.float64)
        phi = np.asarray(ak.to_numpy(jc.jets.phi), dtype=np.float64)
        keep &= top_labels(ev, jc.event_index, eta, phi) == TOP
    elif process != "qcd":
        msg = f"unknown process {process!r}: choose 'ttbar' or 'qcd'"
        raise ValueError(msg)
    return int(np.count_nonzero(keep))
