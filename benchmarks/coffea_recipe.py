"""What a user following coffea's documentation writes: a processor that calls a
``coffea.ml_tools.torch_wrapper`` subclass per chunk.

Used by ``benchmarks/run_all.py`` (section 3) as the reference our inference path is
compared with.  Per chunk:

* fat jets selected with the same cuts as :class:`hepml_coffea.Selection`
  (550 < pT < 650 GeV, |eta| < 2, at least one constituent), constituents through
  coffea's own cross-reference ``FatJet.constituents.pf`` (PFNanoAODSchema);
* the inputs built with coffea's documented recipe inside ``prepare_awkward``: one
  awkward expression per feature, the same ``(x - center) * scale`` and clipping as the
  model's input spec, then ``ak.fill_none(ak.pad_none(x, P, clip=True), 0)`` and
  ``ak.concatenate([x[:, np.newaxis, :] ...], axis=1)`` per input block;
* the TorchScript model called through the wrapper (the model is loaded lazily by each
  copy of the wrapper: the Runner ships the processor pickled, so every chunk's copy
  loads it again; :attr:`RecipeWrapper.loads` counts the loads in this process);
* softmax of the logits -> a score histogram; the per-jet scores with their
  (dataset, entry, jet index) keys are returned too, for the equality check.

The generated files store each jet's constituents in decreasing pT (as NanoAOD does),
so no sorting is needed to reproduce the "P hardest constituents" of our builder.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.ml_tools.torch_wrapper import torch_wrapper


def _wrap(dphi: Any) -> Any:
    return np.mod(dphi + np.pi, 2 * np.pi) - np.pi


def _feature(name: str, jets: Any, cands: Any) -> Any:
    """The raw per-constituent features of hepml_coffea's standard spec, coffea style."""
    deta = cands.eta - jets.eta
    dphi = _wrap(cands.phi - jets.phi)
    table = {
        "deta": lambda: deta,
        "dphi": lambda: dphi,
        "log_pt": lambda: np.log(cands.pt),
        "log_e": lambda: np.log(cands.energy),
        "log_pt_rel": lambda: np.log(cands.pt / jets.pt),
        "log_e_rel": lambda: np.log(cands.energy / jets.energy),
        "dR": lambda: np.sqrt(deta**2 + dphi**2),
    }
    if name not in table:
        msg = f"feature {name!r} not in the recipe"
        raise KeyError(msg)
    return table[name]()


class RecipeWrapper(torch_wrapper):  # type: ignore[misc]
    """``torch_wrapper`` for a weaver-style ParticleNet / PFN TorchScript model."""

    loads = 0  # model loads in this process (class-wide counter)

    def __init__(self, torch_jit: str, spec: dict[str, Any]) -> None:
        super().__init__(torch_jit)
        self.spec = spec

    def _create_model(self) -> Any:
        RecipeWrapper.loads += 1
        return super()._create_model()

    def prepare_awkward(self, jets: Any, cands: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        P = int(self.spec["length"])

        def pad(x: Any) -> Any:
            return ak.fill_none(ak.pad_none(x, P, clip=True), 0.0)

        def block(xs: list[Any]) -> Any:
            return ak.values_astype(ak.concatenate([pad(x)[:, np.newaxis, :] for x in xs], axis=1), np.float32)

        feats = []
        for v in self.spec["features"]:
            x = _feature(v["name"], jets, cands)
            x = (x - v["center"]) * v["scale"]
            if v.get("clip_min") is not None:
                x = np.maximum(x, v["clip_min"])
            if v.get("clip_max") is not None:
                x = np.minimum(x, v["clip_max"])
            feats.append(x)
        features = block(feats)
        mask = block([ak.ones_like(cands.pt)])
        if self.spec["kind"] == "pointcloud":
            points = block([_feature(p, jets, cands) for p in self.spec["points"]])
            return (points, features, mask), {}
        return (features, mask), {}


class CoffeaRecipeProcessor(processor.ProcessorABC):  # type: ignore[misc]
    """Select fat jets, build inputs with the coffea recipe, score through torch_wrapper."""

    def __init__(self, torch_jit: str, spec: dict[str, Any], pt_min: float = 550.0, pt_max: float = 650.0,
                 abs_eta_max: float = 2.0, keep_scores: bool = True) -> None:
        self.wrapper = RecipeWrapper(torch_jit, spec)
        self.pt_min, self.pt_max, self.abs_eta_max = pt_min, pt_max, abs_eta_max
        self.keep_scores = keep_scores

    def process(self, events: Any) -> dict[str, Any]:
        dataset = events.metadata.get("dataset", "unknown")
        start = int(events.metadata.get("entrystart") or 0)
        fj = events.FatJet
        pf = fj.constituents.pf
        sel = (fj.pt > self.pt_min) & (fj.pt < self.pt_max) & (abs(fj.eta) < self.abs_eta_max) & (ak.num(pf, axis=2) > 0)
        jets = ak.flatten(fj[sel])
        cands = ak.flatten(pf[sel], axis=1)
        h = hist.Hist(hist.axis.Regular(1000, 0.0, 1.0, name="score"), storage=hist.storage.Double())
        out: dict[str, Any] = {"scores": h, "jets": len(jets), "events": len(events)}
        if len(jets):
            logits = np.asarray(ak.to_numpy(self.wrapper(jets, cands)), dtype=np.float32)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            score = (e[:, 1] / e.sum(axis=1)).astype(np.float32)
            h.fill(score=score)
        else:
            score = np.zeros(0, dtype=np.float32)
        if self.keep_scores:
            ev_idx = ak.flatten(ak.broadcast_arrays(ak.local_index(events.FatJet.pt, axis=0), fj.pt)[0][sel])
            jet_idx = ak.flatten(ak.local_index(fj.pt, axis=1)[sel])
            out["entry"] = (np.asarray(ak.to_numpy(ev_idx), dtype=np.int64) + start).tolist()
            out["jet"] = np.asarray(ak.to_numpy(jet_idx), dtype=np.int64).tolist()
            out["score"] = score.tolist()
        return {dataset: out}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
