"""Write generated events as a PFNano-like ROOT file (TTree ``Events``) with uproot.

Branches (NanoAOD naming, float32 where NanoAOD uses it):
``run``, ``luminosityBlock``, ``event``, ``genWeight``;
``nFatJet``, ``FatJet_{pt,eta,phi,mass,msoftdrop,tau1,tau2,tau3,nConstituents}``;
``nPFCands``, ``PFCands_{pt,eta,phi,mass,charge,pdgId,puppiWeight}`` (the candidates of the
stored jets, as PFNano's jets-only mode stores them; ``puppiWeight`` is 1: no pileup is
generated, so every candidate is kept whole, and PUPPI-weighted recipes such as JetClass's
read these files as they read CMS PFNano);
``nFatJetPFCands``, ``FatJetPFCands_{jetIdx,pFCandsIdx}`` (grouped by jet, in jet order);
``nGenPart``, ``GenPart_{pt,eta,phi,mass,pdgId,status,statusFlags,genPartIdxMother}``.
The generation configuration and seeds are stored as JSON in the ``hepml_coffea_meta``
string object. ``uproot``'s ``mktree`` is used because ``file["Events"] = ...``
writes RNTuple in current uproot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import uproot

__all__ = ["write_pfnano", "read_metadata"]

META_KEY = "hepml_coffea_meta"


def write_pfnano(
    arrays: dict[str, Any],
    out: str | os.PathLike[str],
    meta: dict[str, Any],
    step: int = 5000,
) -> Path:
    """Write ``arrays`` (from :func:`generate_arrays`) to ``out``; atomic via rename.

    The file is written under a temporary name and renamed when complete, so an
    interrupted run never leaves a file that looks finished.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = len(arrays["event"])
    branches: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.full(n, int(meta.get("seed", 1)), dtype=np.uint32),
        "event": np.asarray(arrays["event"], dtype=np.uint64),
        "genWeight": np.ones(n, dtype=np.float32),
        "FatJet": arrays["FatJet"],
        "PFCands": _with_puppi_weight(arrays["PFCands"]),
        "FatJetPFCands": arrays["FatJetPFCands"],
        "GenPart": arrays["GenPart"],
    }
    try:
        with uproot.recreate(tmp) as f:
            types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content) for k, v in branches.items()}
            tree = f.mktree("Events", types)
            for start in range(0, max(n, 1), step):
                stop = min(start + step, n)
                tree.extend({k: v[start:stop] for k, v in branches.items()})
            f[META_KEY] = json.dumps(meta, sort_keys=True)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _with_puppi_weight(pf: Any) -> Any:
    """The candidates with ``puppiWeight`` = 1 (float32) unless they carry one."""
    import awkward as ak

    if "puppiWeight" in ak.fields(pf):
        return pf
    return ak.with_field(pf, ak.values_astype(ak.ones_like(pf.pt), np.float32), "puppiWeight")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the generation metadata stored in a generated file ({} if absent)."""
    with uproot.open(path) as f:
        if META_KEY not in f:
            return {}
        return dict(json.loads(str(f[META_KEY])))
