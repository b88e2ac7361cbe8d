"""Fat jets -> their particle-flow constituents, for every NanoAOD flavour.

One function, :func:`fatjet_constituents`, returns for each selected fat jet its
constituents sorted by decreasing pT, whichever way the file stores them:

======================  =====================================================  ==========
flavour                 association                                            candidates
======================  =====================================================  ==========
``pfnano``              ``FatJetPFCands_{jetIdx,pFCandsIdx}``                  ``PFCands``
``nanoaod_v15``         ``FatJetPFCand_{jetIdx,pfCandIdx}``                    ``PFCand``
======================  =====================================================  ==========

Both with or without ``FatJet_nConstituents`` (which coffea needs for its own
``FatJet.constituents.pf`` cross-reference), TTree or RNTuple: the grouping is done
here from the association rows, vectorised, so it works on every one of them and on
NanoEvents from any schema (only raw fields are read, so virtual mode reads just the
columns used).

The output contract, used by :mod:`hepml_coffea.representations`:

- ``jets``: flat (n_jets,) record with ``pt, eta, phi, mass, energy`` (float64) and,
  where the file has them, ``msoftdrop, tau1, tau2, tau3``, plus every field asked
  for with ``jet_fields=``;
- ``cands``: (n_jets, var) records with ``pt, eta, phi, mass, energy, charge, pdgId``
  (plus ``d0, dz`` where present, plus every branch asked for with ``cand_fields=``,
  e.g. ``InputSpec.required_cand_fields()``), sorted by decreasing pT, phi in
  (-pi, pi] (:func:`hepml_coffea.data.geometry.wrap_phi`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import awkward as ak
import numpy as np

from hepml_coffea.data.geometry import energy as _energy
from hepml_coffea.data.geometry import offsets as _offsets
from hepml_coffea.data.geometry import wrap_phi

__all__ = [
    "CAND_ALWAYS",
    "FLAVOURS",
    "JET_ALWAYS",
    "InvalidAssociationError",
    "JetConstituents",
    "MissingBranchError",
    "detect_flavour",
    "fatjet_constituents",
]

#: flavour -> (association collection, candidate-index field, candidate collection)
FLAVOURS: dict[str, tuple[str, str, str]] = {
    "pfnano": ("FatJetPFCands", "pFCandsIdx", "PFCands"),
    "nanoaod_v15": ("FatJetPFCand", "pfCandIdx", "PFCand"),
}

_JET_EXTRAS = ("msoftdrop", "tau1", "tau2", "tau3")
_CAND_EXTRAS = ("d0", "dz")
#: candidate fields every output carries (energy computed, charge inferred on NanoAOD v15)
CAND_ALWAYS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "energy", "charge", "pdgId")
#: jet fields every output carries
JET_ALWAYS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "energy")


class MissingBranchError(KeyError):
    """The file lacks the branches needed to find fat-jet constituents."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class InvalidAssociationError(ValueError):
    """Association rows point outside the jet or candidate collections."""


