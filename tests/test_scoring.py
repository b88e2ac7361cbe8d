"""The columnar scoring API: scores as a column beside ``events.FatJet``."""

from __future__ import annotations

import pickle
from pathlib import Path

import awkward as ak
import cloudpickle
import hist
import numpy as np
import pytest
import torch
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from faults import (
    collections,
    no_nan,
    run_iterative,
    selected_jets,
    set_value,
    write_tree,
)

from hepml_coffea import FatJetTagger, score_fatjets
from hepml_coffea.artifacts import (
    load_artifact,
)
from hepml_coffea.config import ConfigurationError, RunConfig, TaggerConfig
from hepml_coffea.data.constituents import (
    fatjet_constituents,
)
from hepml_coffea.inference import engine
from hepml_coffea.data.io import load_events
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.batch.run import (
    run_fileset,
)
from hepml_coffea.selection import Selection

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture(scope="module")
def fast(tiny_artifacts):
    """A sequence model, a point-cloud model, an image model and the baseline."""
    return [str(tiny_artifacts[k]) for k in ("pfn", "particlenet-lite", "cnn", "baseline")]


def _cand(pt, eta, phi):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 0.0, "charge": 1, "pdgId": 211}


def _jet(pt, eta=0.0, phi=0.0, msd=170.0):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": 170.0, "msoftdrop": msd, "tau1": 0.3, "tau2": 0.2, "tau3": 0.1}


def _events():
    """Four events with 0, 1, 3 and 2 fat jets (PFNano layout), one jet of each kind.

    event 1: one good jet; event 2: a good jet, a jet with no constituents, a jet with NaN
    pT; event 3: a good jet at 300 GeV and one at 610 GeV.
    """
    fatjets = [[], [_jet(600.0)], [_jet(620.0, 0.5, 1.0), _jet(580.0, -0.5, -2.0), _jet(float("nan"))],
               [_jet(300.0, 1.0, 0.3), _jet(610.0, -1.0, 2.5)]]
    pf = [[], [_cand(400.0, 0.05, 0.02), _cand(200.0, -0.1, -0.05)],
          [_cand(300.0, 0.45, 1.02), _cand(300.0, 0.55, 0.98), _cand(10.0, 0.1, 0.1)],
          [_cand(200.0, 1.02, 0.31), _cand(100.0, 0.98, 0.29), _cand(400.0, -1.0, 2.52), _cand(210.0, -1.05, 2.45)]]
    assoc = [[], [{"jetIdx": 0, "pFCandsIdx": 0}, {"jetIdx": 0, "pFCandsIdx": 1}],
             [{"jetIdx": 0, "pFCandsIdx": 0}, {"jetIdx": 0, "pFCandsIdx": 1}, {"jetIdx": 2, "pFCandsIdx": 2}],
             [{"jetIdx": 0, "pFCandsIdx": 0}, {"jetIdx": 0, "pFCandsIdx": 1}, {"jetIdx": 1, "pFCandsIdx": 2},
              {"jetIdx": 1, "pFCandsIdx": 3}]]
    return ak.zip({"FatJet": ak.Array(fatjets), "PFCands": ak.Array(pf), "FatJetPFCands": ak.Array(assoc)},
                  depth_limit=1)


def test_structure_and_none_on_hand_made_events(fast):
    events = _events()
    scores = score_fatjets(events, fast, device="cpu")
    assert ak.fields(scores) == ["pfn", "particlenet-lite", "cnn", "baseline", "in_domain"]
    assert ak.num(scores).tolist() == [0, 1, 3, 2] == ak.num(events.FatJet).tolist()
    # training domain 550-650 GeV, |eta| < 2: the 300 GeV jet is scored but flagged; None where not scored
    assert ak.fields(scores.in_domain) == ["pfn", "particlenet-lite", "cnn", "baseline"]
    for name in ak.fields(scores.in_domain):
        assert ak.to_list(scores.in_domain[name]) == [[], [True], [True, None, None], [False, True]], name
    assert ak.fields(score_fatjets(events, fast, device="cpu", domain=False)) == ak.fields(scores.in_domain)
    for name in ak.fields(scores.in_domain):
        got = ak.to_list(scores[name])
        # scored: the good jets; None: no constituents (event 2 jet 1), NaN pT (event 2 jet 2)
        assert [[x is not None for x in ev] for ev in got] == [[], [True], [True, False, False], [True, True]], name
        assert all(0.0 <= x <= 1.0 for ev in got for x in ev if x is not None)
    # with a selection: the 300 GeV jet is not scored
    sel = score_fatjets(events, fast, device="cpu", selection=Selection(pt_min=500, pt_max=700))
    assert ak.to_list(ak.is_none(sel["pfn"], axis=1)) == [[], [False], [False, True, True], [True, False]]
    # a jagged mask given by the analysis
    mask = events.FatJet.pt > 605
    masked = score_fatjets(events, fast, device="cpu", selection=mask)
    assert ak.to_list(ak.is_none(masked["pfn"], axis=1)) == [[], [True], [False, True, True], [True, False]]
    # scores do not depend on which other jets were selected
    both = ~ak.is_none(masked["pfn"], axis=1) & ~ak.is_none(scores["pfn"], axis=1)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(masked["pfn"][both])),
                                  ak.to_numpy(ak.flatten(scores["pfn"][both])))


