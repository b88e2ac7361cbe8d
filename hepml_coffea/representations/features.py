"""Registry of named per-constituent features.

Every feature is a plain Python function ``f(ctx) -> np.ndarray`` that computes
one value per constituent, vectorised over the *flat* constituent arrays of a
whole chunk of jets.  ``ctx`` is a :class:`FeatureContext`, which hands out

* ``ctx.cand(name)``: a flat numpy array of a constituent field (one entry per
  constituent, all jets concatenated),
* ``ctx.jet(name)``: the jet field broadcast to the constituents (same length),
* ``ctx.feature(name)``: another registered feature (memoised, so ``dR`` reuses
  ``deta``/``dphi``).

A spec entry is either a registered name (looked up in :data:`FEATURES` first) or
a feature expression such as ``log1p(abs(d0))`` (see
:mod:`~hepml_coffea.representations.expressions`: parsed with :mod:`ast` against a
whitelist, never ``eval``-ed), so a spec with expressions needs no registration in
the process that reads it.  New named features are added with
:func:`register_feature`, declaring the fields they read::

    @register_feature("log_d0", cand_fields=("d0",))
    def _log_d0(ctx):
        return safe_log(np.abs(ctx.cand("d0")))

Logarithms
----------
All logarithms go through :func:`safe_log`, which clamps the argument to
``LOG_FLOOR = 1e-8`` from below before taking the log, so a zero or negative
``pt``/``energy`` gives ``log(1e-8) ~= -18.42`` instead of ``-inf``/``NaN``.
"""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np

from hepml_coffea.data.geometry import energy as _energy
from hepml_coffea.data.geometry import starts as _starts
from hepml_coffea.data.geometry import wrap_phi

from .expressions import is_identifier, parse_expression

__all__ = [
    "FEATURES",
    "LOG_FLOOR",
    "STANDARD_FEATURES",
    "FeatureContext",
    "MissingFieldError",
    "check_feature",
    "feature_fields",
    "feature_matrix",
    "known_features",
    "register_feature",
    "safe_log",
    "wrap_phi",
]

#: Floor applied to the argument of every logarithm (see module docstring).
LOG_FLOOR = 1e-8

#: The 7 ParticleNet top-tagging input features, in the conventional order.
STANDARD_FEATURES: tuple[str, ...] = (
    "deta",
    "dphi",
    "log_pt",
    "log_e",
    "log_pt_rel",
    "log_e_rel",
    "dR",
)

FeatureFunc = Callable[["FeatureContext"], np.ndarray]

#: name -> feature function.  Extend with :func:`register_feature`.
FEATURES: dict[str, FeatureFunc] = {}

#: name -> (candidate fields, jet fields) a registered feature reads
FEATURE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


class MissingFieldError(KeyError, ValueError):
    """A feature needs a field that the input array lacks.

    Subclasses both :class:`KeyError` and :class:`ValueError`; the message names
    the missing field and the feature that asked for it.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def register_feature(
    name: str,
    *,
    overwrite: bool = False,
    cand_fields: tuple[str, ...] = (),
    jet_fields: tuple[str, ...] = (),
) -> Callable[[FeatureFunc], FeatureFunc]:
    """Decorator adding a feature function to :data:`FEATURES` under ``name``.

    Parameters
    ----------
    name
        Feature name used in :class:`~hepml_coffea.representations.spec.VarSpec`;
        a Python identifier.
    overwrite
        Allow replacing an existing feature (default: ``ValueError``).
    cand_fields, jet_fields
        Candidate / jet fields the function reads (reported by
        :meth:`InputSpec.required_cand_fields` so the constituents carry them).
    """
    if not is_identifier(name):
        msg = f"feature name {name!r} must be an identifier (write formulas as feature expressions instead)"
        raise ValueError(msg)

    def deco(func: FeatureFunc) -> FeatureFunc:
        if name in FEATURES and not overwrite:
            msg = f"feature {name!r} is already registered"
            raise ValueError(msg)
        FEATURES[name] = func
        FEATURE_FIELDS[name] = (tuple(cand_fields), tuple(jet_fields))
        return func

    return deco


def check_feature(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a registered feature or a valid expression.

    A bare identifier must be registered (so typos are caught when a spec is read);
    anything else is parsed as a feature expression.
    """
    if not isinstance(name, str):
        msg = f"a feature must be a name or an expression string, got {name!r}"
        raise TypeError(msg)
    if name in FEATURES:
        return
    if is_identifier(name):
        msg = (
            f"unknown feature {name!r}; known features: {known_features()}. A feature may also be an "
            f"expression over candidate branches and jet fields, e.g. 'log(pt / jet.pt)'; to read "
            f"the candidate branch {name!r} as it is, write 'cand.{name}'"
        )
        raise ValueError(msg)
    parse_expression(name)


