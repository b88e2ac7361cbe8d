"""Reading events: coffea NanoEvents (any NanoAOD flavour, TTree or RNTuple) or plain uproot.

RNTuple: uproot (5.4 - 5.7) finds the sub-fields of each field by scanning every field
record of the ntuple, so listing or reading the fields of a NanoAOD RNTuple costs
O(fields^2): ~20 s for a PFNano file with 2,400 field records, before a single value is
read. :func:`index_rntuple_fields` is an **opt-in**, version-guarded shim that replaces that
scan by a parent -> children index built once per ntuple (same fields, same order; tested
against the stock property). Importing this module changes nothing: the ``hepml-coffea``
command line installs the shim in its own process and, through
:class:`~hepml_coffea.inference.worker.TaggerWarmup` (``rntuple_index=True``), in its Dask
workers; a library user calls :func:`index_rntuple_fields` where they want it and
:func:`restore_rntuple_fields` to undo it. It stays off for uproot >= 5.8 (untested) and
for any uproot whose ``HasFields.fields`` is not the scan it replaces.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import awkward as ak
import uproot

__all__ = ["COLLECTIONS", "index_rntuple_fields", "load_events", "read_arrays", "restore_rntuple_fields",
           "rntuple_index_installed"]

#: uproot versions the RNTuple field index was tested against (5.7.7); newer ones keep their own code
_SHIM_UPROOT = ((5, 4), (5, 8))

#: collections read_arrays reads (FatJetSVs, SV: the secondary vertices of CMS-style weaver models)
COLLECTIONS = ("FatJet", "FatJetPFCands", "PFCands", "FatJetPFCand", "PFCand", "GenPart", "FatJetSVs", "SV")


def _children_index(ntuple: Any) -> dict[int, list[int]]:
    """Field id -> ids of its direct sub-fields, in record order (built once per ntuple)."""
    index = getattr(ntuple, "_hepml_children", None)
    if index is None:
        index = {}
        for i, rec in enumerate(ntuple.field_records):
            parent = rec.parent_field_id
            if parent != i:
                index.setdefault(parent, []).append(i)
        ntuple._hepml_children = index
    return index


def _indexed_fields(self: Any) -> list[Any]:
    """``HasFields.fields`` with the sub-fields taken from :func:`_children_index`."""
    if self._fields is None:
        from uproot.behaviors.RNTuple import RNTuple

        ntuple = self.ntuple
        if isinstance(self, RNTuple):
            fields = [ntuple.all_fields[i] for i, f in enumerate(ntuple.field_records) if f.parent_field_id == i]
        else:
            fields = []
            for i in _children_index(ntuple).get(self._fid, []):
                child = ntuple.all_fields[i]
                if child.is_anonymous:  # as uproot: an anonymous field is replaced by its children
                    fields.extend(child.fields)
                else:
                    fields.append(child)
        self._fields = fields
    return self._fields


def index_rntuple_fields() -> bool:
    """Make uproot find RNTuple sub-fields through an index instead of a full scan.

    Idempotent; undone by :func:`restore_rntuple_fields`. Returns False (and changes
    nothing) for an uproot outside the tested versions or without the ``HasFields.fields``
    property this replaces, so a newer uproot keeps its own code.

    Returns
    -------
    bool
        True if the index is installed (now or before).
    """
    version = tuple(int(x) for x in re.findall(r"\d+", uproot.__version__)[:2])
    if not (_SHIM_UPROOT[0] <= version < _SHIM_UPROOT[1]):
        return False
    try:
        from uproot.behaviors.RNTuple import HasFields
    except ImportError:
        return False
    current = HasFields.__dict__.get("fields")
    if isinstance(current, property) and current.fget is _indexed_fields:
        return True
    if not isinstance(current, property) or "parent_field_id" not in (current.fget.__code__.co_names or ()):
        return False
    global _UPSTREAM_FIELDS
    _UPSTREAM_FIELDS = current
    HasFields.fields = property(_indexed_fields, doc=current.__doc__)
    return True


#: uproot's own ``HasFields.fields`` (kept for comparison in tests and for restoring it)
_UPSTREAM_FIELDS: property | None = None


def rntuple_index_installed() -> bool:
    """Whether :func:`index_rntuple_fields` is in effect in this process."""
    try:
        from uproot.behaviors.RNTuple import HasFields
    except ImportError:
        return False
    current = HasFields.__dict__.get("fields")
    return isinstance(current, property) and current.fget is _indexed_fields


def restore_rntuple_fields() -> None:
    """Put uproot's own ``HasFields.fields`` back (undoes :func:`index_rntuple_fields`)."""
    if _UPSTREAM_FIELDS is None:
        return
    from uproot.behaviors.RNTuple import HasFields

    HasFields.fields = _UPSTREAM_FIELDS


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
