"""TaggerProcessor, inference engine and Runner executors."""

from __future__ import annotations

import pickle
import re
import struct
from pathlib import Path

import awkward as ak
import cloudpickle
import hist
import numpy as np
import pytest
import uproot
from faults import (
    N_EVENTS,
    chain,
    collections,
    no_nan,
    run_iterative,
    same_histograms,
    selected_jets,
    set_value,
    write_tree,
)

from hepml_coffea.artifacts import (
    ArtifactError,
)
from hepml_coffea.config import RunConfig
from hepml_coffea.data.constituents import (
    InvalidAssociationError,
    MissingBranchError,
)
from hepml_coffea.analysis.histograms import roc_from_hist
from hepml_coffea.inference import engine
from hepml_coffea.data.io import load_events, read_arrays
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.batch.run import (
    check_fileset,
    load_fileset,
    run_fileset,
)
from hepml_coffea.selection import Selection
from hepml_coffea.training.metrics import roc_curve

SAMPLES = Path(__file__).parents[1] / "samples"


@pytest.fixture(scope="module")
def proc(tiny_artifacts):
    return TaggerProcessor(taggers=[str(p) for p in tiny_artifacts.values()], device="cpu")


@pytest.fixture(scope="module")
def fileset(ttbar_file, qcd_file):
    return {"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)], "cms_v15": [str(SAMPLES / "nano_tt_v15.root")]}


@pytest.fixture(scope="module")
def iterative_output(proc, fileset):
    return run_fileset(fileset, proc, config=RunConfig(executor="iterative", chunksize=120, status=False))


def _same(a, b, datasets=("ttbar", "qcd", "cms_v15")):
    for ds in datasets:
        assert np.array_equal(a["datasets"][ds]["scores"].values(), b["datasets"][ds]["scores"].values()), ds
        assert np.array_equal(a["datasets"][ds]["working_points"].values(), b["datasets"][ds]["working_points"].values()), ds
        assert a["datasets"][ds]["cutflow"] == b["datasets"][ds]["cutflow"], ds


def test_output_content(iterative_output, proc):
    out = iterative_output
    cf = out["datasets"]["ttbar"]["cutflow"]
    assert cf["events"] == 300 and cf["selected"] > 50 and cf["scored"] == cf["selected"]
    h = out["datasets"]["ttbar"]["scores"]
    assert h.axes["score"].size >= 1000
    assert set(h.axes.name) == {"tagger", "score", "pt", "msoftdrop", "truth"}
    for t in proc.tagger_names:
        # every scored jet lands in the histogram once per tagger
        assert h[{"tagger": t}].sum() == cf["scored"], t
    # truth labels: ttbar has top jets, QCD none; CMS v15 has no jets in the window
    assert h[{"truth": hist.loc(1)}].sum() > 0 and out["datasets"]["qcd"]["scores"][{"truth": hist.loc(1)}].sum() == 0
    assert out["datasets"]["cms_v15"]["cutflow"]["selected"] == 0
    assert out["run"]["skipped"] == []
    assert "infer" in out["run"]["report"]
    wp = out["datasets"]["ttbar"]["working_points"]
    assert wp[{"tagger": "pfn", "wp": "eS50"}].sum() == cf["scored"]


@pytest.mark.slow
def test_executors_identical(iterative_output, proc, fileset):
    fut = run_fileset(fileset, proc, config=RunConfig(executor="futures", workers=2, chunksize=120, status=False))
    _same(iterative_output, fut)
    for n in (1, 2):
        dsk = run_fileset(fileset, proc, config=RunConfig(executor="dask", workers=n, chunksize=120, status=False, dashboard_address="127.0.0.1:0"))
        _same(iterative_output, dsk)


def test_chunk_size_does_not_change_histograms(iterative_output, proc, fileset):
    other = run_fileset(fileset, proc, config=RunConfig(executor="iterative", chunksize=1000, status=False))
    _same(iterative_output, other)


def test_processor_pickles_small_without_tensors(proc):
    blob = cloudpickle.dumps(proc)
    assert len(blob) < 50_000
    assert b"torch" not in blob and b"safetensors" not in blob
    again = pickle.loads(blob)
    assert again.tagger_names == proc.tagger_names


def test_zero_event_chunk_and_no_selected_jets(proc, ttbar_file):
    events = load_events(ttbar_file, entry_start=0, entry_stop=0)
    events.metadata["dataset"] = "empty"
    out = proc.process(events)["datasets"]["empty"]
    assert out["cutflow"]["events"] == 0 and out["scores"].sum() == 0
    events = load_events(ttbar_file, entry_start=0, entry_stop=50)
    events.metadata["dataset"] = "nosel"
    far = TaggerProcessor(taggers=[t.path for t in proc.taggers], selection=Selection(pt_min=5000, pt_max=6000))
    out = far.process(events)["datasets"]["nosel"]
    assert out["cutflow"]["fat_jets"] > 0 and out["cutflow"]["selected"] == 0 and out["scores"].sum() == 0


def test_model_cache_hit_on_second_chunk(proc, ttbar_file):
    engine.clear_cache()
    for k, (a, b) in enumerate(((0, 100), (100, 200))):
        events = load_events(ttbar_file, entry_start=a, entry_stop=b)
        events.metadata["dataset"] = "x"
        proc.process(events)
        info = engine.cache_info()
        n_models = len(proc.taggers)
        assert info["misses"] == n_models
        assert info["hits"] == k * n_models


def test_roc_from_histograms_matches_per_jet_scores(proc, fileset, tmp_path):
    scored = TaggerProcessor(taggers=[t.path for t in proc.taggers], save_scores=tmp_path / "scores")
    out = run_fileset({k: fileset[k] for k in ("ttbar", "qcd")}, scored, config=RunConfig(executor="iterative", chunksize=150, status=False))
    table = ak.concatenate([ak.from_parquet(p) for p in sorted((tmp_path / "scores").glob("*.parquet"))])
    assert len(table) == out["datasets"]["ttbar"]["cutflow"]["scored"] + out["datasets"]["qcd"]["cutflow"]["scored"]
    truth = ak.to_numpy(table.truth)
    keep = truth >= 0
    for t in ("pfn", "particlenet-lite"):
        s = ak.to_numpy(table[f"score_{t}"])[keep]
        # per-jet scores put on the histogram's bin edges give exactly the histogram's ROC
        binned = np.minimum(np.floor(s.astype(np.float64) * 1000), 999) / 1000
        es, eb, _ = roc_curve(truth[keep] == 1, binned)
        auc_jets = np.trapezoid(es, eb)
        es_raw, eb_raw, _ = roc_curve(truth[keep] == 1, s)
        sig = out["datasets"]["ttbar"]["scores"][{"tagger": t, "truth": hist.loc(1)}].project("score").values() + \
            out["datasets"]["qcd"]["scores"][{"tagger": t, "truth": hist.loc(1)}].project("score").values()
        bkg = out["datasets"]["ttbar"]["scores"][{"tagger": t, "truth": hist.loc(0)}].project("score").values() + \
            out["datasets"]["qcd"]["scores"][{"tagger": t, "truth": hist.loc(0)}].project("score").values()
        hes, heb = roc_from_hist(sig, bkg)
        assert abs(np.trapezoid(hes, heb) - auc_jets) < 1e-9
        assert abs(np.trapezoid(hes, heb) - np.trapezoid(es_raw, eb_raw)) < 1e-2
    # the per-jet file names carry no partial (temporary) files
    assert not list((tmp_path / "scores").glob("*.tmp"))


def test_jet_blocks_and_tagger_order_do_not_change_histograms(iterative_output, proc, fileset):
    paths = [t.path for t in proc.taggers]
    small = TaggerProcessor(taggers=paths, jet_block=7)
    out = run_fileset(fileset, small, config=RunConfig(executor="iterative", chunksize=120, status=False))
    _same(iterative_output, out)
    backwards = TaggerProcessor(taggers=list(reversed(paths)))
    out = run_fileset({"ttbar": fileset["ttbar"]}, backwards, config=RunConfig(executor="iterative", chunksize=120, status=False))
    for t in proc.tagger_names:
        a = iterative_output["datasets"]["ttbar"]["scores"][{"tagger": t}].values()
        b = out["datasets"]["ttbar"]["scores"][{"tagger": t}].values()
        assert np.array_equal(a, b), t


def test_only_data_errors_are_skippable():
    import lzma

    from hepml_coffea.config import ConfigurationError
    from hepml_coffea.analysis.processor import is_bad_input

    def raised(exc):
        try:
            raise exc
        except Exception as err:  # noqa: BLE001
            return err

    assert is_bad_input(raised(OSError("cannot read")))
    assert is_bad_input(raised(lzma.LZMAError("corrupt")))
    assert not is_bad_input(raised(ValueError("a bug of ours")))  # not raised inside uproot
    assert not is_bad_input(raised(RuntimeError("a bug of ours")))
    assert not is_bad_input(raised(ConfigurationError("no GPU")))
    assert not is_bad_input(raised(ArtifactError("changed")))


def _basket_payload(path, branch):
    """Byte offset of the compressed payload of the first basket of ``branch``."""
    br = uproot.open(path)["Events"][branch]
    seek = int(br.member("fBasketSeek")[0])
    with open(path, "rb") as f:
        f.seek(seek)
        head = f.read(18)
    keylen = struct.unpack(">h", head[14:16])[0]  # TKey: Nbytes, version, objlen, datime, keylen
    return seek + keylen


@pytest.mark.parametrize("damage", ["compression_header", "compressed_data"])
def test_corrupt_basket(damage, fast_proc, fast_proc_skip, ref_output, ttbar_file, qcd_file, tmp_path):
    payload = _basket_payload(ttbar_file, "PFCands_pt")
    data = bytearray(ttbar_file.read_bytes())
    assert data[payload:payload + 2] in (b"ZL", b"XZ", b"L4", b"ZS")  # a compressed basket
    if damage == "compression_header":
        data[payload:payload + 2] = b"XX"  # unknown algorithm: deterministic failure
    else:
        data[payload + 2000:payload + 2064] = bytes(64)  # zlib data + adler32 check no longer match
    bad = tmp_path / f"{damage}.root"
    bad.write_bytes(bytes(data))
    check_fileset(load_fileset({"ttbar": [str(bad)]}))  # the file opens: the damage is in a basket
    # without skipping: the run fails, naming the file and the decompression problem
    with pytest.raises(Exception) as info:
        run_iterative({"ttbar": [str(bad)]}, fast_proc)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain(info.value))
    assert str(bad) in text and re.search("compress", text), text
    # with skip_bad_inputs: every chunk of it is a counted skip, nothing reaches the histograms
    out = run_iterative({"ttbar": [str(bad)], "qcd": [str(qcd_file)]}, fast_proc_skip, skip=True)
    chunks = sorted((s["entrystart"], s["entrystop"]) for s in out["run"]["skipped"])
    assert chunks == [(0, 150), (150, 300)]
    for s in out["run"]["skipped"]:
        assert s["file"] == str(bad) and s["dataset"] == "ttbar" and "compress" in s["reason"]
        assert re.search(r"\.py:\d+ in \w+", s["where"]), s["where"]
    assert out["datasets"]["ttbar"]["cutflow"]["events"] == 0 and out["datasets"]["ttbar"]["scores"].sum() == 0
    assert no_nan(out) == 2
    same_histograms(out, ref_output, ["qcd"])


