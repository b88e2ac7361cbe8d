"""Issue 23, item 4: expression limits are checked when a spec is read (literal size, node
count, depth, length), never at scoring time, and messages quote at most ~80 characters of
the offending part with its column."""

from __future__ import annotations

import re

import pytest

from hepml_coffea.representations import InputSpec
from hepml_coffea.representations.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    ExpressionError,
    parse_expression,
)


def _spec(expr: str) -> dict:
    return {"kind": "sequence", "length": 10, "features": [{"name": "log_pt"}, {"name": expr}]}


def _quoted_parts(msg: str) -> list[str]:
    return re.findall(r"'([^']*)'", msg)


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("9" * 400 + " * pt", "number literal at column 1 (400 characters: "),  # was an OverflowError at scoring
        ("log(pt) + 1e400", "number literal at column 11 (5 characters: '1e400') is too long or not a finite float"),
        (" + ".join(["pt"] * 3000), f"is longer than {MAX_LENGTH} characters"),  # was a RecursionError
        ("+".join(["pt"] * (MAX_DEPTH + 2)), f"nested more than {MAX_DEPTH} levels deep"),
        ("+".join(["a*b*c*d*e"] * 70), f"more than {MAX_NODES} terms"),  # 699 nodes, 74 levels
        ("-" * (MAX_DEPTH + 1) + "pt", f"nested more than {MAX_DEPTH} levels deep"),
    ],
)
def test_limits_refused_when_the_spec_is_read(expr, what):
    with pytest.raises(ExpressionError) as err:
        InputSpec.from_dict(_spec(expr))
    msg = str(err.value)
    assert what in msg
    assert "\n" not in msg and len(msg) < 600
    for part in _quoted_parts(msg):  # the expression and the offending part: at most ~80 characters each
        assert len(part) <= 80, part


def test_position_names_the_offending_part():
    expr = "log(pt) + " + "+".join(["eta"] * (MAX_DEPTH + 5))
    with pytest.raises(ExpressionError) as err:
        parse_expression(expr)
    m = re.search(r"at column (\d+): '([^']*)'", str(err.value))
    assert m is not None
    col, shown = int(m.group(1)), m.group(2)
    assert expr[col - 1:].startswith(shown.removesuffix("..."))


def test_long_bad_token_is_quoted_short():
    expr = "pt + [" + "x, " * 200 + "x][0]"
    with pytest.raises(ExpressionError) as err:
        parse_expression(expr)
    msg = str(err.value)
    assert "unknown token '[x, x, x" in msg and "at column 6 (Subscript is not allowed)" in msg
    assert all(len(p) <= 80 for p in _quoted_parts(msg.split("; allowed")[0]))


def test_limits_leave_real_recipes_alone():
    for expr in ("sqrt((jet.eta - eta)**2 + wrap_phi(jet.phi - phi)**2)", "log(pt / sum(pt))",
                 "log1p(abs(d0))", " + ".join(["pt"] * 60), "1.0e-300 * pt + 123456789012345678901234567890"):
        parse_expression(expr)
