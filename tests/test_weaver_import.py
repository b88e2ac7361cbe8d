"""Importing weaver models (hepml_coffea/weaver/importer.py): the JetClass ParticleNet on
real CMS jets, its inputs against weaver-core's own preprocessing, a CMS-style (pfcand_*,
sv_*) model of ours, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepml_coffea.artifacts import load_artifact, shipped_taggers
from hepml_coffea.data.constituents import fatjet_constituents
from hepml_coffea.representations import build
from hepml_coffea.weaver import import_weaver
from hepml_coffea.weaver.importer import WeaverImportError

HERE = Path(__file__).parent
JC = HERE / "samples" / "jetclass"
PFNANO = HERE / "samples" / "pfnano.root"
ONNX = shipped_taggers()["particlenet-jetclass"] / "model.onnx"
REF = np.load(JC / "reference_io.npz", allow_pickle=False)


def _events(path: Path = PFNANO):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()


@pytest.fixture(scope="module")
def jetclass_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w") / "pn-json"
    return import_weaver(ONNX, preprocess=JC / "preprocess.json", name="pn-json", out=out, score="Tbqq / (Tbqq + QCD)")


@pytest.fixture(scope="module")
def jetclass_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w") / "pn-yaml"
    return import_weaver(ONNX, data_config=JC / "JetClass_kin.yaml", name="pn-yaml", out=out,
                         score="label_Tbqq / (label_Tbqq + label_QCD)")


def test_import_drops_inputs_the_graph_lacks_and_records_the_checks(jetclass_json: Path) -> None:
    art = load_artifact(jetclass_json)
    assert art.input_names == ("pf_points", "pf_features", "pf_mask")  # pf_vectors is not in the graph
    assert art.meta["weaver"]["inputs_dropped"] == ["pf_vectors"]
    assert art.classes[0] == "QCD" and art.classes[8] == "Tbqq" and art.score_expression == "Tbqq / (Tbqq + QCD)"
    assert art.meta["onnx_output"] == {"name": "softmax", "kind": "probabilities"}
    assert art.meta["trim_padding"] is True and art.cpu_backend == "onnxruntime"
    assert art.spec.mask_block == "pf_mask" and art.spec.sort_by == "puppiWeight * pt"


@pytest.mark.parametrize("which", ["jetclass_json", "jetclass_yaml"])
def test_scores_on_cms_pfnano_equal_the_reference(which: str, request: pytest.FixtureRequest) -> None:
    """The 12 real jets of reference_io.npz are the first 12 fat jets of pfnano.root."""
    from hepml_coffea import score_fatjets

    path = request.getfixturevalue(which)
    scores = score_fatjets(_events(), [str(path)], classes=True)
    rec = scores[path.name]
    flat = ak.to_numpy(ak.flatten(rec.score))
    assert len(flat) == 24 and np.isfinite(flat).all()
    np.testing.assert_allclose(flat[:12], REF["score_TvsQCD"][:12], atol=1e-5)
    probs = np.stack([ak.to_numpy(ak.flatten(rec[c])) for c in load_artifact(path).classes], axis=1)
    np.testing.assert_allclose(probs[:12], REF["output_onnx"][:12], atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert ak.num(scores).tolist() == ak.num(_events().FatJet).tolist()


def _fixture_cands(i: int) -> tuple[ak.Array, ak.Array]:
    """Jet ``i`` of the fixture as constituent records (PUPPI weight 1: the stored momenta are weighted)."""
    n = int(REF["n_particles"][i])
    px, py, pz, e = (REF[k][i, :n].astype(np.float64) for k in ("part_px", "part_py", "part_pz", "part_energy"))
    pt = np.hypot(px, py)
    cands = {"pt": pt, "eta": np.arcsinh(pz / pt), "phi": np.arctan2(py, px), "energy": e, "puppiWeight": np.ones(n),
             "rank": n - np.arange(n, dtype=np.float64)}
    return cands, {"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0, "energy": 1.0}


def test_inputs_from_the_fixture_constituents_equal_weavers() -> None:
    """Our inputs rebuilt from the fixture's raw constituents equal what weaver fed the model
    (real slots; both padding modes) and the graph reproduces the stored outputs."""
    from hepml_coffea.inference.engine import get_tagger

    import dataclasses

    art = load_artifact("particlenet-jetclass")
    recs = [_fixture_cands(i) for i in range(16)]
    cands = ak.zip({k: ak.Array([c[k] for c, _ in recs]) for k in recs[0][0]})
    jets = ak.Array([j for _, j in recs])
    # the fixture's own order (weaver keeps the ntuple's): its synthetic jets have pT ties at 1e-9
    built = build(cands, jets, dataclasses.replace(art.spec, sort_by="cand.rank"))
    mask = REF["pf_mask"][:, 0, :] > 0
    np.testing.assert_array_equal(built["pf_mask"], REF["pf_mask"])
    for k in ("pf_points", "pf_features"):
        np.testing.assert_allclose(np.where(mask[:, None, :], built[k], 0), np.where(mask[:, None, :], REF[k], 0),
                                   atol=1e-5, err_msg=k)
    np.testing.assert_allclose(built["pf_points"], REF["pf_points"], atol=1e-5)  # wrap padding, as weaver
    tagger = get_tagger("particlenet-jetclass", device="cpu", backend="onnxruntime")
    probs = tagger.predict_classes({k: REF[k] for k in art.input_names})
    np.testing.assert_allclose(probs, REF["output_onnx"], atol=1e-6)


def _pfnano_table() -> tuple[ak.Array, np.ndarray]:
    """JetClass-style raw branches of every fat jet of pfnano.root, built with uproot and numpy
    only (PUPPI-weighted momenta, sorted by weighted pT, the jet = their sum)."""
    t = uproot.open(PFNANO)["Events"]
    a = t.arrays(["PFCands_pt", "PFCands_eta", "PFCands_phi", "PFCands_mass", "PFCands_puppiWeight",
                  "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx", "nFatJet"], library="np")
    rows: dict[str, list] = {k: [] for k in ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi")}
    jet: dict[str, list] = {k: [] for k in ("jet_pt", "jet_eta", "jet_phi", "jet_energy")}
    for ev in range(len(a["nFatJet"])):
        for j in range(int(a["nFatJet"][ev])):
            idx = a["FatJetPFCands_pFCandsIdx"][ev][a["FatJetPFCands_jetIdx"][ev] == j]
            w = a["PFCands_puppiWeight"][ev][idx].astype(np.float64)
            pt = a["PFCands_pt"][ev][idx] * w
            eta, phi = a["PFCands_eta"][ev][idx].astype(np.float64), a["PFCands_phi"][ev][idx].astype(np.float64)
            m = a["PFCands_mass"][ev][idx] * w
            order = np.argsort(-pt, kind="stable")
            pt, eta, phi, m = pt[order], eta[order], phi[order], m[order]
            px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
            jpx, jpy, jpz, je = px.sum(), py.sum(), pz.sum(), e.sum()
            jpt = np.hypot(jpx, jpy)
            jeta, jphi = np.arcsinh(jpz / jpt), np.arctan2(jpy, jpx)
            deta = eta - jeta if jeta > 0 else -(eta - jeta)
            dphi = (phi - jphi + np.pi) % (2 * np.pi) - np.pi
            for k, v in (("part_px", px), ("part_py", py), ("part_pz", pz), ("part_energy", e),
                         ("part_deta", deta), ("part_dphi", dphi)):
                rows[k].append(v)
            for k, v in (("jet_pt", jpt), ("jet_eta", jeta), ("jet_phi", jphi), ("jet_energy", je)):
                jet[k].append(v)
    table = ak.zip({**{k: ak.Array(v) for k, v in rows.items()}}, depth_limit=1)
    for k, v in jet.items():
        table[k] = np.asarray(v)
    return table, np.array([len(x) for x in rows["part_px"]])


@pytest.mark.skipif(os.environ.get("CI") != "true" and not __import__("importlib").util.find_spec("weaver"),
                    reason="weaver-core (test extra) not installed")
def test_inputs_equal_weaver_cores_preprocessing_on_pfnano(jetclass_yaml: Path) -> None:
    """weaver-core's own code (_build_new_variables + _finalize_inputs with the original data
    config) on the same constituents gives our inputs to 1e-5, wrap padding included; and
    ONNX Runtime on those inputs gives our scores to 1e-6."""
    from weaver.utils.data.config import DataConfig
    from weaver.utils.data.preprocess import _build_new_variables
    from weaver.utils.dataset import _finalize_inputs

    from hepml_coffea.inference.engine import get_tagger

    cfg = DataConfig.load(str(JC / "JetClass_kin.yaml"), load_observers=False, load_reweight_info=False)
    table, counts = _pfnano_table()
    table["_label_"] = np.zeros(len(table), dtype=np.int64)  # labels are a training matter: a placeholder
    funcs = {k: v for k, v in cfg.var_funcs.items() if k not in table.fields and not k.startswith("_label")}
    table = _build_new_variables(table, funcs)
    theirs = _finalize_inputs(table, cfg)
    art = load_artifact(jetclass_yaml)
    jc = fatjet_constituents(_events(), cand_fields=art.spec.required_cand_fields())
    ours = build(jc.cands, jc.jets, art.spec)
    assert np.array_equal(ak.to_numpy(ak.num(jc.cands)), counts)
    for k in art.input_names:
        np.testing.assert_allclose(ours[k], theirs["_" + k], atol=1e-5, rtol=0, err_msg=k)
    tagger = get_tagger(jetclass_yaml, device="cpu", backend="onnxruntime")
    from hepml_coffea.inference.backends import onnx_session

    sess = onnx_session(str(ONNX), threads=1)
    ref = sess.run(["softmax"], {k: theirs["_" + k] for k in art.input_names})[0]
    np.testing.assert_allclose(tagger.predict_classes(ours), ref, atol=1e-6)


# --------------------------------------------------------------------------- CMS-style names
PF_VARS = [("pfcand_pt_log_nopuppi", 1.0, 0.5), ("pfcand_etarel", None, 1), ("pfcand_phirel", None, 1),
           ("pfcand_dxysig", 0.0, 0.2), ("pfcand_normchi2", 5.0, 0.01), ("pfcand_btagSip3dVal", 0.0, 10.0),
           ("pfcand_isChargedHad", None, 1), ("pfcand_dz", 0.0, 2.0)]
SV_VARS = [("sv_pt_log", 3.0, 0.5), ("sv_etarel", None, 1), ("sv_phirel", None, 1), ("sv_d3dsig", 0.0, 0.1),
           ("sv_ntracks", 3.0, 0.5)]


def _cms_model(path: Path) -> None:
    """A small model of ours taking CMS ParticleNetAK8-style inputs, exported to ONNX with
    weaver's input names (masked means of every input, a linear layer, softmax)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(7)
            self.w = torch.nn.Parameter(torch.randn(2 + len(PF_VARS) + 2 + len(SV_VARS), 2, generator=g))

        def forward(self, pf_points, pf_features, pf_mask, sv_points, sv_features, sv_mask):  # noqa: ANN001
            def mean(x, m):  # noqa: ANN001
                return (x * m).sum(-1) / m.sum(-1).clamp(min=1)
            z = torch.cat([mean(pf_points, pf_mask), mean(pf_features, pf_mask),
                           mean(sv_points, sv_mask), mean(sv_features, sv_mask)], dim=1)
            return torch.softmax(z @ self.w, dim=1)

    names = ["pf_points", "pf_features", "pf_mask", "sv_points", "sv_features", "sv_mask"]
    shapes = [(2, 100), (len(PF_VARS), 100), (1, 100), (2, 10), (len(SV_VARS), 10), (1, 10)]
    args = tuple(torch.zeros(3, *s) for s in shapes)
    torch.onnx.export(Net().eval(), args, str(path), dynamo=False, input_names=names, output_names=["softmax"],
                      dynamic_axes={**{n: {0: "N"} for n in names}, "softmax": {0: "N"}}, opset_version=17)


