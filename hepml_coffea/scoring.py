"""Per-jet scoring: tagger scores as awkward columns beside ``events.FatJet``.

Why one module of ~630 lines: it is the column API's whole contract in one place (selection,
None-not-NaN bookkeeping, counts, domain flags, eager and dask-awkward entry points); splitting
it would scatter the invariants the tests pin.

The one scoring path of the package. :class:`FatJetTagger` (and the one-shot
:func:`score_fatjets`) takes NanoEvents (any schema; PFNano or NanoAOD v15
constituents), selects fat jets, gathers their constituents, builds each distinct
representation **once** for the taggers that share it, and scores in blocks of jets with
the device-resident models of this process (:mod:`hepml_coffea.inference.engine`).
:class:`~hepml_coffea.processor.TaggerProcessor` is one consumer of it; an analysis's own
processor is another::

    tagger = FatJetTagger(["particlenet-lite", "pfn"])        # config only, picklable
    scores = tagger(events)                                    # same jagged structure as events.FatJet
    events["FatJet", "pn"] = scores["particlenet-lite"]        # None where not scored

A jet is scored only if it passes the selection (default: every fat jet), has finite
kinematics and at least one constituent; every other jet gets ``None`` — never NaN,
never a made-up number — and is counted in :attr:`JetScores.counts`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from hepml_coffea.config import ConfigurationError, TaggerConfig
from hepml_coffea.data.constituents import JetConstituents, fatjet_constituents
from hepml_coffea.selection import Selection

__all__ = ["FatJetTagger", "JetScores", "StageTimer", "score_fatjets", "STAGES"]

#: stage names, shown on the Dask dashboard (fine performance metrics) and in reports
STAGES: tuple[str, ...] = ("read_constituents", "build_representation", "infer", "fill")


class StageTimer:
    """Seconds per stage; each stage is also reported to Dask's fine performance metrics
    (the dashboard's *Fine Performance Metrics* page), a no-op outside a Dask task."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        from distributed.metrics import context_meter

        t0 = time.perf_counter()
        with context_meter.meter(stage):
            yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


@dataclass
class JetScores:
    """Scores of the selected fat jets of one chunk (flat over events).

    Attributes
    ----------
    jets : JetConstituents
        the selected jets (valid or not) and their constituents
    scores : dict
        tagger name -> float32 (n_selected,), NaN where the jet was not scored
    n_fatjets : int
        fat jets in the chunk before the selection
    fatjet_counts : np.ndarray
        (n_events,) fat jets per event (to restore the jagged structure)
    counts : dict
        ``selected``, ``scored``, ``no_constituents``, ``nonfinite``,
        ``bad_association_rows``, ``nonfinite_inputs``; per tagger ``not_scored:<name>``
        (jets whose inputs that tagger could not use, e.g. the baseline without ``tau2``)
    nonfinite_inputs : np.ndarray
        (n_selected,) bool: valid jets with a NaN / inf value in a model input (a feature
        expression that gives inf, ...); scored by no tagger
    nonfinite_features : dict
        ``"<tagger>: <feature>"`` -> jets of this chunk where that input was not finite
    in_domain : dict
        tagger name -> (n_selected,) bool: the jet lies inside the tagger's training domain
        (:class:`~hepml_coffea.selection.TrainingDomain`); ``None`` for a tagger whose
        artifact records no domain
    """

    jets: JetConstituents
    scores: dict[str, np.ndarray]
    n_fatjets: int
    fatjet_counts: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    classes: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    nonfinite_inputs: np.ndarray | None = None
    nonfinite_features: dict[str, int] = field(default_factory=dict)
    in_domain: dict[str, np.ndarray | None] = field(default_factory=dict)

    def jagged(self, domain: bool = True) -> ak.Array:
        """Scores with the structure of ``events.FatJet``: record of one option-float field
        per tagger, ``None`` where a jet was not scored (a record ``{score, <class>...}`` for
        a tagger whose class probabilities were asked for); with ``domain`` also
        ``in_domain``: a record of one option-bool per tagger, True where the scored jet
        lies inside the tagger's training domain (``None`` where not scored, or where the
        tagger records no domain)."""
        offsets = np.concatenate([[0], np.cumsum(self.fatjet_counts)]).astype(np.int64)
        flat_index = offsets[self.jets.event_index] + self.jets.jet_index

        def column(values: np.ndarray) -> ak.Array:
            full = np.full(self.n_fatjets, np.nan, dtype=np.float32)
            full[flat_index] = values
            return ak.unflatten(ak.mask(full, np.isfinite(full)), self.fatjet_counts)

        def flag(name: str, values: np.ndarray | None) -> ak.Array:
            full = np.zeros(self.n_fatjets, dtype=bool)
            known = np.zeros(self.n_fatjets, dtype=bool)
            if values is not None:
                full[flat_index] = values
                known[flat_index] = np.isfinite(self.scores[name])
            return ak.unflatten(ak.mask(full, known), self.fatjet_counts)

        columns = {}
        for name, s in self.scores.items():
            if name in self.classes:
                names, probs = self.classes[name]
                rec = {"score": column(s), **{c: column(probs[:, i]) for i, c in enumerate(names)}}
                columns[name] = ak.zip(rec, depth_limit=2)
            else:
                columns[name] = column(s)
        if domain:
            flags = {name: flag(name, self.in_domain.get(name)) for name in self.scores}
            columns["in_domain"] = ak.zip(flags, depth_limit=2) if flags else column(np.zeros(0, np.float32))
        return ak.zip(columns, depth_limit=2)


#: names of the channels (axis 1) of each representation array, from the input spec
_CHANNEL_NAMES = {"features": "features", "points": "points", "image": "channels"}


def _nonfinite_inputs(arrays: Mapping[str, np.ndarray], spec: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, int]]:
    """Jets with a NaN / inf value anywhere in their model inputs, and per input channel
    (feature name, point coordinate, image channel) the number of such jets.

    Shapes:
        each array (N, C, ...) or (N,) -> (N,) bool, {name: count}
    """
    n = len(next(iter(arrays.values()))) if arrays else 0
    bad = np.zeros(n, dtype=bool)
    per: dict[str, int] = {}
    for key, arr in arrays.items():
        if key == "mask" or not isinstance(arr, np.ndarray) or arr.shape[:1] != (n,) \
                or not np.issubdtype(arr.dtype, np.floating):
            continue
        finite = np.isfinite(arr)
        if finite.all():
            continue
        if arr.ndim == 1:
            jets = ~finite
            bad |= jets
            per[key] = int(jets.sum())
            continue
        by_channel = ~finite.reshape(n, arr.shape[1], -1).all(axis=2)  # (N, C)
        bad |= by_channel.any(axis=1)
        names = [str(x.get("name", x) if isinstance(x, Mapping) else x)
                 for x in (spec.get(_CHANNEL_NAMES.get(key, ""), None) or [])]
        for c in np.flatnonzero(by_channel.any(axis=0)):
            label = names[c] if c < len(names) and key != "points" else f"{key}[{c}]"
            if key == "points" and c < len(names):
                label = f"point {names[c]}"
            per[label] = int(by_channel[:, c].sum())
    return bad, per


