"""Helpers for the fault-injection tests: damaged copies of generated files, run shortcuts."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

from hepml_coffea.config import RunConfig
from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.data.io import read_arrays
from hepml_coffea.batch.run import run_fileset
from hepml_coffea.selection import Selection

N_EVENTS = 300  # events in the ttbar_file / qcd_file fixtures


def run_iterative(fileset, p, chunksize=150, skip=False, **kw):
    """``run_fileset`` with the iterative executor, no progress bar."""
    return run_fileset(fileset, p, config=RunConfig(executor="iterative", chunksize=chunksize, status=False,
                                                    skip_bad_files=skip), **kw)


def same_histograms(a, b, datasets):
    for ds in datasets:
        assert np.array_equal(a["datasets"][ds]["scores"].values(flow=True), b["datasets"][ds]["scores"].values(flow=True)), ds
        assert np.array_equal(a["datasets"][ds]["working_points"].values(flow=True),
                              b["datasets"][ds]["working_points"].values(flow=True)), ds
        assert a["datasets"][ds]["cutflow"] == b["datasets"][ds]["cutflow"], ds


def no_nan(out):
    n = 0
    for ds, acc in out["datasets"].items():
        if isinstance(acc, dict) and "scores" in acc:
            for h in (acc["scores"], acc["working_points"]):
                assert np.isfinite(h.values(flow=True)).all(), ds
            n += 1
    return n


def collections(path):
    """All branches of ``Events`` grouped into records (``FatJet``, ``PFCands``...)."""
    arrays = uproot.open(path)["Events"].arrays(how=dict)
    prefixes = {k.split("_", 1)[0] for k in arrays if "_" in k}
    out, groups = {}, {}
    for k, v in arrays.items():
        if k.startswith("n") and k[1:] in prefixes:
            continue  # counters are rewritten by mktree
        if "_" in k:
            c, f = k.split("_", 1)
            groups.setdefault(c, {})[f] = v
        else:
            out[k] = v
    for c, fields in groups.items():
        out[c] = ak.zip(fields)
    return out


def write_tree(path, cols):
    """Write records as a PFNano-like TTree (same branch types as the generator)."""
    with uproot.recreate(path) as f:
        types = {k: (v.type.content if ak.fields(v) or v.ndim > 1 else np.asarray(v).dtype) for k, v in cols.items()}
        tree = f.mktree("Events", types)
        tree.extend(cols)
    return path


def set_value(cols, coll, field, event, idx, value):
    """Copy of ``cols`` with ``cols[coll][field][event][idx] = value``."""
    arr = cols[coll]
    counts = ak.to_numpy(ak.num(arr[field]))
    flat = ak.to_numpy(ak.flatten(arr[field])).copy()
    off = np.concatenate([[0], np.cumsum(counts)])
    assert idx < counts[event]
    flat[off[event] + idx] = value
    new = ak.unflatten(flat, counts)
    return {**cols, coll: ak.zip({f: (new if f == field else arr[f]) for f in ak.fields(arr)})}


def selected_jets(path):
    """(event, jet) of the jets passing the default selection, with valid constituents."""
    jc = fatjet_constituents(read_arrays(path))
    jc = jc.select(Selection().mask(jc) & jc.valid)
    return list(zip(jc.event_index.tolist(), jc.jet_index.tolist()))


def chain(err):
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__
