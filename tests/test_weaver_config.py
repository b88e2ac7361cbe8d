"""weaver's preprocess.json and data-config YAML readers (hepml_coffea/weaver/config.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepml_coffea.weaver.config import WeaverConfigError, read_data_config, read_preprocess_json

JC = Path(__file__).parent / "samples" / "jetclass"


def test_preprocess_json_of_jetclass() -> None:
    cfg = read_preprocess_json(JC / "preprocess.json")
    assert [i.name for i in cfg.inputs] == ["pf_points", "pf_features", "pf_vectors", "pf_mask"]
    assert cfg.labels[0] == "label_QCD" and cfg.labels[8] == "label_Tbqq" and len(cfg.labels) == 10
    feats = {v.name: v for v in cfg.inputs[1].vars}
    # median / norm_factor / bounds -> centre, scale, clip; +-1e32 bounds and 0/1 -> untouched
    assert (feats["part_pt_log"].center, feats["part_pt_log"].scale) == (1.7, 0.7)
    assert (feats["part_pt_log"].clip_min, feats["part_pt_log"].clip_max) == (-5.0, 5.0)
    assert feats["part_deta"].center is None and feats["part_deta"].clip_min is None
    assert cfg.inputs[0].length == 128 and not cfg.pad_mode_known


def test_data_config_of_jetclass() -> None:
    cfg = read_data_config(JC / "JetClass_kin.yaml")
    assert {i.name: i.pad_mode for i in cfg.inputs} == {
        "pf_points": "wrap", "pf_features": "wrap", "pf_vectors": "wrap", "pf_mask": "constant"}
    feats = {v.name: v for v in cfg.inputs[1].vars}
    # weaver's defaults for [name, subtract_by, multiply_by]: clip -5 / 5, pad 0
    assert (feats["part_deltaR"].center, feats["part_deltaR"].scale, feats["part_deltaR"].clip_min,
            feats["part_deltaR"].clip_max, feats["part_deltaR"].pad_value) == (0.2, 4.0, -5.0, 5.0, 0.0)
    assert feats["part_dphi"].center is None
    assert cfg.new_variables["part_logptrel"] == "np.log(part_pt/jet_pt)"


def test_cms_style_lengths(tmp_path: Path) -> None:
    """CMS's newer files say min_length / max_length where weaver's say var_length."""
    doc = {"input_names": ["pf_features"], "output_names": ["a", "b"],
           "pf_features": {"var_names": ["x"], "min_length": 16, "max_length": 100,
                           "var_infos": {"x": {"median": 1.0, "norm_factor": 2.0, "replace_inf_value": 0,
                                               "lower_bound": -5, "upper_bound": 5, "pad": 0}}}}
    p = tmp_path / "preprocess.json"
    p.write_text(json.dumps(doc))
    cfg = read_preprocess_json(p)
    assert cfg.inputs[0].length == 100 and cfg.inputs[0].vars[0].center == 1.0


@pytest.mark.parametrize(("text", "needle"), [
    ("{", "not a valid JSON"),
    ('{"input_names": ["a"]}', "output_names"),
    ('{"input_names": ["a"], "output_names": ["x"]}', "no var_names"),
    ('{"input_names": ["a"], "output_names": ["x"], "a": {"var_names": ["v"], "var_infos": {"v": {}}}}',
     "neither var_length"),
    ('{"input_names": ["a"], "output_names": ["x"], "a": {"var_names": ["v"], "var_length": 4, "var_infos": {}}}',
     "no var_infos entry"),
])
def test_bad_preprocess_json(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "preprocess.json"
    p.write_text(text)
    with pytest.raises(WeaverConfigError, match=needle):
        read_preprocess_json(p)


@pytest.mark.parametrize(("text", "needle"), [
    ("inputs: {}", "no 'inputs'"),
    ("inputs: {pf_x: {length: 4, vars: [[a, auto]]}}\npreprocess: {method: auto}\nlabels: {type: simple, value: [a]}",
     "automatic standardisation"),
    ("inputs: {pf_mask: {length: 4, pad_mode: wrap, vars: [m]}}\nlabels: {type: simple, value: [a]}", "must use pad_mode constant"),
    ("inputs: {pf_x: {length: 4, pad_mode: mirror, vars: [m]}}\nlabels: {type: simple, value: [a]}", "pad_mode 'mirror'"),
    ("inputs: {pf_x: {length: 4, vars: [m]}}\nlabels: {type: custom, value: {a: b}}", "only 'simple' labels"),
])
def test_bad_data_config(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(WeaverConfigError, match=needle):
        read_data_config(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeaverConfigError, match="does not exist"):
        read_preprocess_json(tmp_path / "nope.json")