def feature_fields(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(candidate fields, jet fields)`` read by feature ``name`` (registered or expression)."""
    if name in FEATURES:
        return FEATURE_FIELDS.get(name, ((), ()))
    check_feature(name)
    expr = parse_expression(name)
    return expr.cand_fields, expr.jet_fields


def known_features() -> list[str]:
    """Sorted list of registered feature names."""
    return sorted(FEATURES)


def safe_log(x: np.ndarray) -> np.ndarray:
    """``log(max(x, LOG_FLOOR))``: never ``-inf``/``NaN`` for finite ``x``."""
    x = np.asarray(x)
    return np.log(np.maximum(x, x.dtype.type(LOG_FLOOR) if x.dtype.kind == "f" else LOG_FLOOR))


def _float(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.kind == "f" else a.astype(np.float32)


class FeatureContext:
    """Lazy, memoising access to flat constituent / broadcast jet arrays.

    Parameters
    ----------
    flat_cands
        ``ak.Array`` of constituent records, already flattened over jets
        (length ``n_constituents``).
    jets
        ``ak.Array`` of jet records (length ``n_jets``).
    counts
        ``(n_jets,)`` int64 number of constituents per jet.
    """

    def __init__(self, flat_cands: ak.Array, jets: ak.Array, counts: np.ndarray) -> None:
        self._flat = flat_cands
        self._jets = jets
        self.counts = counts
        self.starts = _starts(counts)
        self.n_constituents = int(counts.sum())
        self._jet_of: np.ndarray | None = None
        self._cand_fields = set(ak.fields(flat_cands))
        self._jet_fields = set(ak.fields(jets))
        self._cand_cache: dict[str, np.ndarray] = {}
        self._jet_cache: dict[str, np.ndarray] = {}
        self._jet_flat_cache: dict[str, np.ndarray] = {}
        self._feat_cache: dict[str, np.ndarray] = {}
        self._requester: list[str] = []

    # -- field access -----------------------------------------------------
    def _missing(self, what: str, name: str, available: set[str]) -> MissingFieldError:
        feat = self._requester[-1] if self._requester else "?"
        return MissingFieldError(
            f"feature {feat!r} needs the {what} field {name!r}, which the input lacks "
            f"(available {what} fields: {sorted(available)})"
        )

    def has_cand(self, name: str) -> bool:
        return name in self._cand_fields

    def cand(self, name: str) -> np.ndarray:
        """Flat numpy array of constituent field ``name``; ``energy`` computed if absent.

        Shapes:
            -> ``(n_constituents,)``
        """
        out = self._cand_cache.get(name)
        if out is not None:
            return out
        if name in self._cand_fields:
            out = np.asarray(ak.to_numpy(self._flat[name]))
        elif name == "energy" and {"pt", "eta", "mass"} <= self._cand_fields:
            out = _energy(self.cand("pt"), self.cand("eta"), self.cand("mass"))
        else:
            raise self._missing("constituent", name, self._cand_fields)
        self._cand_cache[name] = out
        return out

    def jet_values(self, name: str) -> np.ndarray:
        """Jet field ``name`` (float); ``energy`` computed if absent.

        Shapes:
            -> ``(n_jets,)``
        """
        out = self._jet_cache.get(name)
        if out is not None:
            return out
        if name in self._jet_fields:
            out = _float(np.asarray(ak.to_numpy(self._jets[name])))
        elif name == "energy" and {"pt", "eta", "mass"} <= self._jet_fields:
            out = _energy(self.jet_values("pt"), self.jet_values("eta"), self.jet_values("mass"))
        else:
            raise self._missing("jet", name, self._jet_fields)
        self._jet_cache[name] = out
        return out

    def jet(self, name: str) -> np.ndarray:
        """Jet field ``name`` broadcast to the flat constituents.

        Shapes:
            -> ``(n_constituents,)``
        """
        out = self._jet_flat_cache.get(name)
        if out is None:
            out = np.repeat(self.jet_values(name), self.counts)
            self._jet_flat_cache[name] = out
        return out

    def jet_of_constituent(self) -> np.ndarray:
        """``(n_constituents,)`` int64 index of each flat constituent's jet."""
        if self._jet_of is None:
            self._jet_of = np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)
        return self._jet_of

    def feature(self, name: str) -> np.ndarray:
        """Feature ``name`` (registered name or expression) on the flat constituents (memoised).

        Shapes:
            -> ``(n_constituents,)``
        """
        out = self._feat_cache.get(name)
        if out is not None:
            return out
        func = FEATURES.get(name)
        if func is None:
            check_feature(name)  # unknown bare names raise here, with the known list
            func = parse_expression(name).evaluate
        self._requester.append(name)
        try:
            out = np.asarray(func(self))
        finally:
            self._requester.pop()
        if out.shape != (self.n_constituents,):
            raise ValueError(
                f"feature {name!r} returned shape {out.shape}, expected ({self.n_constituents},)"
            )
        self._feat_cache[name] = out
        return out


