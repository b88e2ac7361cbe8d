"""Feature expressions: per-constituent inputs written in the spec, evaluated safely.

A :class:`~hepml_coffea.representations.spec.VarSpec` name that is not a registered
feature is read as an expression, so a model trained with any feature recipe is
described by its YAML spec alone (no Python to register, nothing to import in the
process that scores it)::

    features:
    - name: log(pt / sum(pt))            # pT fraction of the jet's constituent sum
    - name: log1p(abs(d0))               # any PFCands branch, by its name
    - name: wrap_phi(jet.phi - phi)      # jet minus candidate, wrapped azimuth
      scale: 2.0

Grammar (a Python expression, parsed with :mod:`ast`, never ``eval``-ed):

* numbers, ``pi``, ``+ - * / ** %``, unary ``-``/``+``, comparisons
  (``== != < <= > >=``, giving 1.0 or 0.0, chains allowed);
* bare names and ``cand.<name>``: a candidate (PFCands) branch, e.g. ``pt``, ``d0``,
  ``puppiWeight``; ``energy`` is computed from pt, eta, mass when the input has none;
* ``jet.<name>``: a field of the jet, broadcast to its constituents (``jet.pt``,
  ``jet.eta``, ``jet.phi``, ``jet.mass``, ``jet.energy``, ``jet.msoftdrop``, ...);
* the functions of :data:`FUNCTIONS`, including per-jet reductions ``sum``,
  ``mean``, ``max``, ``min`` over *all* the jet's constituents (not only the ``P``
  kept), broadcast back to each constituent.

``log`` clamps its argument at :data:`~hepml_coffea.representations.features.LOG_FLOOR`
like every logarithm in the package (``log(0) = log(1e-8)``); ``log1p`` clamps at
``-1 + LOG_FLOOR``; ``sqrt`` at 0. Division is IEEE (``x / 0`` is ``inf``).
Values are computed in float64 and stored as float32 by the builders.

A spec entry that is a single bare identifier (``charge``) must be a registered
feature, so a misspelt feature name is an error when the spec is read; to read a
branch as it is, write ``cand.<name>``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hepml_coffea.data.geometry import wrap_phi



class FeatureContext(Protocol):
    """What an expression reads (implemented by :class:`.features.FeatureContext`;
    declared here so this module does not import ``features``)."""

    counts: np.ndarray
    starts: np.ndarray
    n_constituents: int

    def cand(self, name: str) -> np.ndarray: ...

    def jet(self, name: str) -> np.ndarray: ...

    def jet_of_constituent(self) -> np.ndarray: ...

__all__ = ["FUNCTIONS", "REDUCTIONS", "Expression", "ExpressionError", "is_identifier", "parse_expression"]

_LOG_FLOOR = 1e-8  # the value of features.LOG_FLOOR (features imports this module)


class ExpressionError(ValueError):
    """A feature expression uses something outside the allowed grammar."""


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, _LOG_FLOOR))


def _log1p(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(x, -1.0 + _LOG_FLOOR))


def _sqrt(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(x, 0.0))


#: name -> (function, number of arguments); the elementwise functions of an expression
FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "abs": (np.abs, 1),
    "sign": (np.sign, 1),
    "log": (_log, 1),
    "log1p": (_log1p, 1),
    "log10": (lambda x: _log(x) / np.log(10.0), 1),
    "exp": (np.exp, 1),
    "sqrt": (_sqrt, 1),
    "tanh": (np.tanh, 1),
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "arctan": (np.arctan, 1),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "arcsinh": (np.arcsinh, 1),
    "tan": (np.tan, 1),
    "floor": (np.floor, 1),
    "ceil": (np.ceil, 1),
    "ones_like": (np.ones_like, 1),
    "zeros_like": (np.zeros_like, 1),
    "wrap_phi": (wrap_phi, 1),
    "arctan2": (np.arctan2, 2),
    "hypot": (np.hypot, 2),
    "minimum": (np.minimum, 2),
    "maximum": (np.maximum, 2),
    "clip": (np.clip, 3),
    "where": (lambda c, a, b: np.where(c != 0, a, b), 3),
}

#: per-jet reductions over all constituents of the jet, broadcast back to them
REDUCTIONS: tuple[str, ...] = ("sum", "mean", "max", "min")

_CONSTANTS: dict[str, float] = {"pi": float(np.pi)}
_NAMESPACES = ("cand", "jet")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
    ast.Mod: np.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: np.negative, ast.UAdd: np.positive}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_OP_SYMBOL = {ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
              ast.LShift: "<<", ast.RShift: ">>", ast.Not: "not", ast.Invert: "~", ast.Is: "is",
              ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


#: limits checked when an expression is parsed (before anything is evaluated): characters
#: of the text, expression nodes (names, numbers, operators, calls), nesting depth, and
#: characters of one number literal (which must also be a finite float)
MAX_LENGTH = 2000
MAX_NODES = 500
MAX_DEPTH = 100
MAX_LITERAL = 32
#: at most this many characters of an expression are quoted in an error message
QUOTE = 80


def _quote(text: str, start: int = 0) -> str:
    """``text[start:]`` as quoted in a message: at most :data:`QUOTE` characters."""
    part = text[start:]
    return repr(part if len(part) <= QUOTE else part[: QUOTE - 3] + "...")


def _head(text: str) -> str:
    """The expression as named in a message: quoted (shortened), with its length when cut."""
    return _quote(text) + (f" ({len(text)} characters)" if len(text) > QUOTE else "")


def _column(text: str, node: ast.AST) -> int:
    """0-based offset of ``node`` in the one-line ``text``."""
    return int(getattr(node, "col_offset", 0) or 0)


def _check_size(text: str, tree: ast.Expression) -> None:
    """Refuse an expression over :data:`MAX_NODES` nodes, :data:`MAX_DEPTH` levels, or with a
    number literal over :data:`MAX_LITERAL` characters or not a finite float. Iterative, so a
    3,000-term sum is an :class:`ExpressionError`, not a ``RecursionError``."""
    nodes = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, ast.expr):
            continue
        nodes += 1
        where = _column(text, node)
        if depth > MAX_DEPTH:
            msg = (f"feature expression {_head(text)}: nested more than {MAX_DEPTH} levels deep (each operator "
                   f"of a chain a + b + c ... is one level) at column {where + 1}: {_quote(text, where)}")
            raise ExpressionError(msg)
        if nodes > MAX_NODES:
            msg = (f"feature expression {_head(text)}: more than {MAX_NODES} terms (names, numbers, operators, "
                   f"calls); the limit is reached at column {where + 1}: {_quote(text, where)}")
            raise ExpressionError(msg)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            literal = ast.get_source_segment(text, node) or repr(node.value)
            try:
                finite = bool(np.isfinite(float(node.value)))
            except OverflowError:
                finite = False
            if len(literal) > MAX_LITERAL or not finite:
                msg = (f"feature expression {_head(text)}: number literal at column {where + 1} "
                       f"({len(literal)} characters: {_quote(literal)}) is too long or not a finite float "
                       f"(at most {MAX_LITERAL} characters, |x| < 1.8e308)")
                raise ExpressionError(msg)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _allowed() -> str:
    funcs = ", ".join(sorted(FUNCTIONS) + sorted(REDUCTIONS))
    return (
        f"allowed: numbers, pi, + - * / ** %, comparisons (== != < <= > >=), candidate branches "
        f"(bare names or cand.<name>), jet fields (jet.<name>), functions {funcs}"
    )


def is_identifier(text: str) -> bool:
    """True if ``text`` is one bare identifier (a feature name, not an expression)."""
    return text.isidentifier()


@dataclass(frozen=True)
class Expression:
    """A parsed, validated feature expression.

    Attributes
    ----------
    text : the expression as written in the spec
    cand_fields : candidate branches it reads, sorted
    jet_fields : jet fields it reads, sorted
    """

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    cand_fields: tuple[str, ...]
    jet_fields: tuple[str, ...]

    def evaluate(self, ctx: FeatureContext) -> np.ndarray:
        """Values on the flat constituents of ``ctx``.

        Returns
        -------
        np.ndarray
            float64, one value per constituent.

        Shapes:
            -> ``(n_constituents,)``
        """
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = _Evaluator(ctx).visit(self.tree.body)
        out = np.asarray(out, dtype=np.float64)
        if out.shape != (ctx.n_constituents,):
            out = np.broadcast_to(out, (ctx.n_constituents,)).copy()
        return out


class _Checker(ast.NodeVisitor):
    """Walk the tree; raise :class:`ExpressionError` on anything not whitelisted."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.cand: set[str] = set()
        self.jet: set[str] = set()

    def fail(self, what: str) -> None:
        msg = f"feature expression {_head(self.text)}: {what}; {_allowed()}"
        raise ExpressionError(msg)

    def generic_visit(self, node: ast.AST) -> None:
        name = type(node).__name__
        token = ast.get_source_segment(self.text, node) if hasattr(node, "lineno") else None
        shown = f" {_quote(token)} at column {_column(self.text, node) + 1}" if token else ""
        self.fail(f"unknown token{shown} ({name} is not allowed)")

    def visit_Expression(self, node: ast.Expression) -> None:
        self.visit(node.body)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.fail(f"unknown token {node.value!r} (only int and float numbers are allowed)")

    def _op(self, op: ast.AST, table: dict[type, Any]) -> None:
        if type(op) not in table:
            self.fail(f"unknown operator {_OP_SYMBOL.get(type(op), type(op).__name__)!r}")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._op(node.op, _BINOPS)
        self.visit(node.left)
        self.visit(node.right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        self._op(node.op, _UNARY)
        self.visit(node.operand)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op in node.ops:
            self._op(op, _COMPARE)
        self.visit(node.left)
        for c in node.comparators:
            self.visit(c)

    def _field_name(self, name: str) -> None:
        if name.startswith("_"):
            self.fail(f"unknown token {name!r} (names starting with '_' are not allowed)")

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in _CONSTANTS:
            return
        if name in FUNCTIONS or name in REDUCTIONS:
            self.fail(f"{name!r} is a function; call it, e.g. {name}(pt)")
        if name in _NAMESPACES:
            self.fail(f"{name!r} needs a field, e.g. {name}.pt")
        self._field_name(name)
        self.cand.add(name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        if not (isinstance(base, ast.Name) and base.id in _NAMESPACES):
            token = ast.get_source_segment(self.text, node) or node.attr
            self.fail(f"unknown token {token!r} (attributes only as jet.<field> or cand.<field>)")
        self._field_name(node.attr)
        (self.jet if base.id == "jet" else self.cand).add(node.attr)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            token = ast.get_source_segment(self.text, node.func) or "?"
            self.fail(f"unknown function {token!r}")
        name = node.func.id
        if node.keywords:
            self.fail(f"{name}() takes no keyword arguments")
        if name in REDUCTIONS:
            nargs = 1
        elif name in FUNCTIONS:
            nargs = FUNCTIONS[name][1]
        else:
            self.fail(f"unknown function {name!r}")
        if len(node.args) != nargs:
            self.fail(f"{name}() takes {nargs} argument(s), got {len(node.args)}")
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.fail(f"{name}() takes no *arguments")
            self.visit(a)


class _Evaluator:
    """Evaluate a checked tree on a :class:`FeatureContext` (numpy, float64)."""

    def __init__(self, ctx: FeatureContext) -> None:
        self.ctx = ctx

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            return np.asarray(self.ctx.cand(node.id), dtype=np.float64)
        if isinstance(node, ast.Attribute):
            assert isinstance(node.value, ast.Name)
            if node.value.id == "jet":
                return np.asarray(self.ctx.jet(node.attr), dtype=np.float64)
            return np.asarray(self.ctx.cand(node.attr), dtype=np.float64)
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self.visit(node.operand))
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            result: Any = True
            for op, comp in zip(node.ops, node.comparators):
                right = self.visit(comp)
                result = np.logical_and(result, _COMPARE[type(op)](left, right))
                left = right
            return np.asarray(result, dtype=np.float64)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            args = [self.visit(a) for a in node.args]
            if node.func.id in REDUCTIONS:
                return self.reduce(node.func.id, args[0])
            return FUNCTIONS[node.func.id][0](*args)
        msg = f"unexpected node {type(node).__name__}"  # unreachable after _Checker
        raise ExpressionError(msg)

    def reduce(self, how: str, values: Any) -> np.ndarray:
        """Per-jet reduction of per-constituent ``values``, broadcast to the constituents."""
        ctx = self.ctx
        counts = ctx.counts
        v = np.broadcast_to(np.asarray(values, dtype=np.float64), (ctx.n_constituents,))
        if how in ("sum", "mean"):
            per_jet = np.bincount(ctx.jet_of_constituent(), weights=v, minlength=len(counts))
            if how == "mean":
                per_jet = per_jet / np.maximum(counts, 1)
        else:
            per_jet = np.zeros(len(counts), dtype=np.float64)
            nonempty = counts > 0
            if nonempty.any():
                ufunc = np.maximum if how == "max" else np.minimum
                per_jet[nonempty] = ufunc.reduceat(v, ctx.starts[nonempty])
        return np.repeat(per_jet, counts)


@functools.lru_cache(maxsize=512)
def parse_expression(text: str) -> Expression:
    """Parse and validate a feature expression (cached).

    Raises
    ------
    ExpressionError
        naming the unknown token (function, operator, name form, syntax) and listing
        what is allowed; or an expression over the limits :data:`MAX_LENGTH`,
        :data:`MAX_NODES`, :data:`MAX_DEPTH`, :data:`MAX_LITERAL` (a number that is not a
        finite float). Messages quote at most :data:`QUOTE` characters of the expression
        and of the offending part, with its column.
    """
    if not isinstance(text, str) or not text.strip():
        msg = f"feature expression must be a non-empty string, got {_quote(repr(text))}"
        raise ExpressionError(msg)
    if len(text.strip()) > MAX_LENGTH:
        msg = f"feature expression {_head(text.strip())} is longer than {MAX_LENGTH} characters"
        raise ExpressionError(msg)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""
        msg = f"feature expression {_head(text.strip())} is not valid syntax ({err.msg}{where}); {_allowed()}"
        raise ExpressionError(msg) from None
    except (RecursionError, MemoryError):
        msg = f"feature expression {_head(text.strip())} is nested too deeply to parse (at most {MAX_DEPTH} levels)"
        raise ExpressionError(msg) from None
    _check_size(text.strip(), tree)
    checker = _Checker(text.strip())
    checker.visit(tree)
    return Expression(text, tree, tuple(sorted(checker.cand)), tuple(sorted(checker.jet)))