def test_counts_of_unscored_jets(fast):
    result = FatJetTagger(fast, device="cpu").score(_events())
    assert result.n_fatjets == 6
    assert result.counts["selected"] == 6
    assert result.counts["scored"] == 4
    assert result.counts["no_constituents"] == 1 and result.counts["nonfinite"] == 1
    assert result.counts["not_scored:baseline"] == 0
    assert result.counts["out_of_domain:pfn"] == 1  # the 300 GeV jet (scored, outside 550-650 GeV)


def test_baseline_without_tau_branches_is_counted_not_scored(fast):
    events = _events()
    fj = ak.without_field(ak.without_field(events.FatJet, "tau2"), "tau3")
    events = ak.with_field(events, fj, "FatJet")
    result = FatJetTagger(fast, device="cpu").score(events)
    assert result.counts["not_scored:baseline"] == 4 and result.counts["not_scored:pfn"] == 0
    assert ak.all(ak.is_none(result.jagged()["baseline"], axis=1))


@pytest.mark.parametrize("sample", ["pfnano.root", "nano_tt_v15.root"])
def test_real_cms_files_align_with_fatjet(sample, fast):
    events = load_events(SAMPLES / sample)
    scores = FatJetTagger(fast, device="cpu")(events)
    assert ak.num(scores).tolist() == ak.num(events.FatJet).tolist()
    events["FatJet", "pfn"] = scores["pfn"]  # the documented way to attach them
    scored = ~ak.is_none(events.FatJet.pfn, axis=1)
    # every fat jet with constituents and finite kinematics is scored (no selection by default)
    result = FatJetTagger(fast, device="cpu").score(events)
    assert int(ak.sum(scored)) == result.counts["scored"] == int(result.jets.valid.sum())
    assert result.counts["scored"] + result.counts["no_constituents"] + result.counts["nonfinite"] == result.n_fatjets
    # the FatJet collection itself may be passed
    again = score_fatjets(events.FatJet, fast, device="cpu")
    for name in ak.fields(scores.in_domain):
        assert ak.to_list(again[name]) == ak.to_list(scores[name])
    if sample == "nano_tt_v15.root":
        assert result.counts["no_constituents"] == 2  # two v15 jets have no PFCand rows


def test_filtered_fatjets_refused(fast):
    events = load_events(SAMPLES / "pfnano.root")
    with pytest.raises(ConfigurationError, match="filtered FatJet collection"):
        score_fatjets(events.FatJet[events.FatJet.pt > 300], fast, device="cpu")
    with pytest.raises(ConfigurationError, match="needs NanoEvents with a FatJet"):
        score_fatjets(ak.Array([{"Jet": [1.0]}]), fast, device="cpu")


def test_api_equals_processor_scores(tiny_artifacts, ttbar_file, tmp_path):
    taggers = [str(tiny_artifacts[k]) for k in ("pfn", "lstm", "particlenet-lite", "cnn", "baseline")]
    sel = Selection()
    proc = TaggerProcessor(taggers=taggers, device="cpu", selection=sel, save_scores=tmp_path)
    events = load_events(ttbar_file, entry_stop=200)
    events.metadata["dataset"] = "tt"
    proc.process(events)
    (f,) = tmp_path.glob("*.parquet")
    table = ak.from_parquet(f)
    scores = score_fatjets(events, taggers, device="cpu", selection=sel)
    ev, jet = ak.to_numpy(table.event_index), ak.to_numpy(table.jet_index)
    assert len(ev) > 20
    for name in ak.fields(scores.in_domain):
        api = np.array([scores[name][e][j] for e, j in zip(ev, jet)], dtype=np.float32)
        np.testing.assert_array_equal(api, ak.to_numpy(table[f"score_{name}"]), err_msg=name)
    assert int(ak.sum(~ak.is_none(scores["pfn"], axis=1))) == len(ev)


