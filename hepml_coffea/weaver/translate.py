"""weaver formulas and branch names -> hepml_coffea feature expressions.

weaver evaluates ``new_variables`` with Python's ``eval`` over numpy / awkward / math and its
own helpers. Here each formula is parsed with :mod:`ast` and rewritten node by node into the
package's safe expression language (:mod:`hepml_coffea.representations.expressions`),
never evaluated as Python. Names are resolved, in this order:

1. another ``new_variables`` entry (translated recursively, cycles refused);
2. the branch map: weaver's ntuple branch names (``part_px``, ``jet_pt``, ``pfcand_etarel``,
   ``sv_mass``, ...) -> expressions over NanoAOD / PFNano fields (:class:`BranchMap`).

Supported calls: ``np.``/``numpy.``/``math.``/``ak.``/``awkward.`` ``log``, ``log1p``,
``log10``, ``exp``, ``sqrt``, ``abs``/``absolute``/``fabs``, ``sign``, ``hypot``, ``arctan2``/
``atan2``, ``tanh``, ``sin``, ``cos``, ``tan``, ``sinh``, ``cosh``, ``arcsinh``/``asinh``,
``arctan``/``atan``, ``minimum``, ``maximum``, ``clip``, ``where``, ``floor``, ``ceil``,
``ones_like``, ``zeros_like`` (also ``awkward.JaggedArray.ones_like``); weaver's p4 helpers
``_p4_from_ptetaphie(pt, eta, phi, e).<q>`` / ``_p4_from_pxpypze(px, py, pz, e).<q>`` /
``_p4_from_ptetaphim(pt, eta, phi, m).<q>`` for ``q`` in pt, eta, phi, energy, mass, px, py,
pz; ``&``, ``|``, ``~`` on comparisons. Anything else is refused at import, naming the
formula and the token.

One documented difference: every logarithm here floors its argument at 1e-8
(``LOG_FLOOR``), where numpy gives ``-inf`` for 0; after weaver's clipping (a clipped variable
is ``max(-inf, min) = min`` either way) the inputs are identical; an *unclipped* ``log(0)``
would be ``-18.4`` here and ``-3.4e38`` (``nan_to_num`` of ``-inf``) in weaver.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hepml_coffea.representations.expressions import ExpressionError, parse_expression

__all__ = ["BranchMap", "SHIPPED_MAPS", "TranslationError", "Translator", "load_branch_map"]


class TranslationError(ValueError):
    """A weaver formula or branch name that cannot be translated (the message names it)."""


#: weaver/numpy function name -> (our function, number of arguments)
_FUNCS: dict[str, tuple[str, int]] = {
    "log": ("log", 1), "log1p": ("log1p", 1), "log10": ("log10", 1), "exp": ("exp", 1),
    "sqrt": ("sqrt", 1), "abs": ("abs", 1), "absolute": ("abs", 1), "fabs": ("abs", 1),
    "sign": ("sign", 1), "hypot": ("hypot", 2), "arctan2": ("arctan2", 2), "atan2": ("arctan2", 2),
    "tanh": ("tanh", 1), "sin": ("sin", 1), "cos": ("cos", 1), "tan": ("tan", 1), "sinh": ("sinh", 1),
    "cosh": ("cosh", 1), "arcsinh": ("arcsinh", 1), "asinh": ("arcsinh", 1), "arctan": ("arctan", 1),
    "atan": ("arctan", 1), "minimum": ("minimum", 2), "maximum": ("maximum", 2), "clip": ("clip", 3),
    "where": ("where", 3), "floor": ("floor", 1), "ceil": ("ceil", 1), "ones_like": ("ones_like", 1),
    "zeros_like": ("zeros_like", 1),
}
_MODULES = {"np", "numpy", "math", "ak", "awkward"}

#: p4 quantities from weaver's helpers, as templates over the helper's four arguments
_P4 = {
    "_p4_from_pxpypze": ("px", "py", "pz", "e"),
    "_p4_from_ptetaphie": ("pt", "eta", "phi", "e"),
    "_p4_from_ptetaphim": ("pt", "eta", "phi", "m"),
}
_P4_Q = {
    "_p4_from_pxpypze": {
        "px": "({px})", "py": "({py})", "pz": "({pz})", "energy": "({e})", "e": "({e})",
        "pt": "hypot({px}, {py})", "phi": "arctan2({py}, {px})",
        "eta": "arcsinh(({pz}) / hypot({px}, {py}))",
        "mass": "sqrt(({e}) ** 2 - ({px}) ** 2 - ({py}) ** 2 - ({pz}) ** 2)",
    },
    "_p4_from_ptetaphie": {
        "pt": "({pt})", "eta": "({eta})", "phi": "({phi})", "energy": "({e})", "e": "({e})",
        "px": "({pt}) * cos({phi})", "py": "({pt}) * sin({phi})", "pz": "({pt}) * sinh({eta})",
        "mass": "sqrt(({e}) ** 2 - (({pt}) * cosh({eta})) ** 2)",
    },
    "_p4_from_ptetaphim": {
        "pt": "({pt})", "eta": "({eta})", "phi": "({phi})", "mass": "({m})", "m": "({m})",
        "px": "({pt}) * cos({phi})", "py": "({pt}) * sin({phi})", "pz": "({pt}) * sinh({eta})",
        "energy": "sqrt((({pt}) * cosh({eta})) ** 2 + ({m}) ** 2)",
        "e": "sqrt((({pt}) * cosh({eta})) ** 2 + ({m}) ** 2)",
    },
}

#: shipped branch maps: name -> file in hepml_coffea/weaver/branch_maps/
SHIPPED_MAPS: dict[str, str] = {"jetclass": "jetclass.yaml", "cms": "cms.yaml"}


@dataclass(frozen=True)
class BranchMap:
    """weaver branch names -> feature expressions, per collection.

    Attributes
    ----------
    name : where it came from (shipped name or file)
    pf : names read per constituent (expressions over PFCands fields, ``jet.<field>``,
        per-jet reductions); may refer to other names of the map
    sv : names read per secondary vertex (expressions over FatJetSVs fields + ``eta``)
    new_variables : default formulas for derived names (used when the config itself has
        none for them, e.g. a preprocess.json import)
    sort_pf_by : the constituent order the model was trained with, as a feature expression
        (decreasing; ``None``: pT as stored)
    """

    name: str
    pf: dict[str, str] = field(default_factory=dict)
    sv: dict[str, str] = field(default_factory=dict)
    new_variables: dict[str, str] = field(default_factory=dict)
    sort_pf_by: str | None = None

    def merged(self, other: BranchMap) -> BranchMap:
        """This map extended (and overridden) by ``other``."""
        return BranchMap(f"{self.name}+{other.name}", {**self.pf, **other.pf}, {**self.sv, **other.sv},
                         {**self.new_variables, **other.new_variables}, other.sort_pf_by or self.sort_pf_by)

    def to_dict(self) -> dict[str, Any]:
        return {"pf": dict(self.pf), "sv": dict(self.sv), "new_variables": dict(self.new_variables),
                "sort_pf_by": self.sort_pf_by}


def load_branch_map(source: str | os.PathLike[str]) -> BranchMap:
    """A shipped map by name (:data:`SHIPPED_MAPS`) or a YAML file with sections ``pf``,
    ``sv`` and ``new_variables`` (each a mapping of name -> expression/formula) and an
    optional ``sort_pf_by`` expression.

    Raises
    ------
    TranslationError
        unknown name, missing file, or malformed entries (named).
    """
    if str(source) in SHIPPED_MAPS:
        text = (resources.files("hepml_coffea.weaver") / "branch_maps" / SHIPPED_MAPS[str(source)]).read_text()
        name = str(source)
    else:
        p = Path(source)
        if not p.is_file():
            msg = f"branch map {str(source)!r} is neither a shipped map ({sorted(SHIPPED_MAPS)}) nor a file"
            raise TranslationError(msg)
        text, name = p.read_text(), str(p)
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        msg = f"branch map {name}: not valid YAML ({str(err).splitlines()[0]})"
        raise TranslationError(msg) from None
    unknown = set(doc) - {"pf", "sv", "new_variables", "description", "sort_pf_by"}
    if unknown:
        msg = f"branch map {name}: unknown sections {sorted(unknown)} (expected pf, sv, new_variables)"
        raise TranslationError(msg)
    out: dict[str, dict[str, str]] = {}
    for sec in ("pf", "sv", "new_variables"):
        d = doc.get(sec) or {}
        if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in d.items()):
            msg = f"branch map {name}: section {sec!r} must map names to expression strings"
            raise TranslationError(msg)
        out[sec] = dict(d)
    sort_by = doc.get("sort_pf_by")
    if sort_by is not None:
        from hepml_coffea.representations.features import check_feature

        try:
            check_feature(str(sort_by))
        except ValueError as err:
            msg = f"branch map {name}: sort_pf_by: {err}"
            raise TranslationError(msg) from None
    return BranchMap(name, out["pf"], out["sv"], out["new_variables"], None if sort_by is None else str(sort_by))


def _paren(text: str) -> ast.expr:
    return ast.parse(f"({text})", mode="eval").body


class Translator:
    """Translate weaver variable names into expressions for one collection.

    Parameters
    ----------
    branch_map : the :class:`BranchMap`
    new_variables : the config's own formulas (take precedence over the map's defaults)
    collection : ``"pf"`` or ``"sv"``: which section of the map a name is looked up in
    """

    def __init__(self, branch_map: BranchMap, new_variables: dict[str, str], collection: str) -> None:
        self.map = branch_map
        self.formulas = {**branch_map.new_variables, **new_variables}
        self.collection = collection
        self.names = branch_map.pf if collection == "pf" else branch_map.sv
        self._done: dict[str, str] = {}
        self._stack: list[str] = []
        self.unmapped: set[str] = set()

    def variable(self, name: str) -> str | None:
        """The expression for weaver variable ``name`` (``None`` and recorded in
        :attr:`unmapped` if it, or a name it needs, has no translation)."""
        if name in self._done:
            return self._done[name]
        if name in self._stack:
            msg = f"weaver formulas refer to each other in a cycle: {' -> '.join([*self._stack, name])}"
            raise TranslationError(msg)
        self._stack.append(name)
        try:
            if name in self.formulas:
                text = self._formula(name, self.formulas[name], weaver=True)
            elif name in self.names:
                text = self._formula(name, self.names[name], weaver=False)
            else:
                self.unmapped.add(name)
                text = None
        finally:
            self._stack.pop()
        if text is not None and text.isidentifier():
            from hepml_coffea.representations.features import FEATURES

            if text not in FEATURES:  # a bare branch name reads the field as it is
                text = f"cand.{text}"
        if text is not None:
            try:
                parse_expression(text)
            except ExpressionError as err:
                msg = f"weaver variable {name!r} translates to an invalid expression: {err}"
                raise TranslationError(msg) from None
            self._done[name] = text
        return text

    def _formula(self, name: str, formula: str, *, weaver: bool) -> str | None:
        try:
            tree = ast.parse(formula.strip(), mode="eval")
        except SyntaxError as err:
            msg = f"formula of {name!r} ({formula!r}) is not valid Python syntax ({err.msg})"
            raise TranslationError(msg) from None
        before = len(self.unmapped)
        node = _Rewriter(self, name, formula, weaver).visit(tree.body)
        if len(self.unmapped) > before or node is None:
            return None
        return ast.unparse(node)


class _Rewriter(ast.NodeTransformer):
    """Rewrite one formula: weaver names -> expressions, numpy calls -> our functions.

    In a branch-map entry (``weaver=False``) names that are not map/formula names are
    candidate fields (already our language) and stay; in a weaver formula every name must
    resolve."""

    def __init__(self, tr: Translator, name: str, formula: str, weaver: bool) -> None:
        self.tr, self.name, self.formula, self.weaver = tr, name, formula, weaver

    def fail(self, what: str) -> None:
        shown = self.formula if len(self.formula) <= 120 else self.formula[:117] + "..."
        msg = f"cannot translate the formula of {self.name!r} ({shown!r}): {what}"
        raise TranslationError(msg)

    def visit_Name(self, node: ast.Name) -> ast.expr:
        n = node.id
        if n in _MODULES:
            self.fail(f"{n!r} used as a value")
        if n in self.tr.formulas or n in self.tr.names:
            if n == self.name and not self.weaver:
                return node  # a map entry named like the field it reads (e.g. charge: charge)
            text = self.tr.variable(n)
            return _paren(text) if text is not None else node
        if self.weaver:
            self.tr.unmapped.add(n)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and node.value.func.id in _P4:
            return self._p4(node.value, node.attr)
        if isinstance(node.value, ast.Name) and node.value.id in ("jet", "cand") and not self.weaver:
            return node
        self.fail(f"attribute {ast.unparse(node)!r} is not supported")
        return None

    def _p4(self, call: ast.Call, attr: str) -> ast.expr:
        helper = call.func.id  # type: ignore[attr-defined]
        if len(call.args) != 4 or call.keywords:
            self.fail(f"{helper}() takes 4 arguments")
        q = _P4_Q[helper].get(attr)
        if q is None:
            self.fail(f"{helper}(...).{attr} is not supported (known: {sorted(_P4_Q[helper])})")
        args = [ast.unparse(self.visit(a)) for a in call.args]
        return _paren(q.format(**dict(zip(_P4[helper], args))))

    def visit_Call(self, node: ast.Call) -> ast.expr:
        f = node.func
        chain: list[str] = []
        while isinstance(f, ast.Attribute):
            chain.append(f.attr)
            f = f.value
        if isinstance(f, ast.Name):
            chain.append(f.id)
        chain.reverse()
        if chain and chain[0] in _P4:
            self.fail(f"{chain[0]}(...) must be followed by a quantity, e.g. .pt")
        if not chain or (len(chain) > 1 and chain[0] not in _MODULES) or (self.weaver and len(chain) == 1):
            self.fail(f"function {ast.unparse(node.func)!r} is not supported")
        fname = chain[-1]
        if len(chain) == 1:  # a map entry, already in our language
            return self.generic_visit(node)
        if fname not in _FUNCS:
            self.fail(f"function {ast.unparse(node.func)!r} is not supported (supported: {sorted(_FUNCS)})")
        ours, nargs = _FUNCS[fname]
        if node.keywords or len(node.args) != nargs:
            self.fail(f"{ast.unparse(node.func)}() with {len(node.args)} argument(s){' and keywords' if node.keywords else ''}")
        return ast.Call(func=ast.Name(id=ours, ctx=ast.Load()), args=[self.visit(a) for a in node.args], keywords=[])

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.BitAnd):
            return ast.BinOp(left=left, op=ast.Mult(), right=right)
        if isinstance(node.op, ast.BitOr):
            return ast.Call(func=ast.Name(id="maximum", ctx=ast.Load()), args=[left, right], keywords=[])
        return ast.BinOp(left=left, op=node.op, right=right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        operand = self.visit(node.operand)
        if isinstance(node.op, (ast.Invert, ast.Not)):
            return ast.BinOp(left=ast.Constant(1.0), op=ast.Sub(), right=operand)
        return ast.UnaryOp(op=node.op, operand=operand)

    def generic_visit(self, node: ast.AST) -> Any:
        if isinstance(node, (ast.Constant, ast.Compare, ast.expr_context, ast.cmpop, ast.operator, ast.unaryop,
                             ast.Call)):
            return super().generic_visit(node)
        self.fail(f"{type(node).__name__} ({ast.unparse(node) if isinstance(node, ast.expr) else ''!s}) is not supported")
        return None