def load_taggers(taggers: Any = None, default: tuple[str, ...] = ()) -> tuple[TaggerConfig, ...]:
    """Tagger configs for names / artifact paths / ready :class:`TaggerConfig`s.

    ``None`` means the ``default`` names that are shipped. Names must be unique.
    """
    from hepml_coffea.artifacts import ArtifactError, shipped_taggers

    if taggers is None:
        shipped = shipped_taggers()
        taggers = [t for t in default if t in shipped]
        if not taggers:
            msg = "no shipped taggers found in the package; pass artifact paths with taggers=[...]"
            raise ArtifactError(msg)
    if isinstance(taggers, (str, os.PathLike, TaggerConfig)):
        taggers = [taggers]
    out: list[TaggerConfig] = []
    for t in taggers:
        cfg = t if isinstance(t, TaggerConfig) else TaggerConfig.from_artifact(t)
        if any(o.name == cfg.name for o in out):
            msg = f"two taggers are named {cfg.name!r}; tagger names must be unique"
            raise ValueError(msg)
        out.append(cfg)
    if not out:
        msg = "no taggers given: pass shipped tagger names or artifact directories"
        raise ConfigurationError(msg)
    return tuple(out)


def _required_fields(taggers: Sequence[TaggerConfig]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Candidate, jet and secondary-vertex fields the taggers' input specs read (beyond the
    standard ones)."""
    cand: set[str] = set()
    jet: set[str] = set()
    sv: set[str] = set()
    for t in taggers:
        spec = t.input_spec
        if spec is not None:
            cand.update(spec.required_cand_fields())
            jet.update(spec.required_jet_fields())
            sv.update(spec.required_sv_fields())
    return tuple(sorted(cand)), tuple(sorted(jet)), tuple(sorted(sv))


def _events_of(events_or_fatjets: Any) -> Any:
    """Events from events or from a whole ``events.FatJet`` collection (NanoEvents)."""
    fields = ak.fields(events_or_fatjets)
    if "FatJet" in fields:
        return events_or_fatjets
    parent = getattr(events_or_fatjets, "_events", None)
    if callable(parent):
        events = parent()
        if "FatJet" in ak.fields(events):
            n_given = ak.to_numpy(ak.num(events_or_fatjets, axis=1))
            n_all = ak.to_numpy(ak.num(events["FatJet"], axis=1))
            if len(n_given) != len(n_all) or not np.array_equal(n_given, n_all):
                msg = ("score_fatjets got a filtered FatJet collection: pass the events (or the whole "
                       "events.FatJet) and choose jets with selection=<jagged boolean mask or Selection>")
                raise ConfigurationError(msg)
            return events
    msg = ("score_fatjets needs NanoEvents with a FatJet collection (or the whole events.FatJet); "
           f"got an array with fields {fields[:10]}")
    raise ConfigurationError(msg)


class FatJetTagger:
    """Score fat jets with one or more taggers inside any coffea ``process()``.

    Holds configuration only (tagger configs, selection, device choice): it pickles to a
    few kB and goes to every worker; the models live in each worker process's cache and
    stay on its device (a dask-cuda worker's GPU).

    Parameters
    ----------
    taggers : shipped tagger names, artifact directories or :class:`TaggerConfig` objects
        (verified when the object is made)
    selection : which fat jets to score: ``None`` (every fat jet), a :class:`Selection`, or
        a jagged boolean mask with the structure of ``events.FatJet`` given at call time
        (see :meth:`__call__`)
    device : ``"auto"`` (the worker's GPU when it has one), ``"cpu"``, ``"cuda"``
    amp : ``None`` (fp32), ``"bf16"`` or ``"fp16"`` autocast on GPU
    batch_size : jets per forward pass (default: 1024 on GPU, 128 on CPU)
    backend : ``"auto"`` (the backend recorded in the artifact), ``"torch"``,
        ``"compile"``, ``"onnxruntime"``, ``"aoti"``
    jet_block : representations are built and scored this many jets at a time, so memory
        does not grow with the chunk size
    on_invalid : association rows pointing outside the collections ``"raise"`` an error
        or are dropped and counted (``"skip"``)
    classes : for multi-class taggers (imported weaver models), return every class
        probability too: the tagger's field becomes a record ``{score, <class>, ...}``
    domain : add the ``in_domain`` field: per tagger, whether each scored jet lies inside
        the training domain its artifact records (jets outside are scored all the same)
    """

    def __init__(
        self,
        taggers: Sequence[str | os.PathLike[str] | TaggerConfig] | str | None = None,
        *,
        selection: Selection | None = None,
        device: str = "auto",
        amp: str | None = None,
        batch_size: int | None = None,
        backend: str = "auto",
        jet_block: int = 8192,
        on_invalid: str = "raise",
        default_taggers: tuple[str, ...] = (),
        classes: bool = False,
        domain: bool = True,
    ) -> None:
        from hepml_coffea.inference.runners import check_options

        check_options(backend, amp)
        if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
            msg = f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}"
            raise ConfigurationError(msg)
        if on_invalid not in ("raise", "skip"):
            msg = f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}"
            raise ValueError(msg)
        if batch_size is not None and int(batch_size) < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        self.taggers: tuple[TaggerConfig, ...] = load_taggers(taggers, default_taggers)
        self.selection = selection
        self.device = device
        self.amp = amp
        self.batch_size = None if batch_size is None else int(batch_size)
        self.backend = backend
        self.jet_block = max(1, int(jet_block))
        self.on_invalid = on_invalid
        if "in_domain" in self.names:
            msg = "a tagger may not be named 'in_domain' (the field of the training-domain flags)"
            raise ConfigurationError(msg)
        self.cand_fields, self.jet_fields, self.sv_fields = _required_fields(self.taggers)
        self._builds = _build_specs(self.taggers)
        self.classes = bool(classes)
        self.domain = bool(domain)

    @property
    def names(self) -> list[str]:
        """Tagger names, in order (the fields of the score record)."""
        return [t.name for t in self.taggers]

    def __repr__(self) -> str:
        return f"FatJetTagger({self.names}, device={self.device!r}, selection={self.selection!r})"

    # ------------------------------------------------------------------ public
    def __call__(self, events: Any, mask: Any = None) -> Any:
        """Scores with the jagged structure of ``events.FatJet`` (``None`` where not scored).

        Eager and virtual NanoEvents give an ``ak.Array``; dask-awkward NanoEvents
        (``NanoEventsFactory.from_root(..., mode="dask")``) give a lazy ``dak.Array`` of the
        same layout, one output partition per input partition (see :meth:`dask`).

        Parameters
        ----------
        events : NanoEvents, or the whole ``events.FatJet`` collection
        mask : optional jagged boolean mask over ``events.FatJet``: only those jets are scored
            (combined with the object's ``selection``)

        Returns
        -------
        ak.Array
            (events, var) records with one ``?float32`` field per tagger and (unless
            ``domain=False``) ``in_domain``, a record of one ``?bool`` per tagger;
            ``ak.num(scores) == ak.num(events.FatJet)``
        """
        if _is_dask(events) or _is_dask(mask):
            return self.dask(events, mask=mask)
        return self.score(events, mask=mask).jagged(domain=self.domain)

    def dask(self, events: Any, mask: Any = None) -> Any:
        """Lazy scores of dask-awkward NanoEvents: ``dak.map_partitions`` over the events
        with the output layout given as ``meta``; ``.compute()`` equals the eager result.

        Each partition is scored eagerly by :meth:`score` in the worker (models from the
        worker process's cache, so loaded once per process). dask-awkward's column
        optimisation sees the fat-jet, constituent, association-row and secondary-vertex
        collections the taggers read as *whole collections* (every branch of them is read,
        not just the ones a model uses) and nothing else.

        Returns
        -------
        dask_awkward.Array
            (events, var) with the form of the eager result
        """
        import dask_awkward as dak

        if not _is_dask(events) or (mask is not None and not _is_dask(mask)):
            msg = ("dask-awkward scoring needs dask-awkward events and (if given) a dask-awkward mask; "
                   f"got {type(events).__name__} and {type(mask).__name__}")
            raise ConfigurationError(msg)
        meta = ak.Array(self._empty_output().layout.to_typetracer(forget_length=True))
        args = (events,) if mask is None else (events, mask)
        return dak.map_partitions(_ScorePartition(self), *args, meta=meta, label="hepml-coffea-score",
                                  output_divisions=1)

    def _empty_output(self) -> ak.Array:
        """A zero-event result with the exact form :meth:`__call__` gives (the dask meta)."""
        counts = np.zeros(0, dtype=np.int64)

        def col() -> ak.Array:
            return ak.unflatten(ak.mask(np.zeros(0, np.float32), np.zeros(0, bool)), counts)

        def flag() -> ak.Array:
            return ak.unflatten(ak.mask(np.zeros(0, bool), np.zeros(0, bool)), counts)

        columns: dict[str, ak.Array] = {}
        for t in self.taggers:
            if self.classes and t.classes:
                columns[t.name] = ak.zip({"score": col(), **{c: col() for c in t.classes}}, depth_limit=2)
            else:
                columns[t.name] = col()
        if self.domain:
            columns["in_domain"] = ak.zip({t.name: flag() for t in self.taggers}, depth_limit=2)
        return ak.zip(columns, depth_limit=2)

    def score(self, events: Any, *, mask: Any = None, timer: StageTimer | None = None) -> JetScores:
        """Score the selected fat jets of ``events``; flat arrays plus counts (see :class:`JetScores`)."""
        events = _events_of(events)
        timer = timer or StageTimer()
        select = self.selection.jet_mask if isinstance(self.selection, Selection) else None
        with timer("read_constituents"):
            fatjets = events["FatJet"]
            fatjet_counts = np.asarray(ak.to_numpy(ak.num(fatjets.pt, axis=1)), dtype=np.int64) if len(events) \
                else np.zeros(0, dtype=np.int64)
            jc = fatjet_constituents(events, jet_mask=mask, on_invalid=self.on_invalid, select=select,
                                     cand_fields=self.cand_fields, jet_fields=self.jet_fields,
                                     sv_fields=self.sv_fields)
        classes: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        nonfinite: dict[str, Any] = {}
        scores = self.score_constituents(jc, timer=timer, classes_out=classes if self.classes else None,
                                         nonfinite_out=nonfinite)
        bad_inputs = nonfinite["jets"]
        scorable = jc.valid & ~bad_inputs
        not_scored = {f"not_scored:{n}": int(np.sum(scorable & ~np.isfinite(s))) for n, s in scores.items()}
        in_domain = {t.name: (t.domain.contains(jc.jets) if t.domain is not None else None) for t in self.taggers}
        out_of_domain = {f"out_of_domain:{n}": int(np.sum(np.isfinite(scores[n]) & ~d))
                         for n, d in in_domain.items() if d is not None}
        counts = {
            "selected": len(jc),
            "scored": int(scorable.sum()),
            "no_constituents": int(jc.counts.get("no_constituents", 0)),
            "nonfinite": int(jc.counts.get("nonfinite", 0)) + int(jc.counts.get("nonfinite_rejected", 0)),
            "bad_association_rows": int(jc.counts.get("bad_association_rows", 0)),
            "nonfinite_inputs": int(bad_inputs.sum()),
            **not_scored,
            **out_of_domain,
        }
        return JetScores(jets=jc, scores=scores, n_fatjets=int(fatjet_counts.sum()),
                         fatjet_counts=fatjet_counts, counts=counts, classes=classes,
                         nonfinite_inputs=bad_inputs, nonfinite_features=dict(nonfinite["features"]),
                         in_domain=in_domain)

    def score_constituents(
        self,
        jc: JetConstituents,
        *,
        timer: StageTimer | None = None,
        classes_out: dict[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
        nonfinite_out: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Scores (float32, NaN where not scored) of every tagger for the jets of ``jc``.

        Only valid jets (finite, with constituents) are given to the models; the others
        get NaN. A valid jet with a NaN / inf value in any tagger's model input (e.g. a
        feature expression dividing by zero) is given to no model and gets NaN from every
        tagger, so all taggers score the same jets; with ``nonfinite_out`` (a dict, filled
        here) ``"jets"``: (N,) bool of those jets and ``"features"``: ``"<tagger>: <feature>"``
        -> number of jets where that input was not finite. With ``classes_out`` (a dict,
        filled here) the class probabilities of the multi-class taggers too,
        ``name -> (class names, (N, n_classes))``, NaN rows where not scored.
        Shapes: ``jc`` of N jets -> each score (N,).
        """
        timer = timer or StageTimer()
        n = len(jc)
        out = {t.name: np.full(n, np.nan, dtype=np.float32) for t in self.taggers}
        if classes_out is not None:
            for t in self.taggers:
                if t.classes:
                    classes_out[t.name] = (t.classes, np.full((n, len(t.classes)), np.nan, dtype=np.float32))
        bad_jets = np.zeros(n, dtype=bool)
        bad_features: dict[str, int] = {}
        valid_idx = np.flatnonzero(jc.valid)
        for a in range(0, len(valid_idx), self.jet_block):
            idx = valid_idx[a:a + self.jet_block]
            block_mask = np.zeros(n, dtype=bool)
            block_mask[idx] = True
            block = jc.select(block_mask) if len(idx) != n else jc
            probs: dict[str, np.ndarray] = {}
            bad: dict[str, Any] = {}
            for name, s in self._score_block(block, timer, probs if classes_out is not None else None, bad).items():
                out[name][idx] = s
            for name, p in probs.items():
                classes_out[name][1][idx] = p  # type: ignore[index]
            bad_jets[idx] = bad["jets"]
            for k, v in bad["features"].items():
                bad_features[k] = bad_features.get(k, 0) + v
        if nonfinite_out is not None:
            nonfinite_out["jets"] = bad_jets
            nonfinite_out["features"] = bad_features
        return out

    # ------------------------------------------------------------------ internals
    def _score_block(self, good: JetConstituents, timer: StageTimer,
                     probs: dict[str, np.ndarray] | None = None,
                     nonfinite: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Scores of every tagger for the (valid) jets of ``good``; each representation built
        once. Jets with a non-finite value in any tagger's inputs get NaN from every tagger
        (given to no model); ``nonfinite`` (filled here): ``"jets"`` (N,) bool, ``"features"``."""
        from hepml_coffea.inference.engine import class_score, get_tagger

        built: dict[str, Mapping[str, np.ndarray]] = {}
        n = len(good)
        bad = np.zeros(n, dtype=bool)
        features: dict[str, int] = {}
        for t in self.taggers:
            key = t.build_key
            if key not in built:
                with timer("build_representation"):
                    built[key] = self._build(t, good)
            if key != "observables":  # the cut-based tagger's NaN inputs are its own "not scored"
                per_jet, per_feature = _nonfinite_inputs(built[key], t.spec or {})
                bad |= per_jet
                for f, c in per_feature.items():
                    features[f"{t.name}: {f}"] = c
        if nonfinite is not None:
            nonfinite["jets"], nonfinite["features"] = bad, features
        if bad.any():  # the models see only the jets with finite inputs
            keep = ~bad
            built = {k: {a: (v[keep] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v)
                         for a, v in arrays.items()} for k, arrays in built.items()}
        scores: dict[str, np.ndarray] = {}
        for t in self.taggers:
            key = t.build_key
            with timer("infer"):
                # the hash the tagger was configured with: a loaded tagger of that content, or
                # a first load that refuses an artifact changed since (ArtifactError)
                tagger = get_tagger(t.path, self.device, self.amp, backend=self.backend, hash=t.hash)
                if probs is not None and t.classes:
                    probs[t.name] = tagger.predict_classes(built[key], batch_size=self.batch_size)
                    scores[t.name] = class_score(tagger.artifact, probs[t.name])
                else:
                    scores[t.name] = tagger.predict(built[key], batch_size=self.batch_size)
        if bad.any():  # back to every jet of the block, NaN where the inputs were not finite
            for name, s in scores.items():
                full = np.full(n, np.nan, dtype=np.float32)
                full[~bad] = s
                scores[name] = full
            if probs is not None:
                for name, p in probs.items():
                    full = np.full((n, *p.shape[1:]), np.nan, dtype=np.float32)
                    full[~bad] = p
                    probs[name] = full
        return scores

    def _build(self, t: TaggerConfig, good: JetConstituents) -> Mapping[str, np.ndarray]:
        """The representation of tagger ``t`` (point clouds also serve sequence taggers)."""
        from hepml_coffea.representations import build
        from hepml_coffea.representations.observables import build_observables

        spec = self._builds.get(t.build_key)
        if spec is None:
            return build_observables(good.jets)
        return build(good.cands, good.jets, spec, svs=good.svs)


def _build_specs(taggers: Sequence[TaggerConfig]) -> dict[str, Any]:
    """Build key -> the parsed spec its representation is built with (once, when the
    tagger object is made; the first tagger of each key gives it): a sequence tagger
    sharing particle features with a point-cloud tagger is fed from the point-cloud build.
    Observables have no spec (not listed)."""
    from hepml_coffea.representations import InputSpec

    out: dict[str, Any] = {}
    for t in taggers:
        spec = t.input_spec
        if spec is None or t.build_key in out:
            continue
        if t.input_kind in ("sequence", "pointcloud") and any(
                o.input_kind == "pointcloud" and o.build_key == t.build_key for o in taggers):
            spec = InputSpec.from_dict({**dict(t.spec or {}), "kind": "pointcloud"})
        out[t.build_key] = spec
    return out


def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "dask_awkward"


class _ScorePartition:
    """The function :meth:`FatJetTagger.dask` maps over partitions (picklable: holds the
    tagger's configuration only).

    On dask-awkward's typetracer pass it touches the collections the taggers read (so the
    column optimisation keeps them) and returns the empty layout; on real partitions it
    scores eagerly.
    """

    #: collections whose branches the scoring may read (fat jets, constituents, association rows, SVs)
    READS = ("FatJet", "FatJetPFCands", "PFCands", "FatJetPFCand", "PFCand", "FatJetSVs", "SV")

    def __init__(self, tagger: FatJetTagger) -> None:
        self.tagger = tagger

    def __call__(self, events: Any, mask: Any = None) -> ak.Array:
        if ak.backend(events) == "typetracer":
            fields = ak.fields(events)
            for c in self.READS:
                if c in fields:
                    ak.typetracer.touch_data(events[c])
            if mask is not None:
                ak.typetracer.touch_data(mask)
            return ak.Array(self.tagger._empty_output().layout.to_typetracer(forget_length=True))
        return self.tagger.score(events, mask=mask).jagged(domain=self.tagger.domain)


def score_fatjets(
    events_or_fatjets: Any,
    taggers: Sequence[str | os.PathLike[str] | TaggerConfig] | str,
    *,
    selection: Selection | Any = None,
    device: str = "auto",
    amp: str | None = None,
    batch_size: int | None = None,
    backend: str = "auto",
    classes: bool = False,
    domain: bool = True,
) -> ak.Array:
    """Tagger scores as a column beside ``events.FatJet`` (one call; see :class:`FatJetTagger`).

    Parameters
    ----------
    events_or_fatjets : NanoEvents, or the whole ``events.FatJet`` collection
    taggers : shipped tagger names or artifact directories
    selection : ``None`` (every fat jet), a :class:`Selection`, or a jagged boolean mask
        with the structure of ``events.FatJet``
    device, amp, batch_size, backend, classes, domain : see :class:`FatJetTagger`

    Returns
    -------
    ak.Array
        (events, var) records, one ``?float32`` field per tagger (field name = tagger
        name), ``None`` for jets not scored (outside the selection, no constituents,
        non-finite kinematics); and ``in_domain`` ({tagger: ?bool}), whether each scored
        jet lies inside the tagger's training domain.

    Shapes:
        events.FatJet: (events, var) -> (events, var) {tagger: ?float32}

    Examples
    --------
    >>> scores = score_fatjets(events, ["particlenet-lite"])          # doctest: +SKIP
    >>> events["FatJet", "pn"] = scores["particlenet-lite"]          # doctest: +SKIP
    """
    if isinstance(selection, Selection) or selection is None:
        return FatJetTagger(taggers, selection=selection, device=device, amp=amp, batch_size=batch_size,
                            backend=backend, classes=classes, domain=domain)(events_or_fatjets)
    tagger = FatJetTagger(taggers, device=device, amp=amp, batch_size=batch_size, backend=backend, classes=classes,
                          domain=domain)
    return tagger(events_or_fatjets, mask=selection)
