"""Declarative input specification, saved next to every trained model.

A spec is plain data (dataclasses of str/float/int/bool/list), so it round-trips
exactly through :meth:`InputSpec.to_dict` / :meth:`InputSpec.from_dict` and
YAML (:meth:`InputSpec.to_yaml` / :meth:`InputSpec.from_yaml`, ``yaml.safe_load``).

Per-feature transform (as in weaver's data config)::

    y = clip((x - center) * scale, clip_min, clip_max)    # real entries
    y = pad_value                                         # padded entries
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from .features import STANDARD_FEATURES, check_feature, feature_fields

__all__ = [
    "COLLECTIONS",
    "IMAGE_CHANNELS",
    "BlockSpec",
    "InputSpec",
    "VarSpec",
    "default_image_spec",
    "default_pointcloud_spec",
    "default_sequence_spec",
]

#: Image channels understood by :func:`~hepml_coffea.representations.image.build_image`.
IMAGE_CHANNELS: tuple[str, ...] = ("pt", "charged_pt", "neutral_pt", "multiplicity")
KINDS: tuple[str, ...] = ("sequence", "pointcloud", "image", "blocks")
#: ``constant``: padded slots get each variable's ``pad_value``; ``wrap``: weaver's
#: ``pad_mode: wrap``, the jet's own (transformed) entries repeated cyclically
#: (slot ``p`` takes entry ``p % n``; a jet without entries gets ``pad_value``)
PAD_MODES: tuple[str, ...] = ("constant", "wrap")
#: collections a ``blocks`` input reads per fat jet: ``pf`` its particle-flow
#: constituents (pT-sorted), ``sv`` its secondary vertices (PFNano ``FatJetSVs``, file order)
COLLECTIONS: tuple[str, ...] = ("pf", "sv")
SPEC_VERSION = 1


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass
class VarSpec:
    """One per-constituent input variable and its transform.

    Parameters
    ----------
    name
        Registered feature name (see :data:`~hepml_coffea.representations.features.FEATURES`),
        looked up first, or a feature expression over candidate branches and jet fields
        such as ``log(pt / sum(pt))`` (see :mod:`~hepml_coffea.representations.expressions`).
    center, scale
        Real entries become ``(x - center) * scale``.
    clip_min, clip_max
        Optional clipping applied after centring/scaling (``None``: no bound).
    pad_value
        Value written into padded slots (not transformed).
    """

    name: str
    center: float = 0.0
    scale: float = 1.0
    clip_min: float | None = None
    clip_max: float | None = None
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"VarSpec.name must be a str, got {self.name!r}")
        check_feature(self.name)
        self.center = float(self.center)
        self.scale = float(self.scale)
        self.clip_min = _opt_float(self.clip_min)
        self.clip_max = _opt_float(self.clip_max)
        self.pad_value = float(self.pad_value)
        if self.clip_min is not None and self.clip_max is not None and self.clip_min > self.clip_max:
            raise ValueError(f"VarSpec {self.name!r}: clip_min > clip_max")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> VarSpec:
        """Build from a dict (or a bare feature name)."""
        if isinstance(d, str):
            return cls(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown VarSpec keys {sorted(unknown)}")
        return cls(**d)


@dataclass
class BlockSpec:
    """One named network input of a ``blocks`` spec (weaver's ``inputs:`` entry).

    Parameters
    ----------
    name
        The model's input name (e.g. ``pf_features``); the array fed under that name.
    collection
        What one slot is: ``"pf"`` a constituent, ``"sv"`` a secondary vertex
        (:data:`COLLECTIONS`).
    length
        Slots ``P`` (the first ``P`` entries kept: hardest constituents, SVs in file order).
    pad_mode
        ``"constant"`` or ``"wrap"`` (:data:`PAD_MODES`).
    vars
        The ``C`` variables, each a :class:`VarSpec` (feature expression + transform).
    nan_to_num
        weaver's last step: NaN -> 0 and +-inf -> the largest finite float32 after
        transforming and padding (``numpy.nan_to_num``).

    Shapes:
        built array ``(N, C, P)`` float32.
    """

    name: str
    collection: str = "pf"
    length: int = 100
    pad_mode: str = "constant"
    vars: list[VarSpec] = field(default_factory=list)
    nan_to_num: bool = False

    def __post_init__(self) -> None:
        self.nan_to_num = bool(self.nan_to_num)
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"block name must be an identifier, got {self.name!r}")
        if self.collection not in COLLECTIONS:
            raise ValueError(f"block {self.name!r}: unknown collection {self.collection!r}; expected one of {list(COLLECTIONS)}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"block {self.name!r}: unknown pad_mode {self.pad_mode!r}; expected one of {list(PAD_MODES)}")
        if int(self.length) != self.length or self.length < 1:
            raise ValueError(f"block {self.name!r}: length must be a positive integer, got {self.length!r}")
        self.length = int(self.length)
        self.vars = [v if isinstance(v, VarSpec) else VarSpec.from_dict(v) for v in self.vars]
        if not self.vars:
            raise ValueError(f"block {self.name!r} needs at least one variable")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "collection": self.collection, "length": self.length,
                "pad_mode": self.pad_mode, "vars": [v.to_dict() for v in self.vars], "nan_to_num": self.nan_to_num}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockSpec:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown BlockSpec keys {sorted(unknown)}")
        return cls(**d)


def _default_features() -> list[VarSpec]:
    return [VarSpec(n) for n in STANDARD_FEATURES]


@dataclass
class InputSpec:
    """How to turn constituents into a fixed-shape network input.

    Parameters
    ----------
    kind
        ``"sequence"`` (features + mask), ``"pointcloud"`` (points + features +
        mask, weaver ParticleNet contract), ``"image"``, or ``"blocks"`` (any number of
        named inputs over constituents and secondary vertices, as a weaver data config
        declares them: :attr:`blocks`).
    length
        Number of constituent slots ``P`` (hardest ``P`` kept, rest zero-padded).
    pad_mode
        ``"constant"`` (pad with each ``VarSpec.pad_value``) or ``"wrap"`` (see
        :data:`PAD_MODES`).
    features
        Per-constituent variables (sequence / pointcloud).
    points
        Coordinate features of a point cloud (names or expressions, unscaled, zero
        on padding).
    npix, extent
        Image: ``npix x npix`` pixels over ``[-extent, extent)`` in (deta, dphi).
    centre, rotate, flip
        Image preprocessing switches (see :mod:`~hepml_coffea.representations.image`).
    channels
        Image channels, a subset of :data:`IMAGE_CHANNELS`.
    blocks
        ``"blocks"`` kind: the named inputs, in the model's input order.
    mask_block
        ``"blocks"`` kind: the name of the constituent mask input (1 real, 0 padding), which
        the engine reads to trim padding for models whose output does not depend on it.
    sort_by
        ``"blocks"`` kind: the feature (name or expression) the constituents are ordered by,
        decreasing, before the first ``P`` are kept (default: ``pt``); e.g. ``puppiWeight * pt``.
    """

    kind: Literal["sequence", "pointcloud", "image"] = "sequence"
    length: int = 100
    pad_mode: str = "constant"
    features: list[VarSpec] = field(default_factory=_default_features)
    points: list[str] = field(default_factory=lambda: ["deta", "dphi"])
    npix: int = 40
    extent: float = 0.8
    centre: bool = True
    rotate: bool = True
    flip: bool = True
    channels: list[str] = field(default_factory=lambda: ["pt"])
    blocks: list[BlockSpec] = field(default_factory=list)
    mask_block: str | None = None
    sort_by: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {list(KINDS)}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"unknown pad_mode {self.pad_mode!r}; expected one of {list(PAD_MODES)}")
        if int(self.length) != self.length or self.length < 1:
            raise ValueError(f"length must be a positive integer, got {self.length!r}")
        self.length = int(self.length)
        self.features = [f if isinstance(f, VarSpec) else VarSpec.from_dict(f) for f in self.features]
        self.points = [str(p) for p in self.points]
        for p in self.points:
            try:
                check_feature(p)
            except ValueError as err:
                raise ValueError(f"in points: {err}") from None
        if self.kind in ("sequence", "pointcloud") and not self.features:
            raise ValueError(f"a {self.kind!r} spec needs at least one feature")
        if int(self.npix) != self.npix or self.npix < 1:
            raise ValueError(f"npix must be a positive integer, got {self.npix!r}")
        self.npix = int(self.npix)
        self.extent = float(self.extent)
        if not (self.extent > 0 and math.isfinite(self.extent)):
            raise ValueError(f"extent must be positive and finite, got {self.extent!r}")
        self.centre, self.rotate, self.flip = bool(self.centre), bool(self.rotate), bool(self.flip)
        self.channels = [str(c) for c in self.channels]
        for c in self.channels:
            if c not in IMAGE_CHANNELS:
                raise ValueError(f"unknown image channel {c!r}; known channels: {list(IMAGE_CHANNELS)}")
        if self.kind == "image" and not self.channels:
            raise ValueError("an image spec needs at least one channel")
        self.blocks = [b if isinstance(b, BlockSpec) else BlockSpec.from_dict(b) for b in self.blocks]
        if self.kind == "blocks":
            if not self.blocks:
                raise ValueError("a 'blocks' spec needs at least one block")
            names = [b.name for b in self.blocks]
            if len(set(names)) != len(names):
                raise ValueError(f"block names must be unique, got {names}")
            if self.mask_block is not None:
                mb = {b.name: b for b in self.blocks}.get(self.mask_block)
                if mb is None or mb.collection != "pf":
                    raise ValueError(f"mask_block {self.mask_block!r} must name a 'pf' block (blocks: {names})")
            if self.sort_by is not None:
                check_feature(self.sort_by)
        elif self.blocks or self.mask_block is not None or self.sort_by is not None:
            raise ValueError(f"blocks / mask_block / sort_by are only for kind 'blocks', not {self.kind!r}")

    # -- convenience ------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        return len(self.features)

    def _fields(self) -> tuple[set[str], set[str]]:
        cand: set[str] = set()
        jet: set[str] = set()
        if self.kind == "image":
            cand |= {"pt", "eta", "phi"}
            jet |= {"pt", "eta", "phi"}
            if {"charged_pt", "neutral_pt"} & set(self.channels):
                cand.add("charge")
            return cand, jet
        if self.kind == "blocks":
            names = [v.name for b in self.blocks if b.collection == "pf" for v in b.vars]
            names += [self.sort_by] if self.sort_by else []
        else:
            names = [f.name for f in self.features] + (list(self.points) if self.kind == "pointcloud" else [])
        cand.add("pt")  # constituents are ordered by pt
        for name in names:
            c, j = feature_fields(name)
            cand.update(c)
            jet.update(j)
        return cand, jet

    def required_cand_fields(self) -> tuple[str, ...]:
        """Candidate (PFCands) fields this spec reads, sorted.

        Pass them to :func:`hepml_coffea.data.constituents.fatjet_constituents` as
        ``cand_fields=`` so the constituents carry every branch the features name
        (``energy`` is always computed there; ``charge`` is inferred from ``pdgId``
        where the file has none). Registered features report the fields they declared.
        """
        return tuple(sorted(self._fields()[0]))

    def required_jet_fields(self) -> tuple[str, ...]:
        """Jet (FatJet) fields this spec reads, sorted; see :meth:`required_cand_fields`."""
        jet = set(self._fields()[1])
        for b in self.blocks:
            if b.collection == "sv":
                for v in b.vars:
                    jet.update(feature_fields(v.name)[1])
        return tuple(sorted(jet))

    def required_sv_fields(self) -> tuple[str, ...]:
        """Secondary-vertex fields the ``sv`` blocks read, sorted (empty: no SVs needed).

        Pass them to :func:`hepml_coffea.data.constituents.fatjet_svs` as ``fields=``.
        """
        sv: set[str] = set()
        for b in self.blocks:
            if b.collection == "sv":
                for v in b.vars:
                    sv.update(feature_fields(v.name)[0])
        return tuple(sorted(sv))

    @property
    def input_names(self) -> tuple[str, ...] | None:
        """``"blocks"`` kind: the model's input names in order; ``None`` for the fixed kinds."""
        return tuple(b.name for b in self.blocks) if self.kind == "blocks" else None

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["features"] = [f.to_dict() for f in self.features]
        d["points"] = list(self.points)
        d["channels"] = list(self.channels)
        d["blocks"] = [b.to_dict() for b in self.blocks]
        if self.kind != "blocks":  # the fixed kinds keep their documents as before
            d.pop("blocks")
            d.pop("mask_block")
            d.pop("sort_by")
        return {"version": SPEC_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        d = dict(d)
        version = d.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise ValueError(f"unsupported InputSpec version {version!r} (this code reads {SPEC_VERSION})")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown InputSpec keys {sorted(unknown)}")
        if "features" in d:
            d["features"] = [VarSpec.from_dict(f) for f in d["features"]]
        if "blocks" in d:
            d["blocks"] = [BlockSpec.from_dict(b) for b in d["blocks"]]
        return cls(**d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> InputSpec:
        d = yaml.safe_load(text)
        if not isinstance(d, dict):
            raise ValueError("InputSpec YAML must be a mapping")
        return cls.from_dict(d)


def default_sequence_spec(length: int = 100) -> InputSpec:
    """The 7 ParticleNet features, ``P = length``, centre 0 / scale 1."""
    return InputSpec(kind="sequence", length=length)


def default_pointcloud_spec(length: int = 100) -> InputSpec:
    """ParticleNet point cloud: points (deta, dphi) + the 7 standard features."""
    return InputSpec(kind="pointcloud", length=length)


def default_image_spec(npix: int = 40, extent: float = 0.8) -> InputSpec:
    """40x40 pT image over [-0.8, 0.8)^2, centred, rotated, flipped."""
    return InputSpec(kind="image", npix=npix, extent=extent, channels=["pt"])
