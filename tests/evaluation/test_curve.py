"""Learning curves (``hepml_coffea/evaluation/curve.py``): the per-doubling gain by hand,
points from real (tiny) artifacts, and ``hepml-coffea evaluate --curve`` on generated files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from hepml_coffea.evaluation.curve import curve_point, learning_curve, per_doubling, resolve_curve_args


def _rep(r: float, lo: float, hi: float) -> dict:
    return {"eS30": {"rejection": r, "rejection_low": lo, "rejection_high": hi}}


def test_per_doubling_by_hand():
    a = {"n_train": 1000, "report": _rep(100.0, 90.0, 110.0)}
    b = {"n_train": 4000, "report": _rep(196.0, 176.4, 215.6)}
    d = per_doubling(a, b)
    # 1.96x over two doublings: 1.4 per doubling; 10 % relative errors on each: 1.4 * sqrt(2) * 0.1 / 2
    assert d["doublings"] == pytest.approx(2.0)
    assert d["gain"] == pytest.approx(1.4)
    assert d["err"] == pytest.approx(1.4 * np.sqrt(0.02) / 2)
    # no gain: exactly 1; an infinite upper limit counts as twice the value
    c = {"n_train": 2000, "report": _rep(100.0, 80.0, float("inf"))}
    assert per_doubling(a, c)["gain"] == pytest.approx(1.0)
    assert per_doubling(a, c)["err"] == pytest.approx(np.hypot(0.1, 0.6))


def _copy_with(src, dst, n_train=None, init_from=None):
    """A re-sealed copy of an artifact with another training size / a warm start recorded."""
    from hepml_coffea.artifacts import update_artifact

    shutil.copytree(src, dst)
    files, meta = {}, {"name": dst.name}
    if n_train is not None:
        m = json.loads((dst / "metrics.json").read_text())
        m["n_train"] = n_train
        files["metrics.json"] = json.dumps(m).encode()
    if init_from is not None:
        training = yaml.safe_load((dst / "model.yaml").read_text())["training"]
        meta["training"] = {**training, "init_from": {"hash": init_from}}
    update_artifact(dst, files=files or None, meta=meta)
    return dst


def test_points_grouped_sorted_and_skipped(tiny_artifacts, tmp_path):
    pfn_big = _copy_with(tiny_artifacts["pfn"], tmp_path / "pfn-big", n_train=4 * 10**4)
    pfn_small = _copy_with(tiny_artifacts["pfn"], tmp_path / "pfn-small", n_train=10**4)
    warm = _copy_with(tiny_artifacts["pfn"], tmp_path / "pfn-warm", init_from="abc")
    assert curve_point(str(tiny_artifacts["baseline"])) is None  # no neural training
    assert curve_point(str(warm)) is None  # saw its parent's jets too
    point = curve_point(str(pfn_small))
    assert point["model"] == "pfn" and point["n_train"] == 10**4 and len(point["hash"]) == 64

    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(400), np.zeros(2000)].astype(int)
    good = labels * 1.5 + rng.normal(0, 1, len(labels))
    same = _copy_with(tiny_artifacts["lstm"], tmp_path / "lstm-renamed")  # same weights, another name
    names = [str(pfn_big), str(pfn_small), str(warm), str(tiny_artifacts["lstm"]), str(same)]
    scores = {str(pfn_big): good, str(pfn_small): good + rng.normal(0, 1, len(labels)), str(warm): good,
              str(tiny_artifacts["lstm"]): good, str(same): good}
    curve = learning_curve(labels, scores, names)
    assert sorted(curve["models"]) == ["lstm", "pfn"]
    pfn = curve["models"]["pfn"]
    assert [p["n_train"] for p in pfn] == [10**4, 4 * 10**4]
    assert "per_doubling" not in pfn[0] and pfn[1]["per_doubling"]["doublings"] == pytest.approx(2.0)
    assert pfn[1]["per_doubling"]["gain"] > 1  # the less noisy scores reject more
    assert curve["skipped"] == [str(warm)]
    assert curve["duplicates"] == {str(same): str(tiny_artifacts["lstm"])} and len(curve["models"]["lstm"]) == 1


def test_point_without_training_size_is_an_error(tiny_artifacts, tmp_path):
    """An artifact that does not record its training size cannot be placed on the curve: one line
    naming the file, not a silent point at 0 jets."""
    from hepml_coffea.artifacts import update_artifact

    dst = _copy_with(tiny_artifacts["pfn"], tmp_path / "pfn-nosize")
    m = json.loads((dst / "metrics.json").read_text())
    del m["n_train"]
    update_artifact(dst, files={"metrics.json": json.dumps(m).encode()})
    with pytest.raises(ValueError, match="metrics.json has no n_train"):
        curve_point(str(dst))


def test_resolve_curve_args(tiny_artifacts, tmp_path):
    (tmp_path / "pts").mkdir()
    _copy_with(tiny_artifacts["pfn"], tmp_path / "pts" / "b")
    _copy_with(tiny_artifacts["pfn"], tmp_path / "pts" / "a")
    assert resolve_curve_args([str(tmp_path / "pts")]) == [str(tmp_path / "pts" / "a"), str(tmp_path / "pts" / "b")]
    assert resolve_curve_args([str(tmp_path / "pts" / "a")]) == [str(tmp_path / "pts" / "a")]
    with pytest.raises(FileNotFoundError, match="no artifact"):
        resolve_curve_args([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="not an artifact folder"):
        resolve_curve_args([str(tmp_path / "missing")])


def test_cli_evaluate_with_curve(ttbar_file, qcd_file, tiny_artifacts, tmp_path):
    from hepml_coffea.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "ttbar_1.root").symlink_to(ttbar_file)
    (data / "qcd_1.root").symlink_to(qcd_file)
    pts = tmp_path / "pts"
    pts.mkdir()
    _copy_with(tiny_artifacts["pfn"], pts / "pfn-2x", n_train=10**6)
    md = tmp_path / "T.md"
    md.write_text("x\n<!-- hepml-coffea evaluate: begin (generated, do not edit) -->\n"
                  "<!-- hepml-coffea evaluate: end -->\ny\n")
    rc = main(["evaluate", "--data", str(data), "--taggers", "baseline", str(tiny_artifacts["pfn"]),
               "--out", str(tmp_path / "ev"), "--curve", str(pts), "--update-markdown", str(md)])
    assert rc == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(res["taggers"]) == {"baseline", str(tiny_artifacts["pfn"])}  # curve points stay out of the table
    pfn = res["learning_curve"]["models"]["pfn"]
    assert [p["artifact"] for p in pfn] == [str(tiny_artifacts["pfn"]), str(pts / "pfn-2x")]
    assert res["learning_curve"]["skipped"] == ["baseline"]
    assert (tmp_path / "ev" / "learning_curve.png").stat().st_size > 0
    text = md.read_text()
    assert "Learning curve" in text and "| pfn | pfn-2x | 1,000,000 |" in text
