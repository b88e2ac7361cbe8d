"""Top-jet truth labels from the NanoAOD ``GenPart`` record.

A fat jet is a *top jet* when a hard-process top quark that decays hadronically and
its three decay quarks (the b and the two quarks of the W) all lie within
dR < 0.8 of the jet axis: the definition of the top-tagging reference sample
(Kasieczka et al., SciPost Phys. 7, 014 (2019)).

Decay chains are followed through ``genPartIdxMother`` the way NanoAOD stores them:
copies of the same particle (same pdgId) are collapsed to the first copy, and the
*distinct parent* of a particle is the mother of its first copy. Works on our
generated files and on CMS NanoAOD (e.g. ``nano_tt_v15.root``).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from hepml_coffea.data.geometry import delta_r, offsets

__all__ = ["NOT_TOP", "TOP", "UNKNOWN", "hadronic_tops", "top_labels"]

TOP, NOT_TOP, UNKNOWN = 1, 0, -1


def _first_copy(mother: np.ndarray, pdg: np.ndarray) -> np.ndarray:
    """Index of the first copy in each particle's same-pdgId chain (global indices)."""
    root = np.arange(len(pdg))
    for _ in range(100):
        m = mother[root]
        step = (m >= 0) & (pdg[np.maximum(m, 0)] == pdg[root])
        if not step.any():
            break
        root = np.where(step, m, root)
    return root


def hadronic_tops(genpart: Any) -> dict[str, np.ndarray]:
    """Find hadronically decaying tops and their decay quarks in each event.

    Parameters
    ----------
    genpart : (events, var) records with ``pt, eta, phi, pdgId, genPartIdxMother``

    Returns
    -------
    dict of flat arrays over found tops: ``event``, and ``eta``/``phi`` of the
    ``top`` (its last copy), ``b``, ``q1``, ``q2``.
    """
    n_ev = np.asarray(ak.to_numpy(ak.num(genpart.pdgId, axis=1)), dtype=np.int64)
    off = offsets(n_ev)
    event = np.repeat(np.arange(len(n_ev)), n_ev)
    pdg = np.asarray(ak.to_numpy(ak.flatten(genpart.pdgId)), dtype=np.int64)
    mloc = np.asarray(ak.to_numpy(ak.flatten(genpart.genPartIdxMother)), dtype=np.int64)
    eta = np.asarray(ak.to_numpy(ak.flatten(genpart.eta)), dtype=np.float64)
    phi = np.asarray(ak.to_numpy(ak.flatten(genpart.phi)), dtype=np.float64)
    mother = np.where((mloc >= 0) & (mloc < n_ev[event]), mloc + off[event], -1)
    apdg = np.abs(pdg)
    root = _first_copy(mother, pdg)
    idx = np.arange(len(pdg))
    parent = mother[root]  # distinct parent
    parent_pdg = np.where(parent >= 0, apdg[np.maximum(parent, 0)], 0)
    first = root == idx

    # each top chain identified by its first copy; kinematics of the last copy
    is_top = apdg == 6
    has_top_child = np.zeros(len(pdg), dtype=bool)
    child_of = mother[is_top & (mother >= 0)]
    same = apdg[child_of] == 6 if child_of.size else np.zeros(0, dtype=bool)
    has_top_child[child_of[same]] = True
    top_last = np.flatnonzero(is_top & ~has_top_child)
    top_id = root[top_last]

    b = np.flatnonzero(first & (apdg == 5) & (parent_pdg == 6))
    b_top = root[parent[b]]
    q = np.flatnonzero(first & (apdg >= 1) & (apdg <= 5) & (parent_pdg == 24))
    w_of_q = root[parent[q]]
    w_parent = mother[w_of_q]
    q_ok = (w_parent >= 0) & (apdg[np.maximum(w_parent, 0)] == 6)
    q, q_top = q[q_ok], root[w_parent[q_ok]]

    def lookup(keys: np.ndarray, owners: np.ndarray, nth: int) -> np.ndarray:
        order = np.argsort(owners, kind="stable")
        s = owners[order]
        start = np.searchsorted(s, keys, "left")
        end = np.searchsorted(s, keys, "right")
        ok = end - start > nth
        out = np.full(len(keys), -1)
        out[ok] = (order[np.minimum(start + nth, len(s) - 1)])[ok] if len(s) else -1
        return out

    ib = lookup(top_id, b_top, 0)
    iq1 = lookup(top_id, q_top, 0)
    iq2 = lookup(top_id, q_top, 1)
    ok = (ib >= 0) & (iq1 >= 0) & (iq2 >= 0)
    t, ib, iq1, iq2 = top_last[ok], b[ib[ok]], q[iq1[ok]], q[iq2[ok]]
    return {
        "event": event[t],
        "top_eta": eta[t], "top_phi": phi[t],
        "b_eta": eta[ib], "b_phi": phi[ib],
        "q1_eta": eta[iq1], "q1_phi": phi[iq1],
        "q2_eta": eta[iq2], "q2_phi": phi[iq2],
    }


def top_labels(
    events: Any,
    event_index: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    radius: float = 0.8,
    require_quarks: bool = True,
) -> np.ndarray:
    """Truth label per jet: :data:`TOP`, :data:`NOT_TOP`, or :data:`UNKNOWN` (no GenPart).

    Parameters
    ----------
    events : NanoEvents (or records) with a ``GenPart`` collection
    event_index, jet_eta, jet_phi : flat per-jet arrays (event index within ``events``)
    radius : matching radius (0.8), in ``delta_r`` of :mod:`hepml_coffea.data.geometry`
    require_quarks : a top jet must contain the top *and* its b and both W-decay quarks
        (fully contained, the default); ``False`` asks for the top alone (top-only matching)

    Returns
    -------
    np.ndarray
        int8 label per jet.

    Shapes:
        ``(n_jets,)`` x 3 -> ``(n_jets,)``
    """
    event_index = np.asarray(event_index, dtype=np.int64)
    if "GenPart" not in ak.fields(events):
        return np.full(len(event_index), UNKNOWN, dtype=np.int8)
    tops = hadronic_tops(events["GenPart"])
    labels = np.full(len(event_index), NOT_TOP, dtype=np.int8)
    if len(tops["event"]) == 0 or len(event_index) == 0:
        return labels
    jet_eta = np.asarray(jet_eta, dtype=np.float64)
    jet_phi = np.asarray(jet_phi, dtype=np.float64)
    order = np.argsort(tops["event"], kind="stable")
    ev_sorted = tops["event"][order]
    start = np.searchsorted(ev_sorted, event_index, "left")
    end = np.searchsorted(ev_sorted, event_index, "right")
    for k in range(int((end - start).max(initial=0))):
        has = end - start > k
        t = order[np.minimum(start + k, len(order) - 1)]
        inside = np.ones(len(event_index), dtype=bool)
        for obj in ("top", "b", "q1", "q2") if require_quarks else ("top",):
            inside &= delta_r(jet_eta - tops[f"{obj}_eta"][t], jet_phi - tops[f"{obj}_phi"][t]) < radius
        labels[has & inside] = TOP
    return labels
