"""Registry of named per-constituent features.

Every feature is a plain Python function ``f(ctx) -> np.ndarray`` that computes
one value per constituent, vectorised over the *flat* constituent arrays of a
whole chunk of jets.  ``ctx`` is a :class:`FeatureContext`, which hands out

* ``ctx.cand(name)``: a flat numpy array of a constituent field (one entry per
  constituent, all jets concatenated),
* ``ctx.jet(name)``: the jet field broadcast to the constituents (same length),
* ``ctx.feature(name)``: another registered feature (memoised, so ``dR`` reuses
  ``deta``/``dphi``).

No strings are ever evaluated: a spec names features, the names are looked up
in :data:`FEATURES`.  New features are added with :func:`register_feature`::

    @register_feature("log_d0")
    def _log_d0(ctx):
        return safe_log(np.abs(ctx.cand("d0")))

Logarithms
----------
All logarithms go through :func:`safe_log`, which clamps the argument to
``LOG_FLOOR = 1e-8`` from below before taking the log, so a zero or negative
``pt``/``energy`` gives ``log(1e-8) ~= -18.42`` instead of ``-inf``/``NaN``.
"""

from __future__ import annotations

from typing import Callable

import awkward as ak
import numpy as np

__all__ = [
    "FEATURES",
    "LOG_FLOOR",
    "STANDARD_FEATURES",
    "FeatureContext",
    "MissingFieldError",
    "known_features",
    "register_feature",
    "safe_log",
    "wrap_phi",
    "feature_matrix",
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


class MissingFieldError(KeyError, ValueError):
    """A feature needs a field that the input array lacks.

    Subclasses both :class:`KeyError` and :class:`ValueError`; the message names
    the missing field and the feature that asked for it.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def register_feature(name: str, *, overwrite: bool = False) -> Callable[[FeatureFunc], FeatureFunc]:
    """Decorator adding a feature function to :data:`FEATURES` under ``name``.

    Parameters
    ----------
    name
        Feature name used in :class:`~hepml_coffea.representations.spec.VarSpec`.
    overwrite
        Allow replacing an existing feature (default: ``ValueError``).
    """

    def deco(func: FeatureFunc) -> FeatureFunc:
        if name in FEATURES and not overwrite:
            raise ValueError(f"feature {name!r} is already registered")
        FEATURES[name] = func
        return func

    return deco


def known_features() -> list[str]:
    """Sorted list of registered feature names."""
    return sorted(FEATURES)


def safe_log(x: np.ndarray) -> np.ndarray:
    """``log(max(x, LOG_FLOOR))``: never ``-inf``/``NaN`` for finite ``x``."""
    x = np.asarray(x)
    return np.log(np.maximum(x, x.dtype.type(LOG_FLOOR) if x.dtype.kind == "f" else LOG_FLOOR))


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    """Wrap an angle difference into ``[-pi, pi)``."""
    pi = np.pi
    d = np.mod(dphi + pi, 2 * pi) - pi
    # float rounding can land exactly on +pi; fold it back (rare, cheap check)
    hi = d >= pi
    if hi.any():
        d[hi] -= 2 * pi
    return d


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
        self.n_constituents = int(counts.sum())
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
        """Flat numpy array of constituent field ``name`` (float for charge/pdgId too)."""
        out = self._cand_cache.get(name)
        if out is not None:
            return out
        if name in self._cand_fields:
            out = np.asarray(ak.to_numpy(self._flat[name]))
        elif name == "energy" and {"pt", "eta", "mass"} <= self._cand_fields:
            pt, eta, m = self.cand("pt"), self.cand("eta"), self.cand("mass")
            out = np.sqrt((pt * np.cosh(eta)) ** 2 + m * m)
        else:
            raise self._missing("constituent", name, self._cand_fields)
        self._cand_cache[name] = out
        return out

    def jet_values(self, name: str) -> np.ndarray:
        """``(n_jets,)`` numpy array of jet field ``name``."""
        out = self._jet_cache.get(name)
        if out is not None:
            return out
        if name in self._jet_fields:
            out = _float(np.asarray(ak.to_numpy(self._jets[name])))
        elif name == "energy" and {"pt", "eta", "mass"} <= self._jet_fields:
            pt, eta, m = self.jet_values("pt"), self.jet_values("eta"), self.jet_values("mass")
            out = np.sqrt((pt * np.cosh(eta)) ** 2 + m * m)
        else:
            raise self._missing("jet", name, self._jet_fields)
        self._jet_cache[name] = out
        return out

    def jet(self, name: str) -> np.ndarray:
        """Jet field ``name`` broadcast to the flat constituents."""
        out = self._jet_flat_cache.get(name)
        if out is None:
            out = np.repeat(self.jet_values(name), self.counts)
            self._jet_flat_cache[name] = out
        return out

    def feature(self, name: str) -> np.ndarray:
        """Registered feature ``name`` on the flat constituents (memoised)."""
        out = self._feat_cache.get(name)
        if out is not None:
            return out
        try:
            func = FEATURES[name]
        except KeyError:
            raise ValueError(
                f"unknown feature {name!r}; known features: {known_features()}"
            ) from None
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
@register_feature("deta")
def _deta(ctx: FeatureContext) -> np.ndarray:
    """``cand.eta - jet.eta``."""
    return ctx.cand("eta") - ctx.jet("eta")


@register_feature("dphi")
def _dphi(ctx: FeatureContext) -> np.ndarray:
    """``cand.phi - jet.phi`` wrapped to ``[-pi, pi)``."""
    return wrap_phi(ctx.cand("phi") - ctx.jet("phi"))


@register_feature("log_pt")
def _log_pt(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.cand("pt"))


@register_feature("log_e")
def _log_e(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.cand("energy"))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / np.maximum(den, den.dtype.type(LOG_FLOOR))


@register_feature("pt_rel")
def _pt_rel(ctx: FeatureContext) -> np.ndarray:
    """``cand.pt / jet.pt`` (jet pt floored at ``LOG_FLOOR``)."""
    return _ratio(ctx.cand("pt"), ctx.jet("pt"))


@register_feature("e_rel")
def _e_rel(ctx: FeatureContext) -> np.ndarray:
    """``cand.energy / jet.energy`` (jet energy floored at ``LOG_FLOOR``)."""
    return _ratio(ctx.cand("energy"), ctx.jet("energy"))


@register_feature("log_pt_rel")
def _log_pt_rel(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.feature("pt_rel"))


@register_feature("log_e_rel")
def _log_e_rel(ctx: FeatureContext) -> np.ndarray:
    return safe_log(ctx.feature("e_rel"))


@register_feature("dR")
def _dr(ctx: FeatureContext) -> np.ndarray:
    deta, dphi = ctx.feature("deta"), ctx.feature("dphi")
    return np.sqrt(deta * deta + dphi * dphi)


# ---------------------------------------------------------------------------
# extras
# ---------------------------------------------------------------------------
@register_feature("charge")
def _charge(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("charge"))


def _abs_pdg(ctx: FeatureContext) -> np.ndarray:
    return np.abs(ctx.cand("pdgId"))


@register_feature("is_electron")
def _is_electron(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 11).astype(np.float32)


@register_feature("is_muon")
def _is_muon(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 13).astype(np.float32)


@register_feature("is_photon")
def _is_photon(ctx: FeatureContext) -> np.ndarray:
    return (_abs_pdg(ctx) == 22).astype(np.float32)


@register_feature("is_charged_hadron")
def _is_charged_hadron(ctx: FeatureContext) -> np.ndarray:
    """Charged (``charge != 0``) and neither electron nor muon."""
    pdg = _abs_pdg(ctx)
    charged = ctx.cand("charge") != 0
    return (charged & (pdg != 11) & (pdg != 13)).astype(np.float32)


@register_feature("is_neutral_hadron")
def _is_neutral_hadron(ctx: FeatureContext) -> np.ndarray:
    """Neutral (``charge == 0``) and not a photon."""
    pdg = _abs_pdg(ctx)
    neutral = ctx.cand("charge") == 0
    return (neutral & (pdg != 22)).astype(np.float32)


@register_feature("d0")
def _d0(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("d0"))


@register_feature("dz")
def _dz(ctx: FeatureContext) -> np.ndarray:
    return _float(ctx.cand("dz"))


def feature_matrix(
    ctx: FeatureContext, names: list[str] | tuple[str, ...], dtype: type = np.float32
) -> np.ndarray:
    """``(len(names), n_constituents)`` array of the named features."""
    out = np.empty((len(names), ctx.n_constituents), dtype=dtype)
    for i, name in enumerate(names):
        out[i] = ctx.feature(name)
    return out

