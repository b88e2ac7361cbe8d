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

Cross-reference indices, so that coffea's ``NanoAODSchema`` / ``PFNanoAODSchema`` find every
index they look for and a user's processor prints no "Missing cross-reference" warning:
``FatJet_{subJetIdx1,subJetIdx2,genJetAK8Idx,electronIdx3SJ,muonIdx3SJ}`` are -1 (NanoAOD's
"no target": no subjets, generator-level jets, electrons or muons are made), and the
collections the generator does not make (:data:`ABSENT_COLLECTIONS`: leptons, photons, taus,
AK4 and generator-level jets, subjets, secondary vertices and their association tables) are
stored with zero entries in every event, with their kinematics and index branches.
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

__all__ = ["ABSENT_COLLECTIONS", "FATJET_INDICES", "read_metadata", "write_pfnano"]

META_KEY = "hepml_coffea_meta"

_F, _I = np.float32, np.int32
_KIN = {"pt": _F, "eta": _F, "phi": _F}
_KINM = {**_KIN, "mass": _F}

#: the -1 (no target) index branches every stored fat jet carries
FATJET_INDICES = ("subJetIdx1", "subJetIdx2", "genJetAK8Idx", "electronIdx3SJ", "muonIdx3SJ")

#: collections the generator does not make, written empty (zero entries per event) with
#: their NanoAOD kinematics and the index branches coffea's PFNanoAODSchema cross-references
ABSENT_COLLECTIONS: dict[str, dict[str, Any]] = {
    "Electron": {**_KINM, "charge": _I, "genPartIdx": _I, "jetIdx": _I, "photonIdx": _I},
    "LowPtElectron": {**_KINM, "charge": _I, "electronIdx": _I, "genPartIdx": _I, "photonIdx": _I},
    "Muon": {**_KINM, "charge": _I, "fsrPhotonIdx": _I, "genPartIdx": _I, "jetIdx": _I},
    "Photon": {**_KIN, "electronIdx": _I, "genPartIdx": _I, "jetIdx": _I},
    "FsrPhoton": {**_KIN, "muonIdx": _I},
    "Tau": {**_KINM, "charge": _I, "genPartIdx": _I, "jetIdx": _I},
    "GenVisTau": {**_KINM, "charge": _I, "genPartIdxMother": _I},
    "Jet": {**_KINM, "nConstituents": _I, "electronIdx1": _I, "electronIdx2": _I, "muonIdx1": _I,
            "muonIdx2": _I, "genJetIdx": _I},
    "GenJet": dict(_KINM),
    "GenJetAK8": dict(_KINM),
    "SubJet": {**_KINM, "subGenJetAK8Idx": _I},
    "SubGenJetAK8": dict(_KINM),
    "SV": {**_KINM, "x": _F, "y": _F, "z": _F},
    "GenCands": {**_KINM, "charge": _I, "pdgId": _I},
    "JetPFCands": {"jetIdx": _I, "pFCandsIdx": _I},
    "GenJetCands": {"jetIdx": _I, "pFCandsIdx": _I},
    "GenFatJetCands": {"jetIdx": _I, "pFCandsIdx": _I},
    "FatJetSVs": {"jetIdx": _I, "sVIdx": _I},
    "JetSVs": {"jetIdx": _I, "sVIdx": _I},
    "GenJetSVs": {"jetIdx": _I, "sVIdx": _I},
    "GenFatJetSVs": {"jetIdx": _I, "sVIdx": _I},
}


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
        "FatJet": _with_fatjet_indices(arrays["FatJet"]),
        "PFCands": _with_puppi_weight(arrays["PFCands"]),
        "FatJetPFCands": arrays["FatJetPFCands"],
        "GenPart": arrays["GenPart"],
    }
    for name, fields in ABSENT_COLLECTIONS.items():
        branches[name] = arrays[name] if name in arrays else _empty_collection(n, fields)
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


def _with_fatjet_indices(fatjet: Any) -> Any:
    """The fat jets with the :data:`FATJET_INDICES` = -1 (int32) unless they carry them."""
    import awkward as ak

    have = set(ak.fields(fatjet))
    for name in FATJET_INDICES:
        if name not in have:
            fatjet = ak.with_field(fatjet, ak.full_like(fatjet.pt, -1, dtype=np.int32), name)
    return fatjet


def _empty_collection(n: int, fields: dict[str, Any]) -> Any:
    """``n`` events with zero entries of a record with ``fields`` (name -> numpy dtype)."""
    import awkward as ak

    record = ak.zip({k: np.zeros(0, dtype=t) for k, t in fields.items()})
    return ak.unflatten(record, np.zeros(n, dtype=np.int64))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the generation metadata stored in a generated file ({} if absent)."""
    with uproot.open(path) as f:
        if META_KEY not in f:
            return {}
        return dict(json.loads(str(f[META_KEY])))
