"""A constituent summary of a NanoAOD / PFNano file (what ``hepml-coffea summary`` prints)."""

from __future__ import annotations

import os
from typing import Any

import awkward as ak
import numpy as np

from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.data.io import read_arrays
from hepml_coffea.selection import Selection
from hepml_coffea.data.truth import top_labels

__all__ = ["constituent_summary"]


def constituent_summary(path: str | os.PathLike[str], selection: Selection | None = None) -> dict[str, Any]:
    """Events, fat jets, jets in the selection window, constituents per jet, top fraction."""
    selection = selection or Selection()
    events = read_arrays(path)
    jc = fatjet_constituents(events)
    n = ak.to_numpy(ak.num(jc.cands))
    sel = selection.mask(jc)
    labels = top_labels(events, jc.event_index, ak.to_numpy(jc.jets.eta), ak.to_numpy(jc.jets.phi))
    known = labels[sel] >= 0
    return {
        "file": os.fspath(path),
        "flavour": jc.flavour,
        "events": len(events),
        "fat_jets": len(jc),
        "selected_jets": int(sel.sum()),
        "selection": selection.describe(),
        "constituents_per_jet_mean": float(n.mean()) if len(n) else 0.0,
        "constituents_per_jet_max": int(n.max()) if len(n) else 0,
        "top_fraction_selected": float(np.mean(labels[sel][known] == 1)) if known.any() else None,
        "problems": jc.counts,
    }