def _cms_preprocess(path: Path) -> None:
    def info(c, s):  # noqa: ANN001
        return {"median": 0 if c is None else c, "norm_factor": s, "replace_inf_value": 0,
                "lower_bound": -1e32 if c is None else -5, "upper_bound": 1e32 if c is None else 5, "pad": 0}

    def block(vars_, length):  # noqa: ANN001
        return {"var_names": [v[0] for v in vars_], "var_infos": {v[0]: info(v[1], v[2]) for v in vars_},
                "min_length": 1, "max_length": length}

    doc = {"output_names": ["label_QCD", "label_Top"],
           "input_names": ["pf_points", "pf_features", "pf_mask", "sv_points", "sv_features", "sv_mask"],
           "pf_points": block([("pfcand_etarel", None, 1), ("pfcand_phirel", None, 1)], 100),
           "pf_features": block(PF_VARS, 100), "pf_mask": block([("pfcand_mask", None, 1)], 100),
           "sv_points": block([("sv_etarel", None, 1), ("sv_phirel", None, 1)], 10),
           "sv_features": block(SV_VARS, 10), "sv_mask": block([("sv_mask", None, 1)], 10)}
    path.write_text(json.dumps(doc))


def _cms_inputs_by_hand() -> dict[str, np.ndarray]:
    """The CMS-style inputs of every fat jet of pfnano.root, from uproot and numpy only,
    following shared/docs/CMS_PARTICLENET_INPUTS.md."""
    t = uproot.open(PFNANO)["Events"]
    a = t.arrays(library="np", filter_name=["PFCands_*", "FatJetPFCands_*", "FatJet_*", "nFatJet", "FatJetSVs_*",
                                            "SV_eta"])
    out = {k: [] for k in ("pf_points", "pf_features", "pf_mask", "sv_points", "sv_features", "sv_mask")}

    def pad(rows: list[np.ndarray], n: int) -> np.ndarray:
        x = np.zeros((len(rows), n), np.float32)
        for i, r in enumerate(rows):
            x[i, : min(n, len(r))] = r[:n]
        return x

    for ev in range(len(a["nFatJet"])):
        for j in range(int(a["nFatJet"][ev])):
            jeta, jphi = float(a["FatJet_eta"][ev][j]), float(a["FatJet_phi"][ev][j])
            jpt, jm = float(a["FatJet_pt"][ev][j]), float(a["FatJet_mass"][ev][j])
            jen = np.sqrt((jpt * np.cosh(jeta)) ** 2 + jm**2)
            rows = np.flatnonzero(a["FatJetPFCands_jetIdx"][ev] == j)
            idx = a["FatJetPFCands_pFCandsIdx"][ev][rows]
            g = {k[len("PFCands_"):]: a[k][ev][idx].astype(np.float64) for k in a if k.startswith("PFCands_")}
            sip = a["FatJetPFCands_btagSip3dVal"][ev][rows].astype(np.float64)
            o = np.argsort(-g["pt"], kind="stable")
            g = {k: v[o] for k, v in g.items()}
            sip = sip[o]
            etarel = np.sign(jeta) * (g["eta"] - jeta) if jeta != 0 else -(g["eta"] - jeta)
            phirel = (g["phi"] - jphi + np.pi) % (2 * np.pi) - np.pi
            track = g["d0Err"] > 0
            raw = {"pfcand_pt_log_nopuppi": np.log(g["pt"]), "pfcand_etarel": etarel, "pfcand_phirel": phirel,
                   "pfcand_dxysig": np.where(track, g["d0"] / np.where(track, g["d0Err"], 1), 0),
                   "pfcand_normchi2": np.where(track, np.floor(g["trkChi2"]), 999),
                   "pfcand_btagSip3dVal": sip, "pfcand_isChargedHad": (np.abs(g["pdgId"]) == 211) * 1.0,
                   "pfcand_dz": np.where(g["charge"] == 0, 0, g["dz"])}

            def tf(v, c, s):  # noqa: ANN001
                return v if c is None else np.clip((v - c) * s, -5, 5)

            out["pf_points"].append(np.stack([pad([raw["pfcand_etarel"]], 100)[0], pad([phirel], 100)[0]]))
            out["pf_features"].append(np.stack([pad([tf(raw[n], c, s)], 100)[0] for n, c, s in PF_VARS]))
            out["pf_mask"].append(pad([np.ones(len(idx))], 100))
            svr = np.flatnonzero(a["FatJetSVs_jetIdx"][ev] == j)
            sv = {k[len("FatJetSVs_"):]: a[k][ev][svr].astype(np.float64) for k in a if k.startswith("FatJetSVs_")}
            svidx = sv["sVIdx"].astype(int)
            seta = np.where(svidx >= 0, a["SV_eta"][ev][np.clip(svidx, 0, None)] if len(a["SV_eta"][ev]) else 0, np.nan)
            e = sv["enration"] * jen
            rebuilt = np.sign(jeta if jeta > 0 else -1) * np.arccosh(
                np.maximum(np.sqrt(np.maximum(e**2 - sv["mass"] ** 2, 0)) / sv["pt"], 1))
            seta = np.where(np.isnan(seta), rebuilt, seta)
            setarel = (seta - jeta) if jeta > 0 else -(seta - jeta)
            sraw = {"sv_pt_log": np.log(sv["pt"]), "sv_etarel": setarel, "sv_phirel": sv["phirel"],
                    "sv_d3dsig": sv["d3dsig"], "sv_ntracks": sv["ntracks"]}
            out["sv_points"].append(np.stack([pad([setarel], 10)[0], pad([sv["phirel"]], 10)[0]]))
            out["sv_features"].append(np.stack([pad([tf(sraw[n], c, s)], 10)[0] for n, c, s in SV_VARS]))
            out["sv_mask"].append(pad([np.ones(len(svr))], 10))
    return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


