"""Named input blocks over constituents and secondary vertices (weaver data configs).

A ``blocks`` :class:`~hepml_coffea.representations.spec.InputSpec` lists the model's
inputs by name, as weaver's ``inputs:`` section does (``pf_points``, ``pf_features``,
``pf_mask``, ``sv_features``, ...). Each block reads one collection per jet (``pf``:
the pT-sorted constituents; ``sv``: the jet's secondary vertices), computes its variables
with the same feature machinery as sequences and point clouds, transforms them
(``clip((x - center) * scale)``) and pads them to the block's length, ``constant`` or
``wrap`` (weaver's two modes). A mask is a block whose variable is ``ones_like(pt)``.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .sequence import _flatten, _Flat, _padded
from .spec import InputSpec

__all__ = ["build_blocks"]


def build_blocks(
    cands: ak.Array, jets: ak.Array, spec: InputSpec, svs: ak.Array | None = None
) -> dict[str, np.ndarray]:
    """Every block of a ``blocks`` spec, keyed by the model's input names.

    Constituents are ordered by decreasing ``spec.sort_by`` (default pT) before the first
    ``P`` are kept; secondary vertices keep the file's order.

    Parameters
    ----------
    cands
        ``(N, var)`` constituent records with :meth:`InputSpec.required_cand_fields`.
    jets
        ``(N,)`` jet records with :meth:`InputSpec.required_jet_fields`.
    spec
        A ``blocks`` :class:`InputSpec`.
    svs
        ``(N, var)`` secondary-vertex records with :meth:`InputSpec.required_sv_fields`
        (needed only when a block reads the ``sv`` collection).

    Returns
    -------
    dict
        block name -> ``(N, C, P)`` float32; plus ``"lengths"`` ``(N,)`` int64: the
        constituents per jet capped at the mask block's length (when there is one).

    Shapes:
        cands ``(N, var)``, jets ``(N,)``, svs ``(N, var)`` -> each block ``(N, C_b, P_b)``.
    """
    if spec.kind != "blocks":
        raise ValueError(f"build_blocks needs a 'blocks' spec, got kind {spec.kind!r}")
    flats: dict[str, _Flat] = {}
    out: dict[str, np.ndarray] = {}
    for block in spec.blocks:
        flat = flats.get(block.collection)
        if flat is None:
            if block.collection == "sv":
                if svs is None:
                    raise ValueError(f"block {block.name!r} reads secondary vertices but none were given (svs=None)")
                flat = _flatten(svs, jets, sort_by_pt=False)
            else:
                flat = _flatten(cands, jets, sort_by=spec.sort_by)
            flats[block.collection] = flat
        arr = _padded(flat, block.vars, block.length, pad_mode=block.pad_mode)
        if block.nan_to_num:
            np.nan_to_num(arr, copy=False)
        out[block.name] = arr
    if spec.mask_block is not None:
        P = out[spec.mask_block].shape[-1]
        out["lengths"] = np.minimum(flats["pf"].counts, P).astype(np.int64)
    return out