# ---------------------------------------------------------------------------
# standard ParticleNet features
# ---------------------------------------------------------------------------
@register_feature("deta", cand_fields=("eta",), jet_fields=("eta",))
def _deta(ctx: FeatureContext) -> np.ndarray:
    """``cand.eta - jet.eta``."""
    return ctx.cand("eta") - ctx.jet("eta")


@register_feature("dphi", cand_fields=("phi",), jet_fields=("phi",))
def _dphi(ctx: FeatureContext) -> np.ndarray:
    """``cand.phi - jet.phi`` wrapped to ``(-pi, pi]``."""
    return wrap_phi(ctx.cand("phi") - ctx.jet("phi"))


@register_feature("log_pt", cand_fields=("pt",), jet_fields=())
def _log_pt(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.cand("pt"))


@register_feature("log_e", cand_fields=("energy",), jet_fields=())
def _log_e(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.cand("energy"))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / np.maximum(den, den.dtype.type(LOG_FLOOR))


@register_feature("pt_rel", cand_fields=("pt",), jet_fields=("pt",))
def _pt_rel(ctx: FeatureContext) -> np.ndarray:
    """``cand.pt / jet.pt`` (jet pt floored at ``LOG_FLOOR``)."""
    return _ratio(ctx.cand("pt"), ctx.jet("pt"))


@register_feature("e_rel", cand_fields=("energy",), jet_fields=("energy",))
def _e_rel(ctx: FeatureContext) -> np.ndarray:
    """``cand.energy / jet.energy`` (jet energy floored at ``LOG_FLOOR``)."""
    return _ratio(ctx.cand("energy"), ctx.jet("energy"))


@register_feature("log_pt_rel", cand_fields=("pt",), jet_fields=("pt",))
def _log_pt_rel(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.feature("pt_rel"))


@register_feature("log_e_rel", cand_fields=("energy",), jet_fields=("energy",))
def _log_e_rel(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.feature("e_rel"))


@register_feature("dR", cand_fields=("eta", "phi"), jet_fields=("eta", "phi"))
def _dr(ctx: FeatureContext) -> np.ndarray:
    deta, dphi = ctx.feature("deta"), ctx.feature("dphi")
    return np.sqrt(deta * deta + dphi * dphi)


# ---------------------------------------------------------------------------
# extras
# ---------------------------------------------------------------------------
@register_feature("charge", cand_fields=("charge",), jet_fields=())
def _charge(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("charge"))


def _abs_pdg(ctx: FeatureContext) -> np.ndarray:
    return np.abs(ctx.cand("pdgId"))


@register_feature("is_electron", cand_fields=("pdgId",), jet_fields=())
def _is_electron(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 11).astype(np.float32)


@register_feature("is_muon", cand_fields=("pdgId",), jet_fields=())
def _is_muon(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 13).astype(np.float32)


@register_feature("is_photon", cand_fields=("pdgId",), jet_fields=())
def _is_photon(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 22).astype(np.float32)


@register_feature("is_charged_hadron", cand_fields=("charge", "pdgId"), jet_fields=())
def _is_charged_hadron(ctx: FeatureContext) -> np.ndarray:
    """Charged (``charge != 0``) and neither electron nor muon."""
    pdg = _abs_pdg(ctx)
    charged = ctx.cand("charge") != 0
    return (charged & (pdg != 11) & (pdg != 13)).astype(np.float32)


@register_feature("is_neutral_hadron", cand_fields=("charge", "pdgId"), jet_fields=())
def _is_neutral_hadron(ctx: FeatureContext) -> np.ndarray:
    """Neutral (``charge == 0``) and not a photon."""
    pdg = _abs_pdg(ctx)
    neutral = ctx.cand("charge") == 0
    return (neutral & (pdg != 22)).astype(np.float32)


@register_feature("d0", cand_fields=('d0',), jet_fields=())
def _d0(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("d0"))


@register_feature("dz", cand_fields=("dz",), jet_fields=())
def _dz(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("dz"))


def feature_matrix(
    ctx: FeatureContext, names: list[str] | tuple[str, ...], dtype: type = np.float32
) -> np.ndarray:
    """The named features (registered names or expressions) stacked.

    Shapes:
        -> ``(len(names), n_constituents)`` of ``dtype``
    """
    out = np.empty((len(names), ctx.n_constituents), dtype=dtype)
    for i, name in enumerate(names):
        out[i] = ctx.feature(name)
    return out

