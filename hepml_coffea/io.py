"""Reading events: coffea NanoEvents (any NanoAOD flavour, TTree or RNTuple) or plain uproot."""

from __future__ import annotations

import os
import warnings
from typing import Any

import awkward as ak
import uproot

__all__ = ["load_events", "read_arrays", "COLLECTIONS"]

#: collections the taggers need; enough to build jets, constituents and truth
COLLECTIONS = ("FatJet", "FatJetPFCands", "PFCands", "FatJetPFCand", "PFCand", "GenPart")


def _schema_for(path: str | os.PathLike[str], treename: str) -> Any:
    from coffea.nanoevents import NanoAODSchema, PFNanoAODSchema

    with uproot.open(path) as f:
        keys = set(f[treename].keys())
    # PFNanoAODSchema cross-references FatJet.constituents when FatJet_nConstituents
    # exists; on other flavours plain NanoAODSchema is what works
    if "nFatJetPFCands" in keys or "FatJetPFCands_pFCandsIdx" in keys:
        return PFNanoAODSchema
    return NanoAODSchema


def load_events(
    path: str | os.PathLike[str],
    treename: str = "Events",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    mode: str = "virtual",
) -> Any:
    """Open ``path`` as coffea NanoEvents with the schema that fits its flavour.

    coffea's warnings about cross-references to collections a file does not carry
    (e.g. ``Missing cross-reference index for Jet_muonIdx1``) are silenced; they are
    expected for slimmed files.
    """
    from coffea.nanoevents import NanoEventsFactory

    schema = _schema_for(path, treename)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing cross-reference")
        factory = NanoEventsFactory.from_root(
            {os.fspath(path): treename},
            schemaclass=schema,
            entry_start=entry_start,
            entry_stop=entry_stop,
            mode=mode,
        )
        return factory.events()


def read_arrays(
    path: str | os.PathLike[str],
    treename: str = "Events",
    collections: tuple[str, ...] = COLLECTIONS,
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> ak.Array:
    """Read only the needed collections with uproot into records (``FatJet.pt``...).

    Faster than NanoEvents for bulk reading (training); returns an array of events with
    one record field per collection present in the file, plus ``event``.
    """
    with uproot.open(path) as f:
        tree = f[treename]
        keys = set(tree.keys())
        names = [k for k in keys if any(k.startswith(c + "_") for c in collections)]
        # keep prefixes exact: FatJetPFCand_ must not swallow FatJetPFCands_
        names = [k for k in names if k.split("_", 1)[0] in collections]
        if "event" in keys:
            names.append("event")
        arrays = tree.arrays(names, entry_start=entry_start, entry_stop=entry_stop, how=dict)
    groups: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for k, v in arrays.items():
        if "_" in k and k.split("_", 1)[0] in collections:
            c, field = k.split("_", 1)
            groups.setdefault(c, {})[field] = v
        else:
            out[k] = v
    for c, fields in groups.items():
        out[c] = ak.zip(fields)
    return ak.zip(out, depth_limit=1)