@dataclass
class JetConstituents:
    """Selected fat jets (flat over events) and their constituents.

    Attributes
    ----------
    jets : ak.Array, (n_jets,) records
    cands : ak.Array, (n_jets, var) records, pT-sorted
    event_index : np.ndarray, (n_jets,) index of each jet's event in the chunk
    jet_index : np.ndarray, (n_jets,) index of the jet inside its event
    valid : np.ndarray, (n_jets,) bool: finite jet and constituent kinematics and at
        least one constituent; invalid jets must not be scored
    flavour : which NanoAOD flavour the constituents came from
    counts : problems found, e.g. ``{"nonfinite": 2, "no_constituents": 1,
        "bad_association_rows": 0}``
    svs : (n_jets, var) secondary-vertex records in file order (PFNano ``FatJetSVs``),
        only when asked for with ``sv_fields=``
    """

    jets: ak.Array
    cands: ak.Array
    event_index: np.ndarray
    jet_index: np.ndarray
    valid: np.ndarray
    flavour: str
    counts: dict[str, int] = field(default_factory=dict)
    svs: ak.Array | None = None

    def __len__(self) -> int:
        return len(self.jets)

    def select(self, mask: np.ndarray) -> JetConstituents:
        """The subset of jets where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        return JetConstituents(
            jets=self.jets[mask],
            cands=self.cands[mask],
            event_index=self.event_index[mask],
            jet_index=self.jet_index[mask],
            valid=self.valid[mask],
            flavour=self.flavour,
            counts=dict(self.counts),
            svs=None if self.svs is None else self.svs[mask],
        )


def _fields(events: Any) -> set[str]:
    return set(ak.fields(events))


def detect_flavour(events: Any) -> str:
    """Name the constituent flavour of ``events`` or raise :class:`MissingBranchError`."""
    have = _fields(events)
    if "FatJet" not in have:
        msg = "the file has no FatJet collection (branches FatJet_*); cannot select fat jets"
        raise MissingBranchError(msg)
    for name, (assoc, idx, cand) in FLAVOURS.items():
        if assoc in have and cand in have:
            return name
    supported = "; ".join(f"{k}: {a}_{{jetIdx,{i}}} -> {c}_*" for k, (a, i, c) in FLAVOURS.items())
    msg = (
        "no fat-jet constituent branches found: expected one of the supported NanoAOD "
        f"flavours ({supported}); the file has collections {sorted(have)[:20]}"
    )
    raise MissingBranchError(msg)


def _flat(x: Any, dtype: Any = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(x, axis=None)), dtype=dtype)


def _flat_at(x: Any, index: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """``_flat(x)[index]``, converting only the rows taken (the constituents of the kept
    jets, not every candidate of the chunk)."""
    return np.asarray(ak.to_numpy(ak.flatten(x, axis=None))[index], dtype=dtype)


def fatjet_constituents(
    events: Any,
    jet_mask: Any = None,
    flavour: str | None = None,
    on_invalid: Literal["raise", "skip"] = "raise",
    select: Callable[[ak.Array], np.ndarray] | None = None,
    cand_fields: Iterable[str] = (),
    jet_fields: Iterable[str] = (),
    sv_fields: Iterable[str] = (),
) -> JetConstituents:
    """Return the selected fat jets of ``events`` and their pT-sorted constituents.

    Parameters
    ----------
    events : NanoEvents (any schema) or an awkward record array with the raw
        collections ``FatJet``, an association collection and a candidate collection
    jet_mask : optional (events, var) boolean mask of fat jets to keep
    flavour : force a flavour from :data:`FLAVOURS` (default: detect)
    select : optional function of the flat jet record (``pt, eta, phi, mass, energy``
        and ``msoftdrop, tau1..3`` where present) returning a boolean keep-mask, applied
        before constituents are gathered (e.g. :meth:`Selection.jet_mask`); jets with
        non-finite kinematics it rejects are counted in ``counts["nonfinite_rejected"]``
    on_invalid : association rows pointing outside the collections raise
        :class:`InvalidAssociationError` (``"raise"``) or are dropped and counted in
        ``counts["bad_association_rows"]`` (``"skip"``)
    cand_fields : extra candidate branches to carry, e.g. ``spec.required_cand_fields()``;
        ``puppiWeight`` is 1 where the file has none (logged once per process)
        (names of :data:`CAND_ALWAYS` are always there and ignored here); a branch the
        file lacks raises :class:`MissingBranchError` naming it
        A field the candidate collection lacks but the association rows have (PFNano's
        ``FatJetPFCands_btag*``: one value per jet-constituent pair) is taken from the rows.
    jet_fields : extra fat-jet branches to carry, e.g. ``spec.required_jet_fields()``
    sv_fields : secondary-vertex fields to gather per jet (``spec.required_sv_fields()``),
        from PFNano's ``FatJetSVs`` (rows with ``jetIdx``, file order); ``eta`` is
        ``SV_eta[sVIdx]``, rebuilt from ``enration``, ``pt`` and ``mass`` (with the jet's
        eta sign) where ``sVIdx`` is -1. Empty: no SVs are read

    Returns
    -------
    JetConstituents

    Shapes:
        events ``(n_events,)`` -> jets ``(n_jets,)``, cands ``(n_jets, var)``,
        event_index / jet_index / valid ``(n_jets,)`` over the kept jets
    """
    flavour = flavour or detect_flavour(events)
    if flavour not in FLAVOURS:
        msg = f"unknown constituent flavour {flavour!r}; supported: {sorted(FLAVOURS)}"
        raise ValueError(msg)
    assoc_name, idx_name, cand_name = FLAVOURS[flavour]
    fatjet = events["FatJet"]
    assoc = events[assoc_name]
    cand = events[cand_name]
    cand_fields = tuple(dict.fromkeys(str(f) for f in cand_fields))
    jet_fields = tuple(dict.fromkeys(str(f) for f in jet_fields))
    extra_cand = [f for f in cand_fields if f not in CAND_ALWAYS and f not in _CAND_EXTRAS]
    extra_jet = [f for f in jet_fields if f not in JET_ALWAYS and f not in _JET_EXTRAS]
    # asked-for fields that must be in the file (charge can be inferred from pdgId)
    cand_have = set(ak.fields(cand))
    assoc_have = set(ak.fields(assoc)) - {"jetIdx", idx_name}
    from_rows = [f for f in extra_cand if f not in cand_have and f in assoc_have]
    cand_need = [f for f in cand_fields if f not in ("pt", "eta", "phi", "mass", "energy", "charge", "puppiWeight")
                 and f not in from_rows]
    if "charge" in cand_fields and not ({"charge", "pdgId"} & cand_have):
        cand_need.append("charge")
    for coll, name, need in (
        (fatjet, "FatJet", ("pt", "eta", "phi", "mass")),
        (assoc, assoc_name, ("jetIdx", idx_name)),
        (cand, cand_name, ("pt", "eta", "phi", "mass")),
    ):
        missing = [f for f in need if f not in ak.fields(coll)]
        if missing:
            msg = f"missing branch(es) {', '.join(f'{name}_{m}' for m in missing)} needed for {flavour} constituents"
            raise MissingBranchError(msg)
    for coll, name, asked in (
        (cand, cand_name, cand_need),
        (fatjet, "FatJet", [f for f in jet_fields if f not in JET_ALWAYS]),
    ):
        missing = [f for f in asked if f not in ak.fields(coll)]
        if missing:
            msg = (
                f"the model's input spec reads {', '.join(f'{name}_{m}' for m in missing)}, which this "
                f"{flavour} file lacks (its {name} branches: {sorted(ak.fields(coll))}); use a file with "
                f"these branches or a model whose spec does not need them"
            )
            raise MissingBranchError(msg)

    n_jet_ev = np.asarray(ak.to_numpy(ak.num(fatjet.pt, axis=1)), dtype=np.int64)
    n_cand_ev = np.asarray(ak.to_numpy(ak.num(cand.pt, axis=1)), dtype=np.int64)
    n_row_ev = np.asarray(ak.to_numpy(ak.num(assoc.jetIdx, axis=1)), dtype=np.int64)
    jet_off = _offsets(n_jet_ev)
    cand_off = _offsets(n_cand_ev)
    row_event = np.repeat(np.arange(len(n_row_ev)), n_row_ev)
    row_jet = _flat(assoc.jetIdx, np.int64)
    row_cand = _flat(assoc[idx_name], np.int64)
    bad = (row_jet < 0) | (row_jet >= n_jet_ev[row_event]) | (row_cand < 0) | (row_cand >= n_cand_ev[row_event])
    n_bad = int(bad.sum())
    if n_bad and on_invalid == "raise":
        first = int(np.flatnonzero(bad)[0])
        msg = (
            f"{n_bad} {assoc_name} association row(s) point outside FatJet/{cand_name}: first in event "
            f"{int(row_event[first])} (jetIdx={int(row_jet[first])} of {int(n_jet_ev[row_event[first]])} jets, "
            f"{idx_name}={int(row_cand[first])} of {int(n_cand_ev[row_event[first]])} candidates)"
        )
        raise InvalidAssociationError(msg)
    good = ~bad
    row_ids = np.flatnonzero(good)  # association rows kept (for per-row fields)
    row_event, row_jet, row_cand = row_event[good], row_jet[good], row_cand[good]
    gjet = jet_off[row_event] + row_jet  # global jet index of each row
    gcand = cand_off[row_event] + row_cand

    n_jets_total = int(jet_off[-1])
    jfields = ak.fields(fatjet)
    j_pt, j_eta = _flat(fatjet.pt), _flat(fatjet.eta)
    j_phi, j_mass = wrap_phi(_flat(fatjet.phi)), _flat(fatjet.mass)
    jcols: dict[str, np.ndarray] = {
        "pt": j_pt,
        "eta": j_eta,
        "phi": j_phi,
        "mass": j_mass,
        "energy": _energy(j_pt, j_eta, j_mass),
    }
    for extra in (*_JET_EXTRAS, *extra_jet):
        if extra in jfields:
            jcols[extra] = _flat(fatjet[extra])
    jets_all = ak.zip(jcols, depth_limit=1)
    event_index = np.repeat(np.arange(len(n_jet_ev)), n_jet_ev)
    jet_index = np.arange(n_jets_total) - jet_off[event_index]

    if jet_mask is None:
        keep = np.ones(n_jets_total, dtype=bool)
    else:
        keep = np.asarray(ak.to_numpy(ak.flatten(ak.fill_none(jet_mask, False), axis=None)), dtype=bool)
        if keep.shape[0] != n_jets_total:
            msg = f"jet_mask has {keep.shape[0]} entries for {n_jets_total} fat jets"
            raise ValueError(msg)
    if select is not None:
        keep = keep & np.asarray(select(jets_all), dtype=bool)

    # only the constituents of kept jets are gathered (memory scales with the selection)
    row_keep = keep[gjet]
    gjet, gcand = gjet[row_keep], gcand[row_keep]
    row_ids = row_ids[row_keep]

    cfields = ak.fields(cand)
    c_pt = _flat_at(cand.pt, gcand)
    c_eta = _flat_at(cand.eta, gcand)
    c_phi = wrap_phi(_flat_at(cand.phi, gcand))
    c_mass = _flat_at(cand.mass, gcand)
    c_charge = _flat_at(cand.charge, gcand) if "charge" in cfields else np.zeros_like(c_pt)
    c_pdg = _flat_at(cand.pdgId, gcand) if "pdgId" in cfields else np.zeros_like(c_pt)
    if "charge" not in cfields and "pdgId" in cfields:
        # NanoAOD v15 PFCand has no charge: infer it from the particle type
        apdg = np.abs(c_pdg)
        sign = np.sign(c_pdg)
        c_charge = np.where(np.isin(apdg, (11, 13)), -sign, np.where(np.isin(apdg, (211, 321, 2212)), sign, 0.0))

    # rows -> jets: stable sort by (jet, -pt)
    order = np.lexsort((-np.nan_to_num(c_pt, nan=-np.inf), gjet))
    counts = np.bincount(gjet, minlength=n_jets_total)
    cols: dict[str, np.ndarray] = {
        "pt": c_pt[order],
        "eta": c_eta[order],
        "phi": c_phi[order],
        "mass": c_mass[order],
        "energy": _energy(c_pt, c_eta, c_mass)[order],
        "charge": c_charge[order],
        "pdgId": c_pdg[order],
    }
    for extra in (*_CAND_EXTRAS, *extra_cand):
        if extra in cfields:
            cols[extra] = _flat_at(cand[extra], gcand)[order]
        elif extra in from_rows:
            cols[extra] = _flat_at(assoc[extra], row_ids)[order]
        elif extra == "puppiWeight":
            cols[extra] = np.ones(len(order))
            _note_no_puppi(cand_name)
    cands_all = ak.unflatten(ak.zip(cols, depth_limit=1), counts)

    finite_jet = np.isfinite(j_pt) & np.isfinite(j_eta) & np.isfinite(j_phi) & np.isfinite(j_mass)
    cand_finite = np.isfinite(cols["pt"]) & np.isfinite(cols["eta"]) & np.isfinite(cols["phi"]) & np.isfinite(cols["energy"])
    # a jet is non-finite if any of its constituents is
    n_bad_c = np.bincount(np.repeat(np.arange(n_jets_total), counts)[~cand_finite], minlength=n_jets_total)
    finite = finite_jet & (n_bad_c == 0)
    has_cands = counts > 0
    valid = finite & has_cands
    result_counts = {
        "jets": int(keep.sum()),
        "nonfinite": int((keep & ~finite).sum()),
        "no_constituents": int((keep & finite & ~has_cands).sum()),
        "bad_association_rows": n_bad,
        "nonfinite_rejected": int((~keep & ~finite_jet).sum()),
    }
    sv_fields = tuple(dict.fromkeys(str(f) for f in sv_fields))
    svs = _fatjet_svs(events, sv_fields, jet_off, n_jets_total, jcols)[keep] if sv_fields else None
    return JetConstituents(
        jets=jets_all[keep],
        cands=cands_all[keep],
        event_index=event_index[keep],
        jet_index=jet_index[keep],
        valid=valid[keep],
        flavour=flavour,
        counts=result_counts,
        svs=svs,
    )


_NOTED: set[str] = set()


def _note_no_puppi(collection: str) -> None:
    """Log once per process that candidates without ``puppiWeight`` get weight 1."""
    if collection in _NOTED:
        return
    _NOTED.add(collection)
    logging.getLogger("hepml_coffea.data.constituents").warning(
        "%s has no puppiWeight branch: every candidate gets PUPPI weight 1 (exact for hepml_coffea's generated "
        "samples, which have no pileup; NanoAOD v15 PFCand stores none)", collection)


def _fatjet_svs(events: Any, fields: tuple[str, ...], jet_off: np.ndarray, n_jets: int,
                jcols: dict[str, np.ndarray]) -> ak.Array:
    """Secondary vertices of every fat jet, ``(n_jets, var)`` records of ``fields`` (file order).

    Shapes:
        -> ``(n_jets, var)``
    """
    have = set(ak.fields(events))
    if "FatJetSVs" not in have:
        msg = ("the model reads secondary vertices (sv_* inputs) but the file has no FatJetSVs collection "
               "(PFNano's FatJetSVs_*); use a PFNano file with SVs or a model without sv inputs")
        raise MissingBranchError(msg)
    svc = events["FatJetSVs"]
    sfields = set(ak.fields(svc))
    missing = [f for f in ("jetIdx", *fields) if f not in sfields and f != "eta"]
    if missing:
        msg = f"the model reads FatJetSVs_{', FatJetSVs_'.join(missing)}, which this file lacks (it has {sorted(sfields)})"
        raise MissingBranchError(msg)
    n_ev = np.asarray(ak.to_numpy(ak.num(svc.jetIdx, axis=1)), dtype=np.int64)
    row_event = np.repeat(np.arange(len(n_ev)), n_ev)
    row_jet = _flat(svc.jetIdx, np.int64)
    n_jet_ev = np.diff(jet_off)
    ok = (row_jet >= 0) & (row_jet < n_jet_ev[row_event])
    gjet = jet_off[row_event[ok]] + row_jet[ok]
    order = np.argsort(gjet, kind="stable")
    cols: dict[str, np.ndarray] = {}
    for f in fields:
        if f == "eta":
            vals = _sv_eta(events, svc, row_event, jet_off, jcols)[ok]
        else:
            vals = _flat(svc[f])[ok]
        cols[f] = vals[order]
    counts = np.bincount(gjet, minlength=n_jets)
    if not cols:
        cols["jetIdx"] = row_jet[ok][order].astype(np.float64)
    return ak.unflatten(ak.zip(cols, depth_limit=1), counts)


def _sv_eta(events: Any, svc: Any, row_event: np.ndarray, jet_off: np.ndarray,
            jcols: dict[str, np.ndarray]) -> np.ndarray:
    """Per FatJetSVs row: ``SV_eta[sVIdx]``; where ``sVIdx`` is -1, rebuilt from the SV's energy
    ``enration * E_jet`` and its pt and mass (``|eta| = arccosh(p / pt)``, the jet's sign)."""
    sfields = set(ak.fields(svc))
    need = [f for f in ("sVIdx", "enration", "pt", "mass") if f not in sfields]
    if need:
        msg = f"SV eta needs FatJetSVs_{', FatJetSVs_'.join(need)}, which this file lacks"
        raise MissingBranchError(msg)
    sv_idx = _flat(svc.sVIdx, np.int64)
    out = np.full(len(sv_idx), np.nan)
    if "SV" in set(ak.fields(events)) and "eta" in set(ak.fields(events["SV"])):
        n_sv = np.asarray(ak.to_numpy(ak.num(events["SV"].eta, axis=1)), dtype=np.int64)
        sv_off = _offsets(n_sv)
        has = (sv_idx >= 0) & (sv_idx < n_sv[row_event])
        out[has] = _flat(events["SV"].eta)[sv_off[row_event[has]] + sv_idx[has]]
    rebuild = np.isnan(out)
    if rebuild.any():
        row_jet = _flat(svc.jetIdx, np.int64)
        gj = np.clip(jet_off[row_event] + row_jet, 0, max(0, len(jcols["energy"]) - 1))
        e = _flat(svc.enration) * jcols["energy"][gj] if len(jcols["energy"]) else np.zeros(len(sv_idx))
        pt, m = _flat(svc.pt), _flat(svc.mass)
        p = np.sqrt(np.maximum(e * e - m * m, 0.0))
        abs_eta = np.arccosh(np.maximum(p / np.maximum(pt, 1e-9), 1.0))
        sign = np.where(jcols["eta"][gj] > 0, 1.0, -1.0) if len(jcols["eta"]) else 1.0
        out[rebuild] = (sign * abs_eta)[rebuild]
    return out