def test_cms_style_model_of_ours_reads_pfnano_as_documented(tmp_path: Path) -> None:
    """pfcand_* / sv_* names through the shipped cms map: per-candidate track and b-tag
    variables (association rows), SVs with their eta (SV_eta[sVIdx] or rebuilt), masks;
    inputs equal an independent construction, scores equal ONNX Runtime on it."""
    from hepml_coffea import FatJetTagger
    from hepml_coffea.inference.backends import onnx_session

    _cms_model(tmp_path / "cms.onnx")
    _cms_preprocess(tmp_path / "preprocess.json")
    path = import_weaver(tmp_path / "cms.onnx", preprocess=tmp_path / "preprocess.json", name="cms-style",
                         out=tmp_path / "cms-style")
    art = load_artifact(path)
    assert [b.collection for b in art.spec.blocks] == ["pf", "pf", "pf", "sv", "sv", "sv"]
    assert art.meta["weaver"]["branch_map"] == "cms" and art.score_expression == "Top"
    tagger = FatJetTagger([str(path)])
    jc = fatjet_constituents(_events(), cand_fields=tagger.cand_fields, jet_fields=tagger.jet_fields,
                             sv_fields=tagger.sv_fields)
    ours = build(jc.cands, jc.jets, art.spec, svs=jc.svs)
    hand = _cms_inputs_by_hand()
    for k in hand:
        np.testing.assert_allclose(ours[k], hand[k], atol=2e-5, rtol=1e-5, err_msg=k)
    assert (hand["sv_mask"].sum(axis=(1, 2)) > 0).sum() >= 5  # jets with SVs are exercised
    ref = onnx_session(str(tmp_path / "cms.onnx"), threads=1).run(["softmax"], hand)[0][:, 1]
    got = ak.to_numpy(ak.flatten(tagger(_events())["cms-style"]))
    np.testing.assert_allclose(got, ref, atol=1e-6)


