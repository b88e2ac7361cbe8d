"""Training data: generated files -> selected, labelled jets, split by event number.

Reads through exactly the code the processor uses at inference
(:func:`hepml_coffea.data.constituents.fatjet_constituents`, :class:`Selection`,
:func:`hepml_coffea.data.truth.top_labels`), then the representations are built by
:func:`hepml_coffea.representations.build` from the spec saved with the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.data.io import read_arrays
from hepml_coffea.representations import InputSpec, VarSpec
from hepml_coffea.selection import Selection
from hepml_coffea.data.truth import TOP, top_labels

__all__ = ["JetDataset", "load_dataset", "split_of", "standard_spec", "TRAIN", "VAL", "TEST"]

TRAIN, VAL, TEST = 0, 1, 2

#: fixed feature normalisation shared by every particle-based tagger (weaver's
#: top-tagging convention: (x - centre) * scale, clipped to [-5, 5]; deta/dphi raw)
_STANDARD_VARS = [
    VarSpec("deta"),
    VarSpec("dphi"),
    VarSpec("log_pt", center=1.7, scale=0.7, clip_min=-5.0, clip_max=5.0),
    VarSpec("log_e", center=2.0, scale=0.7, clip_min=-5.0, clip_max=5.0),
    VarSpec("log_pt_rel", center=-4.7, scale=0.7, clip_min=-5.0, clip_max=5.0),
    VarSpec("log_e_rel", center=-4.7, scale=0.7, clip_min=-5.0, clip_max=5.0),
    VarSpec("dR", center=0.2, scale=4.0, clip_min=-5.0, clip_max=5.0),
]


def standard_spec(kind: str, length: int = 100) -> InputSpec:
    """The input spec the shipped taggers use for ``kind`` (sequence/pointcloud/image)."""
    if kind == "image":
        return InputSpec(kind="image", npix=40, extent=0.8, channels=["pt"])
    return InputSpec(kind=kind, length=length, features=[VarSpec(**v.to_dict()) for v in _STANDARD_VARS])  # type: ignore[arg-type]


def split_of(event: np.ndarray) -> np.ndarray:
    """Deterministic split by event number: 60 % train, 20 % validation, 20 % test."""
    r = np.asarray(event, dtype=np.uint64) % np.uint64(10)
    return np.where(r < 6, TRAIN, np.where(r < 8, VAL, TEST)).astype(np.int8)


@dataclass
class JetDataset:
    """Selected jets of both classes with labels (1 = top, 0 = QCD) and split."""

    jets: ak.Array
    cands: ak.Array
    labels: np.ndarray
    event: np.ndarray
    split: np.ndarray
    #: the selection both classes passed (recorded as the model's training domain)
    selection: Selection | None = None
    #: (n,) a teacher tagger's score of each jet (NaN where it gave none), for distillation
    teacher: np.ndarray | None = None
    #: which teacher (name, hash) and where its scores are cached
    teacher_info: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> JetDataset:
        return JetDataset(self.jets[mask], self.cands[mask], self.labels[mask], self.event[mask], self.split[mask],
                          self.selection, None if self.teacher is None else self.teacher[mask], self.teacher_info)

    def observables(self) -> tuple[np.ndarray, np.ndarray]:
        """(msoftdrop, tau32) of every jet, computed as at inference
        (:func:`hepml_coffea.representations.observables.build_observables`: tau32 is NaN
        where tau2 <= 0)."""
        from hepml_coffea.representations.observables import build_observables

        obs = build_observables(self.jets)
        return obs["msoftdrop"], obs["tau32"]


def _load(files: Sequence[str | os.PathLike[str]], want_top: bool, selection: Selection,
          cand_fields: Sequence[str] = (), jet_fields: Sequence[str] = (), teacher: Any = None) -> JetDataset:
    jets, cands, events, teach = [], [], [], []
    if teacher is not None:  # the teacher's inputs may read more branches
        cand_fields = tuple(sorted(set(cand_fields) | set(teacher.cand_fields)))
        jet_fields = tuple(sorted(set(jet_fields) | set(teacher.jet_fields)))
    for f in files:
        ev = read_arrays(f)
        jc = fatjet_constituents(ev, cand_fields=cand_fields, jet_fields=jet_fields, sv_fields=(
            teacher.sv_fields if teacher is not None else ()))
        keep = selection.mask(jc) & jc.valid
        if want_top:
            lab = top_labels(ev, jc.event_index, ak.to_numpy(jc.jets.eta), ak.to_numpy(jc.jets.phi))
            keep &= lab == TOP
        sel = jc.select(keep)
        # packed copies: a selection keeps the whole file's candidate buffers alive (5x the memory:
        # the 400k-jet training set took 12 GB instead of ~2.5 GB)
        jets.append(ak.to_packed(sel.jets))
        cands.append(ak.to_packed(sel.cands))
        events.append(np.asarray(ak.to_numpy(ev.event), dtype=np.uint64)[sel.event_index])
        if teacher is not None:
            from hepml_coffea.training.teacher import cached_teacher_scores

            teach.append(cached_teacher_scores(f, sel, events[-1], teacher, want_top, selection))
    if not jets:
        msg = "no input files given"
        raise ValueError(msg)
    j = ak.concatenate(jets)
    c = ak.concatenate(cands)
    e = np.concatenate(events)
    lab = np.full(len(e), 1 if want_top else 0, dtype=np.int64)
    t = np.concatenate(teach) if teacher is not None else None
    info = None if teacher is None else {"name": teacher.taggers[0].name, "hash": teacher.taggers[0].hash}
    return JetDataset(j, c, lab, e, split_of(e), selection, t, info)


def load_dataset(
    signal: Sequence[str | os.PathLike[str]],
    background: Sequence[str | os.PathLike[str]],
    selection: Selection | None = None,
    max_jets: int = 0,
    cand_fields: Sequence[str] = (),
    jet_fields: Sequence[str] = (),
    teacher: str | None = None,
) -> JetDataset:
    """Truth-matched top jets from ``signal`` files and all jets from ``background``.

    Both classes pass ``selection`` (default 550 < pT < 650 GeV, |eta| < 2) and have
    finite kinematics and at least one constituent. ``max_jets`` > 0 caps each class
    (the first jets in file order, so the cap is deterministic). ``cand_fields`` /
    ``jet_fields``: extra candidate / jet branches to carry, e.g. an artifact spec's
    ``required_cand_fields()`` (a file without one raises
    :class:`~hepml_coffea.data.constituents.MissingBranchError` naming it).
    """
    selection = selection or Selection()
    tagger = None
    if teacher is not None:
        from hepml_coffea.scoring import FatJetTagger

        tagger = FatJetTagger([teacher], device="cpu", domain=False)
    s = _load(signal, True, selection, cand_fields, jet_fields, tagger)
    b = _load(background, False, selection, cand_fields, jet_fields, tagger)
    if max_jets:
        s = s.subset(np.arange(len(s)) < max_jets)
        b = b.subset(np.arange(len(b)) < max_jets)
    return JetDataset(
        ak.concatenate([s.jets, b.jets]),
        ak.concatenate([s.cands, b.cands]),
        np.concatenate([s.labels, b.labels]),
        np.concatenate([s.event, b.event]),
        np.concatenate([s.split, b.split]),
        selection,
        None if tagger is None else np.concatenate([s.teacher, b.teacher]),
        s.teacher_info,
    )