class _AnalysisProcessor(processor.ProcessorABC):
    """What a user writes: own selection, our scores as a column, own histogram."""

    def __init__(self, taggers):
        self.tagger = FatJetTagger(taggers, device="cpu")

    def process(self, events):
        fatjets = events.FatJet
        events["FatJet", "score"] = self.tagger(events)["pfn"]
        good = fatjets[(events.FatJet.pt > 300) & ~ak.is_none(events.FatJet.score, axis=1)]
        h = hist.Hist.new.Reg(50, 0, 1, name="score").Reg(20, 0, 300, name="msd").Double()
        h.fill(score=ak.to_numpy(ak.flatten(events.FatJet.score[(events.FatJet.pt > 300)
                                                                & ~ak.is_none(events.FatJet.score, axis=1)])),
               msd=ak.to_numpy(ak.flatten(good.msoftdrop)))
        return {events.metadata["dataset"]: {"h": h, "n": len(events)}}

    def postprocess(self, acc):
        return acc


@pytest.mark.slow
def test_user_processor_identical_across_executors(tiny_artifacts, ttbar_file, qcd_file):
    proc = _AnalysisProcessor([str(tiny_artifacts["pfn"])])
    fileset = {"tt": [str(ttbar_file)], "qcd": [str(qcd_file)]}
    outs = {}
    for name, ex in (("iterative", processor.IterativeExecutor()), ("futures", processor.FuturesExecutor(workers=2))):
        runner = processor.Runner(executor=ex, schema=PFNanoAODSchema, chunksize=120)
        outs[name] = runner(fileset, proc, treename="Events")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        runner = processor.Runner(executor=processor.DaskExecutor(client=client, status=False),
                                  schema=PFNanoAODSchema, chunksize=120)
        outs["dask"] = runner(fileset, proc, treename="Events")
    ref = outs["iterative"]
    assert ref["tt"]["h"].sum() > 50 and ref["tt"]["n"] == 300
    for name, out in outs.items():
        for ds in fileset:
            assert np.array_equal(out[ds]["h"].values(), ref[ds]["h"].values()), (name, ds)


def test_tagger_object_pickles_small(tiny_artifacts):
    tagger = FatJetTagger([str(p) for p in tiny_artifacts.values()], device="cpu")
    blob = cloudpickle.dumps(tagger)
    assert len(blob) < 20_000
    assert b"safetensors" not in blob and b"torch" not in blob
    again = pickle.loads(blob)
    assert again.names == tagger.names and all(isinstance(t, TaggerConfig) for t in again.taggers)


def test_configuration_errors(tiny_artifacts):
    with pytest.raises(ValueError, match="amp must be"):
        FatJetTagger([str(tiny_artifacts["pfn"])], amp="int8")
    with pytest.raises(ConfigurationError, match="device must be"):
        FatJetTagger([str(tiny_artifacts["pfn"])], device="gpu")
    with pytest.raises(ValueError, match="two taggers are named 'pfn'"):
        FatJetTagger([str(tiny_artifacts["pfn"])] * 2)
    with pytest.raises(ConfigurationError, match="no taggers given"):
        FatJetTagger([])


def test_run_config_rejects_mistakes():
    with pytest.raises(ConfigurationError, match="unknown executor 'spark'"):
        RunConfig(executor="spark")
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        RunConfig(workers=0)


def test_processor_and_run_config_must_agree_on_skipping(tiny_artifacts, ttbar_file):
    proc = TaggerProcessor(taggers=[str(tiny_artifacts["pfn"])], device="cpu", skip_bad_inputs=True)
    with pytest.raises(ConfigurationError, match="make them agree"):
        run_fileset({"tt": [str(ttbar_file)]}, proc, config=RunConfig(executor="iterative", status=False))


