"""weaver formulas and branch names -> feature expressions (hepml_coffea/weaver/translate.py)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepml_coffea.representations.features import FeatureContext
from hepml_coffea.representations.expressions import parse_expression
from hepml_coffea.weaver.translate import BranchMap, TranslationError, Translator, load_branch_map


def _eval(text: str, cands: dict, jets: dict | None = None) -> np.ndarray:
    counts = np.array([len(next(iter(cands.values())))])
    ctx = FeatureContext(ak.zip({k: np.asarray(v) for k, v in cands.items()}), ak.Array([jets or {"pt": 1.0}]), counts)
    return parse_expression(text).evaluate(ctx)


BM = BranchMap("t", pf={"part_px": "pt * cos(phi)", "part_py": "pt * sin(phi)", "part_pz": "pt * sinh(eta)",
                        "part_energy": "energy", "jet_pt": "jet.pt", "jet_energy": "sum(part_energy)"})


def test_new_variables_translate_recursively_and_evaluate_like_numpy() -> None:
    tr = Translator(BM, {"part_pt": "np.hypot(part_px, part_py)", "part_logptrel": "np.log(part_pt/jet_pt)",
                         "part_mask": "ak.ones_like(part_energy)", "x": "np.abs(part_px) + math.log(part_energy)"},
                    "pf")
    assert tr.variable("part_pt") == "hypot(pt * cos(phi), pt * sin(phi))"
    cands = {"pt": [10.0, 5.0], "phi": [0.3, -1.0], "eta": [0.1, 0.2], "energy": [12.0, 6.0]}
    got = _eval(tr.variable("part_logptrel"), cands, {"pt": 40.0})
    np.testing.assert_allclose(got, np.log(np.array([10.0, 5.0]) / 40.0), rtol=1e-12)
    np.testing.assert_array_equal(_eval(tr.variable("part_mask"), cands), [1.0, 1.0])
    want = np.abs(10 * np.cos(0.3)), np.abs(5 * np.cos(-1.0))
    np.testing.assert_allclose(_eval(tr.variable("x"), cands), np.array(want) + np.log([12.0, 6.0]))


def test_p4_helpers_and_boolean_operators() -> None:
    tr = Translator(BM, {"m": "_p4_from_pxpypze(part_px, part_py, part_pz, part_energy).mass",
                         "e2": "_p4_from_ptetaphie(part_px, part_py, part_pz, part_energy).eta",
                         "sel": "(part_px > 0) & (part_py < 0) | ~(part_energy > 100)"}, "pf")
    cands = {"pt": [10.0], "phi": [-0.3], "eta": [0.5], "energy": [12.0]}
    px, py, pz = 10 * np.cos(-0.3), 10 * np.sin(-0.3), 10 * np.sinh(0.5)
    np.testing.assert_allclose(_eval(tr.variable("m"), cands), np.sqrt(144 - px**2 - py**2 - pz**2), rtol=1e-12)
    np.testing.assert_allclose(_eval(tr.variable("e2"), cands), [py])  # the helper's 2nd argument is eta
    np.testing.assert_array_equal(_eval(tr.variable("sel"), cands), [1.0])


@pytest.mark.parametrize(("formula", "needle"), [
    ("eval('1')", "function 'eval' is not supported"),
    ("np.linalg.norm(part_px)", "not supported"),
    ("part_px[0]", "Subscript"),
    ("os.system('x')", "not supported"),
    ("part_px.__class__", "attribute"),
    ("np.log(part_px, part_py)", "argument"),
    ("lambda: 1", "Lambda"),
])
def test_refused_formulas_name_the_formula(formula: str, needle: str) -> None:
    tr = Translator(BM, {"v": formula}, "pf")
    with pytest.raises(TranslationError, match=needle) as err:
        tr.variable("v")
    assert "'v'" in str(err.value)


def test_unmapped_names_are_collected_and_cycles_refused() -> None:
    tr = Translator(BM, {"v": "np.log(part_foo) + part_bar"}, "pf")
    assert tr.variable("v") is None
    assert tr.unmapped == {"part_foo", "part_bar"}
    tr = Translator(BM, {"a": "b + 1", "b": "a * 2"}, "pf")
    with pytest.raises(TranslationError, match="cycle: a -> b -> a"):
        tr.variable("a")


def test_shipped_maps_translate_every_name() -> None:
    for name in ("jetclass", "cms"):
        bm = load_branch_map(name)
        for coll, names in (("pf", bm.pf), ("sv", bm.sv)):
            tr = Translator(bm, {}, coll)
            for n in names:
                assert tr.variable(n) is not None, (name, n)
        tr = Translator(bm, {}, "pf")
        for n in bm.new_variables:
            assert tr.variable(n) is not None, (name, n)
    assert load_branch_map("jetclass").sort_pf_by == "puppiWeight * pt"


def test_user_map_file_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("pf:\n  part_foo: log1p(abs(d0))\nsort_pf_by: cand.pt\n")
    bm = load_branch_map("jetclass").merged(load_branch_map(p))
    assert bm.pf["part_foo"] == "log1p(abs(d0))" and bm.sort_pf_by == "cand.pt" and "part_px" in bm.pf
    p.write_text("pfcands:\n  a: b\n")
    with pytest.raises(TranslationError, match="unknown sections"):
        load_branch_map(p)
    with pytest.raises(TranslationError, match="neither a shipped map"):
        load_branch_map(tmp_path / "none.yaml")