def test_file_without_constituent_branches(fast_proc, fast_proc_skip, ttbar_file, tmp_path):
    cols = collections(ttbar_file)
    fj_only = write_tree(tmp_path / "fatjet_only.root", {k: cols[k] for k in ("run", "luminosityBlock", "event", "FatJet")})
    events = load_events(fj_only, entry_stop=50)
    with pytest.raises(MissingBranchError) as info:
        fast_proc.process(events)
    msg = str(info.value)
    for needed in ("pfnano", "FatJetPFCands_", "PFCands_", "nanoaod_v15", "FatJetPFCand_", "PFCand_"):
        assert needed in msg, msg
    # a file with the association but lacking one candidate branch: that branch is named
    pf = cols["PFCands"]
    no_eta = write_tree(tmp_path / "no_eta.root", {**cols, "PFCands": ak.zip({f: pf[f] for f in ak.fields(pf) if f != "eta"})})
    with pytest.raises(MissingBranchError, match="missing branch.*PFCands_eta.*pfnano"):
        fast_proc.process(read_arrays(no_eta, entry_stop=50))
    # (as NanoEvents, coffea's own vector behaviour already objects, naming eta)
    with pytest.raises(ValueError, match="PFCand.*eta"):
        fast_proc.process(load_events(no_eta, entry_stop=50))
    # through the runner: an error without skipping, a counted skip per chunk with it
    with pytest.raises(Exception) as info:
        run_iterative({"fj": [str(fj_only)]}, fast_proc)
    assert any(isinstance(e, MissingBranchError) for e in chain(info.value))
    out = run_iterative({"fj": [str(fj_only)]}, fast_proc_skip, skip=True)
    assert len(out["run"]["skipped"]) == 2
    assert all(s["reason"].startswith("MissingBranchError") and s["file"] == str(fj_only) for s in out["run"]["skipped"])
    assert out["datasets"]["fj"]["cutflow"]["events"] == 0