# --------------------------------------------------------------------------- refusals
def test_unmapped_names_are_refused_at_import_with_their_list(tmp_path: Path) -> None:
    doc = json.loads((JC / "preprocess.json").read_text())
    doc["pf_features"]["var_names"] += ["part_foo", "part_bar"]
    doc["pf_features"]["var_infos"]["part_foo"] = doc["pf_features"]["var_infos"]["part_deta"]
    doc["pf_features"]["var_infos"]["part_bar"] = doc["pf_features"]["var_infos"]["part_deta"]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(WeaverImportError, match=r"pf: part_bar, part_foo.*--branch-map"):
        import_weaver(ONNX, preprocess=tmp_path / "p.json", name="x", out=tmp_path / "x", score="Tbqq")
    assert not (tmp_path / "x").exists()
    (tmp_path / "m.yaml").write_text("pf:\n  part_foo: log(pt)\n  part_bar: eta\n")
    # mapped now: the graph then refuses 9 features where it takes 7
    with pytest.raises(WeaverImportError, match="does not run on inputs of the config's shapes"):
        import_weaver(ONNX, preprocess=tmp_path / "p.json", name="x", out=tmp_path / "x", score="Tbqq",
                      branch_map=tmp_path / "m.yaml")


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"score": "Tbqq / (Tbqq + Qcd)"}, "not classes of the model"),
    ({"score": None}, "give --score"),
    ({"score": "Tbqq", "weights": JC / "LICENSE", "architecture": "ParticleNet"}, "not a loadable torch state dict"),
])
def test_bad_import_options(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(WeaverImportError, match=needle):
        import_weaver(ONNX, preprocess=JC / "preprocess.json", name="x", out=tmp_path / "x", **kwargs)


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_text("not onnx")
    with pytest.raises(WeaverImportError, match="not a loadable ONNX model"):
        import_weaver(tmp_path / "bad.onnx", preprocess=JC / "preprocess.json", name="x", out=tmp_path / "x")
    with pytest.raises(WeaverImportError, match="does not exist"):
        import_weaver(tmp_path / "none.onnx", preprocess=JC / "preprocess.json", name="x", out=tmp_path / "x")
    with pytest.raises(WeaverImportError, match="exactly one"):
        import_weaver(ONNX, name="x", out=tmp_path / "x")
    doc = json.loads((JC / "preprocess.json").read_text())
    doc["output_names"] = doc["output_names"][:3]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(WeaverImportError, match=r"expected \(64, 3\)"):
        import_weaver(ONNX, preprocess=tmp_path / "p.json", name="x", out=tmp_path / "x", score="QCD")
    doc = json.loads((JC / "preprocess.json").read_text())
    doc["input_names"].remove("pf_mask")
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(WeaverImportError, match=r"takes input\(s\) \['pf_mask'\]"):
        import_weaver(ONNX, preprocess=tmp_path / "p.json", name="x", out=tmp_path / "x", score="Tbqq")


def test_cli_import_weaver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepml_coffea.cli import main

    rc = main(["import", "weaver", str(ONNX), "--preprocess", str(JC / "preprocess.json"), "--name", "jc",
               "--score", "Tbqq / (Tbqq + QCD)", "--out", str(tmp_path / "jc"), "--license", str(JC / "LICENSE")])
    out = capsys.readouterr().out
    assert rc == 0 and "classes: QCD, Hbb" in out and "input pf_features: 7 x 128 (pf, pad constant)" in out
    assert (tmp_path / "jc" / "LICENSE").read_text().startswith("MIT")
    rc = main(["import", "weaver", str(ONNX), "--preprocess", str(JC / "preprocess.json"), "--name", "jc",
               "--out", str(tmp_path / "jc2")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "WeaverImportError" in err and "give --score" in err