def test_nonfinite_kinematics_counted_never_scored(fast_proc, ref_output, ttbar_file, tmp_path):
    cols = collections(ttbar_file)
    (e1, j1), (e2, j2) = selected_jets(ttbar_file)[:2]
    # NaN in one constituent pT of jet 1, inf in the eta of jet 2
    assoc = cols["FatJetPFCands"][e1]
    row = int(np.flatnonzero(ak.to_numpy(assoc.jetIdx) == j1)[0])
    cand = int(assoc.pFCandsIdx[row])
    cols = set_value(cols, "PFCands", "pt", e1, cand, np.nan)
    cols = set_value(cols, "FatJet", "eta", e2, j2, np.inf)
    bad = write_tree(tmp_path / "nonfinite.root", cols)
    out = run_iterative({"ttbar": [str(bad)]}, fast_proc)
    cf, cf0 = out["datasets"]["ttbar"]["cutflow"], ref_output["datasets"]["ttbar"]["cutflow"]
    assert cf["nonfinite"] == cf0["nonfinite"] + 2
    assert cf["scored"] == cf0["scored"] - 2
    h = out["datasets"]["ttbar"]["scores"]
    for t in fast_proc.tagger_names:
        assert h[{"tagger": t}].sum(flow=True) == out["datasets"]["ttbar"]["tagger_counts"][t]["scored"]
    assert h[{"tagger": "pfn"}].sum(flow=True) == cf["scored"]
    assert no_nan(out) == 1



def test_jets_without_constituents_counted(arts):
    wide = Selection(pt_min=0.0, pt_max=1e9, abs_eta_max=10.0)
    p = TaggerProcessor(taggers=[arts["pfn"]], device="cpu", selection=wide)
    out = run_iterative({"v15": [str(SAMPLES / "nano_tt_v15.root")]}, p, chunksize=1000)
    cf = out["datasets"]["v15"]["cutflow"]
    assert cf["no_constituents"] == 2 and cf["nonfinite"] == 0
    assert cf["scored"] == cf["selected"] - 2
    assert out["datasets"]["v15"]["scores"].sum(flow=True) == cf["scored"]
    no_nan(out)



def _one_jet_event(cands):
    jet = {"pt": 600.0, "eta": 0.3, "phi": 1.0, "mass": 175.0, "msoftdrop": 172.0,
           "tau1": 0.3, "tau2": 0.2, "tau3": 0.1}
    rows = [{"jetIdx": 0, "pFCandsIdx": i} for i in range(len(cands))]
    return ak.zip({"FatJet": ak.Array([[jet]]), "PFCands": ak.Array([cands]),
                   "FatJetPFCands": ak.Array([rows])}, depth_limit=1)



def test_more_constituents_than_length_keeps_hardest(arts, tmp_path):
    from hepml_coffea.representations import build

    rng = np.random.default_rng(7)
    n = 150
    pt = rng.permutation(np.linspace(0.5, 80.0, n))  # distinct pT, shuffled
    cands = [{"pt": float(pt[i]), "eta": 0.3 + float(rng.normal(0, 0.3)), "phi": 1.0 + float(rng.normal(0, 0.3)),
              "mass": 0.0, "charge": int(rng.integers(-1, 2)), "pdgId": 211} for i in range(n)]
    hardest = [c for c in cands if c["pt"] >= np.sort(pt)[-100]]
    assert len(hardest) == 100
    taggers = [arts["pfn"], arts["lstm"], arts["particlenet-lite"]]
    scores = {}
    for name, cs in (("all", cands), ("hardest", hardest)):
        p = TaggerProcessor(taggers=taggers, device="cpu", save_scores=tmp_path / name)
        out = p.process(_one_jet_event(cs))["datasets"]["unknown"]
        assert out["cutflow"]["scored"] == 1 and out["skipped"] == []
        (f,) = (tmp_path / name).glob("*.parquet")
        scores[name] = ak.from_parquet(f)
    for t in ("pfn", "lstm", "particlenet-lite"):
        a, b = ak.to_numpy(scores["all"][f"score_{t}"]), ak.to_numpy(scores["hardest"][f"score_{t}"])
        assert np.isfinite(a).all() and np.array_equal(a, b), t
    # the representation holds exactly the 100 hardest, sorted
    spec = load_artifact(arts["pfn"]).spec
    jc = fatjet_constituents(_one_jet_event(cands))
    built = build(jc.cands, jc.jets, spec)
    assert spec.length == 100 and built["mask"].sum() == 100
    assert ak.to_list(jc.cands.pt[0][:100]) == sorted(pt.tolist(), reverse=True)[:100]


def test_device_and_amp_and_duplicate_names(tiny_artifacts):
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            engine.resolve_device("cuda")
    with pytest.raises(ValueError, match="amp must be"):
        TaggerProcessor(taggers=[tiny_artifacts["pfn"]], amp="int8")
    with pytest.raises(ValueError, match="two taggers are named 'pfn'"):
        TaggerProcessor(taggers=[tiny_artifacts["pfn"], tiny_artifacts["pfn"]])