def test_association_index_out_of_range(fast_proc, fast_proc_skip, ref_output, ttbar_file, tmp_path):
    cols = collections(ttbar_file)
    event = selected_jets(ttbar_file)[0][0]
    n_cands = len(cols["PFCands"][event])
    bad = write_tree(tmp_path / "bad_assoc.root", set_value(cols, "FatJetPFCands", "pFCandsIdx", event, 0, n_cands + 3))
    with pytest.raises(InvalidAssociationError, match=rf"event {event} .*pFCandsIdx={n_cands + 3} of {n_cands}"):
        fast_proc.process(load_events(bad))
    out = run_iterative({"ttbar": [str(bad)]}, fast_proc_skip, skip=True)
    cf = out["datasets"]["ttbar"]["cutflow"]
    assert cf["bad_association_rows"] == 1 and cf["events"] == N_EVENTS and out["run"]["skipped"] == []
    # the bad row is dropped; the other jets are scored as before
    assert ref_output["datasets"]["ttbar"]["cutflow"]["scored"] - 1 <= cf["scored"] <= ref_output["datasets"]["ttbar"]["cutflow"]["scored"]
    no_nan(out)


def test_oom_in_processor_gives_identical_histograms(arts, ttbar_file, monkeypatch):
    import torch

    p = TaggerProcessor(taggers=[arts["pfn"], arts["particlenet-lite"]], device="cpu", batch_size=32)
    clean = run_iterative({"ttbar": [str(ttbar_file)]}, p)
    real = engine._forward
    sizes = []

    def flaky(model, args):
        sizes.append(len(args[0]))
        if len(args[0]) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, args)

    monkeypatch.setattr(engine, "_forward", flaky)
    out = run_iterative({"ttbar": [str(ttbar_file)]}, p)
    assert max(sizes) == 32 and {16, 8} <= set(sizes)
    assert out["run"]["skipped"] == []
    same_histograms(out, clean, ["ttbar"])


def test_per_jet_scores_independent_of_chunk_size(arts, ttbar_file, tmp_path):
    tables = {}
    for chunksize in (300, 70):
        folder = tmp_path / f"scores_{chunksize}"
        p = TaggerProcessor(taggers=[arts["pfn"], arts["particlenet-lite"]], device="cpu", save_scores=folder)
        run_iterative({"ttbar": [str(ttbar_file)]}, p, chunksize=chunksize)
        files = sorted(folder.glob("*.parquet"))
        assert len(files) >= N_EVENTS // chunksize and not list(folder.glob("*.tmp"))
        t = ak.concatenate([ak.from_parquet(f) for f in files])
        order = np.lexsort((ak.to_numpy(t.jet_index), ak.to_numpy(t.event_index)))
        tables[chunksize] = {k: ak.to_numpy(t[k])[order] for k in ak.fields(t)}
    a, b = tables[300], tables[70]
    assert len(a["event_index"]) > 20
    for k in ("event_index", "jet_index", "pt", "eta", "truth"):
        assert np.array_equal(a[k], b[k]), k
    for k in ("score_pfn", "score_particlenet-lite"):
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
