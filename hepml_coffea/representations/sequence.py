"""Padded constituent sequences (LSTM / PFN / ParticleNet features).

One code path serves sequences and point clouds: constituents are flattened
once, features are computed on the flat numpy arrays
(:mod:`~hepml_coffea.representations.features`), and a numba kernel gathers
the ``P`` hardest constituents of each jet into the padded output.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from . import _kernels
from .features import FeatureContext, feature_matrix
from .spec import InputSpec, VarSpec

__all__ = ["build_sequence"]


@dataclass
class _Flat:
    ctx: FeatureContext
    counts: np.ndarray  # (n_jets,) int64
    starts: np.ndarray  # (n_jets,) int64, into the flat arrays
    order: np.ndarray  # (n_const,) int64 or (0,) when already sorted
    use_order: bool


def _flatten(cands: ak.Array, jets: ak.Array, sort_by_pt: bool = True, sort_by: str | None = None) -> _Flat:
    """Flatten ``cands`` over jets and work out the ordering: decreasing ``pt`` (none when
    not ``sort_by_pt``), or decreasing feature ``sort_by`` (e.g. ``puppiWeight * pt``)."""
    cands = ak.Array(cands) if not isinstance(cands, ak.Array) else cands
    jets = ak.Array(jets) if not isinstance(jets, ak.Array) else jets
    if len(cands) != len(jets):
        raise ValueError(f"cands has {len(cands)} jets but jets has {len(jets)}")
    counts = np.asarray(ak.to_numpy(ak.num(cands, axis=1)), dtype=np.int64)
    flat = ak.flatten(cands, axis=1)
    ctx = FeatureContext(flat, jets, counts)
    starts = ctx.starts
    if sort_by is not None:
        pt = np.asarray(ctx.feature(sort_by), dtype=np.float64)
    else:
        pt = ctx.cand("pt") if sort_by_pt and ctx.has_cand("pt") else None
    if pt is None or ctx.n_constituents == 0 or _kernels.is_sorted_desc(pt, starts, counts):
        order, use_order = np.zeros(0, dtype=np.int64), False
    else:
        order, use_order = _kernels.argsort_desc_per_jet(pt, starts, counts), True
    return _Flat(ctx, counts, starts, order, use_order)


def _transform_params(varspecs: list[VarSpec]) -> tuple[np.ndarray, ...]:
    center = np.array([v.center for v in varspecs], dtype=np.float64)
    scale = np.array([v.scale for v in varspecs], dtype=np.float64)
    cmin = np.array([-np.inf if v.clip_min is None else v.clip_min for v in varspecs], dtype=np.float64)
    cmax = np.array([np.inf if v.clip_max is None else v.clip_max for v in varspecs], dtype=np.float64)
    pad = np.array([v.pad_value for v in varspecs], dtype=np.float64)
    return center, scale, cmin, cmax, pad


def _padded(flat: _Flat, varspecs: list[VarSpec], P: int, transform: bool = True,
            pad_mode: str = "constant") -> np.ndarray:
    """``(n_jets, len(varspecs), P)`` float32 padded feature block (``pad_mode``: see
    :data:`~hepml_coffea.representations.spec.PAD_MODES`)."""
    n_jets = len(flat.counts)
    names = [v.name for v in varspecs]
    F = feature_matrix(flat.ctx, names, np.float32)
    out = np.empty((n_jets, len(varspecs), P), dtype=np.float32)
    center, scale, cmin, cmax, pad = _transform_params(varspecs)
    identity = (center == 0) & (scale == 1) & np.isinf(cmin) & np.isinf(cmax)
    active = ~identity if transform else np.zeros(len(varspecs), dtype=np.bool_)
    _kernels.fill_padded(
        F, flat.starts, flat.counts, flat.order, flat.use_order, P,
        center, scale, cmin, cmax, pad, active, out,
    )
    if pad_mode == "wrap":
        _wrap(out, flat.counts)
    return out


def _wrap(out: np.ndarray, counts: np.ndarray) -> None:
    """weaver's ``pad_mode: wrap`` in place: slot ``p >= n`` of a jet with ``0 < n < P``
    entries takes entry ``p % n`` (already transformed, as weaver transforms before padding).

    Shapes:
        out ``(N, C, P)``, counts ``(N,)``
    """
    P = out.shape[-1]
    short = np.flatnonzero((counts > 0) & (counts < P))
    if not len(short):
        return
    n = counts[short][:, None]
    idx = np.arange(P)[None, :] % n  # (n_short, P)
    out[short] = np.take_along_axis(out[short], np.broadcast_to(idx[:, None, :], out[short].shape), axis=2)


def _mask_lengths(counts: np.ndarray, P: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.minimum(counts, P).astype(np.int64)
    mask = (np.arange(P)[None, :] < lengths[:, None]).astype(np.float32)[:, None, :]
    return mask, lengths


def build_sequence(cands: ak.Array, jets: ak.Array, spec: InputSpec) -> dict[str, np.ndarray]:
    """Padded per-constituent feature sequences.

    Parameters
    ----------
    cands
        ``n_jets * var * {pt, eta, phi, mass, energy, charge, pdgId, ...}``, plus
        every branch the spec's features read (:meth:`InputSpec.required_cand_fields`).
        Need not be sorted: the ``P`` hardest (by pt) are kept, in decreasing pt.
    jets
        ``n_jets`` records with ``pt, eta, phi, mass, energy``.
    spec
        :class:`InputSpec`; uses ``features`` and ``length``.

    Returns
    -------
    dict
        ``features``: ``(n_jets, C, P)`` float32, transformed real entries,
        ``pad_value`` on padding; ``mask``: ``(n_jets, 1, P)`` float32 (1 real,
        0 pad); ``lengths``: ``(n_jets,)`` int64, constituent count capped at P.

    Shapes:
        cands ``(N, var)`` records, jets ``(N,)`` records ->
        features ``(N, C, P)``, mask ``(N, 1, P)``, lengths ``(N,)``,
        with ``C = len(spec.features)`` and ``P = spec.length``.
    """
    flat = _flatten(cands, jets)
    P = spec.length
    mask, lengths = _mask_lengths(flat.counts, P)
    return {"features": _padded(flat, spec.features, P, pad_mode=spec.pad_mode), "mask": mask, "lengths": lengths}
