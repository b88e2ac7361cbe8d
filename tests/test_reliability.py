"""Reliability (README, section Reliability): bad inputs, bad models, faults, safety, determinism.

Every test feeds the bad input and checks either the clear error (naming the problem and
the file / branch / event) or the counted skip that appears in the output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from hepml_coffea.artifacts import (
    HASHED,
    ArtifactError,
    ArtifactIntegrityError,
    _combined,
    _sha256,
    load_artifact,
    save_artifact,
)
from hepml_coffea.constituents import InvalidAssociationError, MissingBranchError, fatjet_constituents
from hepml_coffea.inference import engine
from hepml_coffea.io import load_events, read_arrays
from hepml_coffea.processor import TaggerProcessor
from hepml_coffea.config import RunConfig
from hepml_coffea.run import FilesetError, check_fileset, load_fileset, make_cluster, run_fileset
from hepml_coffea.selection import Selection

SAMPLES = Path(__file__).parent / "samples"
N_EVENTS = 300  # events in the ttbar_file / qcd_file fixtures


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def arts(tiny_artifacts):
    return {k: str(v) for k, v in tiny_artifacts.items()}


@pytest.fixture(scope="module")
def proc(arts):
    """Two fast taggers of two kinds (sequence model + observables baseline)."""
    return TaggerProcessor(taggers=[arts["pfn"], arts["baseline"]], device="cpu")


@pytest.fixture(scope="module")
def proc_skip(arts):
    return TaggerProcessor(taggers=[arts["pfn"], arts["baseline"]], device="cpu", skip_bad_inputs=True)


def _run(fileset, p, chunksize=150, skip=False, **kw):
    return run_fileset(fileset, p, config=RunConfig(executor="iterative", chunksize=chunksize, status=False,
                                                    skip_bad_files=skip), **kw)


@pytest.fixture(scope="module")
def ref(proc, ttbar_file, qcd_file):
    """The good files, no damage: the reference histograms."""
    return _run({"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}, proc)


def _same(a, b, datasets):
    for ds in datasets:
        assert np.array_equal(a["datasets"][ds]["scores"].values(flow=True), b["datasets"][ds]["scores"].values(flow=True)), ds
        assert np.array_equal(a["datasets"][ds]["working_points"].values(flow=True),
                              b["datasets"][ds]["working_points"].values(flow=True)), ds
        assert a["datasets"][ds]["cutflow"] == b["datasets"][ds]["cutflow"], ds


def _no_nan(out):
    n = 0
    for ds, acc in out["datasets"].items():
        if isinstance(acc, dict) and "scores" in acc:
            for h in (acc["scores"], acc["working_points"]):
                assert np.isfinite(h.values(flow=True)).all(), ds
            n += 1
    return n


def _collections(path):
    """All branches of ``Events`` grouped into records (``FatJet``, ``PFCands``...)."""
    arrays = uproot.open(path)["Events"].arrays(how=dict)
    prefixes = {k.split("_", 1)[0] for k in arrays if "_" in k}
    out, groups = {}, {}
    for k, v in arrays.items():
        if k.startswith("n") and k[1:] in prefixes:
            continue  # counters are rewritten by mktree
        if "_" in k:
            c, f = k.split("_", 1)
            groups.setdefault(c, {})[f] = v
        else:
            out[k] = v
    for c, fields in groups.items():
        out[c] = ak.zip(fields)
    return out


def _write(path, cols):
    """Write records as a PFNano-like TTree (same branch types as the generator)."""
    with uproot.recreate(path) as f:
        types = {k: (v.type.content if ak.fields(v) or v.ndim > 1 else np.asarray(v).dtype) for k, v in cols.items()}
        tree = f.mktree("Events", types)
        tree.extend(cols)
    return path


def _set(cols, coll, field, event, idx, value):
    """Copy of ``cols`` with ``cols[coll][field][event][idx] = value``."""
    arr = cols[coll]
    counts = ak.to_numpy(ak.num(arr[field]))
    flat = ak.to_numpy(ak.flatten(arr[field])).copy()
    off = np.concatenate([[0], np.cumsum(counts)])
    assert idx < counts[event]
    flat[off[event] + idx] = value
    new = ak.unflatten(flat, counts)
    return {**cols, coll: ak.zip({f: (new if f == field else arr[f]) for f in ak.fields(arr)})}


def _selected_jets(path):
    """(event, jet) of the jets passing the default selection, with valid constituents."""
    jc = fatjet_constituents(read_arrays(path))
    jc = jc.select(Selection().mask(jc) & jc.valid)
    return list(zip(jc.event_index.tolist(), jc.jet_index.tolist()))


def _chain(err):
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


# --------------------------------------------------------------------------- bad files
def test_truncated_file(proc_skip, ref, ttbar_file, qcd_file, tmp_path):
    bad = tmp_path / "truncated.root"
    data = ttbar_file.read_bytes()
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(FilesetError, match=re.escape(str(bad)) + ".*truncated"):
        check_fileset(load_fileset({"ttbar": [str(bad)]}))
    out = _run({"ttbar": [str(bad)], "qcd": [str(qcd_file)]}, proc_skip, skip=True)
    assert [s["file"] for s in out["run"]["skipped"]] == [str(bad)]
    assert "truncated" in out["run"]["skipped"][0]["reason"] and out["run"]["skipped"][0]["dataset"] == "ttbar"
    assert "ttbar" not in out
    _same(out, ref, ["qcd"])  # the other dataset is untouched
    _no_nan(out)


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
def test_corrupt_basket(damage, proc, proc_skip, ref, ttbar_file, qcd_file, tmp_path):
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
        _run({"ttbar": [str(bad)]}, proc)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in _chain(info.value))
    assert str(bad) in text and re.search("compress", text), text
    # with skip_bad_inputs: every chunk of it is a counted skip, nothing reaches the histograms
    out = _run({"ttbar": [str(bad)], "qcd": [str(qcd_file)]}, proc_skip, skip=True)
    chunks = sorted((s["entrystart"], s["entrystop"]) for s in out["run"]["skipped"])
    assert chunks == [(0, 150), (150, 300)]
    for s in out["run"]["skipped"]:
        assert s["file"] == str(bad) and s["dataset"] == "ttbar" and "compress" in s["reason"]
        assert re.search(r"\.py:\d+ in \w+", s["where"]), s["where"]
    assert out["datasets"]["ttbar"]["cutflow"]["events"] == 0 and out["datasets"]["ttbar"]["scores"].sum() == 0
    assert _no_nan(out) == 2
    _same(out, ref, ["qcd"])


def test_empty_tree_and_zero_byte_file(proc, proc_skip, ttbar_file, qcd_file, ref, tmp_path):
    cols = _collections(ttbar_file)
    empty = _write(tmp_path / "empty.root", {k: v[:0] for k, v in cols.items()})
    assert uproot.open(empty)["Events"].num_entries == 0
    out = _run({"empty": [str(empty)], "qcd": [str(qcd_file)]}, proc)
    assert out["datasets"]["empty"]["cutflow"]["events"] == 0 and out["datasets"]["empty"]["scores"].sum() == 0
    assert out["run"]["skipped"] == []
    _same(out, ref, ["qcd"])
    zero = tmp_path / "zero.root"
    zero.write_bytes(b"")
    with pytest.raises(FilesetError, match=re.escape(str(zero)) + ".*cannot be read"):
        check_fileset(load_fileset({"z": [str(zero)]}))
    out = _run({"z": [str(zero)], "qcd": [str(qcd_file)]}, proc_skip, skip=True)
    assert [(s["dataset"], s["file"]) for s in out["run"]["skipped"]] == [("z", str(zero))]
    assert "cannot be read" in out["run"]["skipped"][0]["reason"]
    _same(out, ref, ["qcd"])


def test_file_without_constituent_branches(proc, proc_skip, ttbar_file, tmp_path):
    cols = _collections(ttbar_file)
    fj_only = _write(tmp_path / "fatjet_only.root", {k: cols[k] for k in ("run", "luminosityBlock", "event", "FatJet")})
    events = load_events(fj_only, entry_stop=50)
    with pytest.raises(MissingBranchError) as info:
        proc.process(events)
    msg = str(info.value)
    for needed in ("pfnano", "FatJetPFCands_", "PFCands_", "nanoaod_v15", "FatJetPFCand_", "PFCand_"):
        assert needed in msg, msg
    # a file with the association but lacking one candidate branch: that branch is named
    pf = cols["PFCands"]
    no_eta = _write(tmp_path / "no_eta.root", {**cols, "PFCands": ak.zip({f: pf[f] for f in ak.fields(pf) if f != "eta"})})
    with pytest.raises(MissingBranchError, match="missing branch.*PFCands_eta.*pfnano"):
        proc.process(read_arrays(no_eta, entry_stop=50))
    # (as NanoEvents, coffea's own vector behaviour already objects, naming eta)
    with pytest.raises(ValueError, match="PFCand.*eta"):
        proc.process(load_events(no_eta, entry_stop=50))
    # through the runner: an error without skipping, a counted skip per chunk with it
    with pytest.raises(Exception) as info:
        _run({"fj": [str(fj_only)]}, proc)
    assert any(isinstance(e, MissingBranchError) for e in _chain(info.value))
    out = _run({"fj": [str(fj_only)]}, proc_skip, skip=True)
    assert len(out["run"]["skipped"]) == 2
    assert all(s["reason"].startswith("MissingBranchError") and s["file"] == str(fj_only) for s in out["run"]["skipped"])
    assert out["datasets"]["fj"]["cutflow"]["events"] == 0


def test_association_index_out_of_range(proc, proc_skip, ref, ttbar_file, tmp_path):
    cols = _collections(ttbar_file)
    event = _selected_jets(ttbar_file)[0][0]
    n_cands = len(cols["PFCands"][event])
    bad = _write(tmp_path / "bad_assoc.root", _set(cols, "FatJetPFCands", "pFCandsIdx", event, 0, n_cands + 3))
    with pytest.raises(InvalidAssociationError, match=rf"event {event} .*pFCandsIdx={n_cands + 3} of {n_cands}"):
        proc.process(load_events(bad))
    out = _run({"ttbar": [str(bad)]}, proc_skip, skip=True)
    cf = out["datasets"]["ttbar"]["cutflow"]
    assert cf["bad_association_rows"] == 1 and cf["events"] == N_EVENTS and out["run"]["skipped"] == []
    # the bad row is dropped; the other jets are scored as before
    assert ref["datasets"]["ttbar"]["cutflow"]["scored"] - 1 <= cf["scored"] <= ref["datasets"]["ttbar"]["cutflow"]["scored"]
    _no_nan(out)


def test_nonfinite_kinematics_counted_never_scored(proc, ref, ttbar_file, tmp_path):
    cols = _collections(ttbar_file)
    (e1, j1), (e2, j2) = _selected_jets(ttbar_file)[:2]
    # NaN in one constituent pT of jet 1, inf in the eta of jet 2
    assoc = cols["FatJetPFCands"][e1]
    row = int(np.flatnonzero(ak.to_numpy(assoc.jetIdx) == j1)[0])
    cand = int(assoc.pFCandsIdx[row])
    cols = _set(cols, "PFCands", "pt", e1, cand, np.nan)
    cols = _set(cols, "FatJet", "eta", e2, j2, np.inf)
    bad = _write(tmp_path / "nonfinite.root", cols)
    out = _run({"ttbar": [str(bad)]}, proc)
    cf, cf0 = out["datasets"]["ttbar"]["cutflow"], ref["datasets"]["ttbar"]["cutflow"]
    assert cf["nonfinite"] == cf0["nonfinite"] + 2
    assert cf["scored"] == cf0["scored"] - 2
    h = out["datasets"]["ttbar"]["scores"]
    for t in proc.tagger_names:
        assert h[{"tagger": t}].sum(flow=True) == out["datasets"]["ttbar"]["tagger_counts"][t]["scored"]
    assert h[{"tagger": "pfn"}].sum(flow=True) == cf["scored"]
    assert _no_nan(out) == 1


def test_jets_without_constituents_counted(arts):
    wide = Selection(pt_min=0.0, pt_max=1e9, abs_eta_max=10.0)
    p = TaggerProcessor(taggers=[arts["pfn"]], device="cpu", selection=wide)
    out = _run({"v15": [str(SAMPLES / "nano_tt_v15.root")]}, p, chunksize=1000)
    cf = out["datasets"]["v15"]["cutflow"]
    assert cf["no_constituents"] == 2 and cf["nonfinite"] == 0
    assert cf["scored"] == cf["selected"] - 2
    assert out["datasets"]["v15"]["scores"].sum(flow=True) == cf["scored"]
    _no_nan(out)


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


# --------------------------------------------------------------------------- bad models
def _copy_artifact(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rehash(path):
    """Rewrite manifest.json so every checksum matches (a consistent, but edited, artifact)."""
    files = {f: _sha256(path / f) for f in HASHED if (path / f).exists()}
    (path / "manifest.json").write_text(json.dumps({"files": files, "hash": _combined(files)}, indent=2))


def test_missing_artifact_names_path_and_shipped(tmp_path):
    from hepml_coffea.artifacts import shipped_taggers

    missing = tmp_path / "no_such_tagger"
    with pytest.raises(ArtifactError) as info:
        TaggerProcessor(taggers=[missing])
    msg = str(info.value)
    assert str(missing) in msg and "shipped" in msg
    for name in shipped_taggers():
        assert name in msg


@pytest.mark.parametrize("fname", ["metrics.json", "model.yaml"])
def test_hash_mismatch_refused_at_construction(fname, arts, tmp_path):
    bad = _copy_artifact(arts["pfn"], tmp_path / "pfn")
    with open(bad / fname, "a") as f:
        f.write("\n")  # harmless-looking edit; still not the artifact that was hashed
    with pytest.raises(ArtifactIntegrityError, match=re.escape(fname) + ".*refusing"):
        TaggerProcessor(taggers=[bad])


def test_spec_not_fitting_model_refused(arts, tmp_path):
    bad = _copy_artifact(arts["pfn"], tmp_path / "pfn6")
    doc = yaml.safe_load((bad / "model.yaml").read_text())
    doc["input_spec"]["features"] = doc["input_spec"]["features"][:6]
    (bad / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _rehash(bad)
    with pytest.raises(ArtifactError, match=r"6 features.*expects 7"):
        TaggerProcessor(taggers=[bad])


def test_fileset_json_errors(ttbar_file, tmp_path, proc):
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"ttbar": ["data/missing.root"]}))
    with pytest.raises(FilesetError, match=re.escape(str(tmp_path / "data" / "missing.root")) + ".*does not exist"):
        run_fileset(fs, proc, config=RunConfig(executor="iterative", status=False))
    fs.write_text(json.dumps({"ttbar": {"files": {str(ttbar_file): "Evnts"}}}))
    with pytest.raises(FilesetError, match=re.escape(str(ttbar_file)) + r".*no tree 'Evnts'.*'Events'"):
        run_fileset(fs, proc, config=RunConfig(executor="iterative", status=False))
    fs.write_text('{"ttbar": ["a.root",]')
    with pytest.raises(FilesetError, match=re.escape(str(fs)) + ".*not valid JSON"):
        load_fileset(fs)
    fs.write_text("[]")
    with pytest.raises(FilesetError, match="non-empty mapping"):
        load_fileset(fs)


# --------------------------------------------------------------------------- faults
def test_dask_worker_killed_mid_run_and_localhost_cluster(arts, ref, ttbar_file, tmp_path):
    marker = tmp_path / "victim_pid"

    class SlowFirstChunk(TaggerProcessor):
        """The first chunk to start records its worker's pid and waits to be killed."""

        def process(self, events):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                time.sleep(60)  # killed during this sleep
            return super().process(events)

    slow = SlowFirstChunk(taggers=[arts["pfn"], arts["baseline"]], device="cpu")
    cluster, client = make_cluster("dask", 2)  # defaults: dashboard and scheduler on localhost
    result = {}
    try:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
        client.wait_for_workers(2, timeout=60)
        worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == 2 and os.getpid() not in worker_pids

        def target():
            try:
                result["out"] = run_fileset({"ttbar": [str(ttbar_file)]}, slow, config=RunConfig(executor="dask", chunksize=50, status=False), client=client)
            except BaseException as err:  # noqa: BLE001 - reported below
                result["err"] = err

        th = threading.Thread(target=target, daemon=True)
        th.start()
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()):
            assert time.monotonic() < deadline and th.is_alive(), result
            time.sleep(0.05)
        victim = int(marker.read_text())
        assert victim in worker_pids
        os.kill(victim, signal.SIGKILL)
        th.join(90)
        assert not th.is_alive(), "run did not finish after a worker was killed"
    finally:
        client.close()
        cluster.close()
    assert "err" not in result, result.get("err")
    out = result["out"]
    assert out["run"]["skipped"] == []
    _same(out, ref, ["ttbar"])


def test_oom_in_processor_gives_identical_histograms(arts, ttbar_file, monkeypatch):
    import torch

    p = TaggerProcessor(taggers=[arts["pfn"], arts["particlenet-lite"]], device="cpu", batch_size=32)
    clean = _run({"ttbar": [str(ttbar_file)]}, p)
    real = engine._forward
    sizes = []

    def flaky(model, args):
        sizes.append(len(args[0]))
        if len(args[0]) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, args)

    monkeypatch.setattr(engine, "_forward", flaky)
    out = _run({"ttbar": [str(ttbar_file)]}, p)
    assert max(sizes) == 32 and {16, 8} <= set(sizes)
    assert out["run"]["skipped"] == []
    _same(out, clean, ["ttbar"])


def test_interrupted_save_leaves_nothing(proc, ttbar_file, tmp_path, monkeypatch):
    import coffea.util

    cols = _collections(ttbar_file)
    (tmp_path / "in").mkdir()
    empty = _write(tmp_path / "in" / "empty.root", {k: v[:0] for k, v in cols.items()})
    outdir = tmp_path / "out"

    def interrupted_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(coffea.util, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_fileset({"e": [str(empty)]}, proc, config=RunConfig(executor="iterative", status=False), out=outdir / "out.coffea")
    assert list(outdir.iterdir()) == []
    monkeypatch.undo()
    run_fileset({"e": [str(empty)]}, proc, config=RunConfig(executor="iterative", status=False), out=outdir / "out.coffea")
    assert [f.name for f in outdir.iterdir()] == ["out.coffea"]
    assert coffea.util.load(outdir / "out.coffea")["datasets"]["e"]["cutflow"]["events"] == 0


def test_interrupted_write_pfnano_leaves_nothing(ttbar_file, tmp_path, monkeypatch):
    from uproot.writing.writable import WritableTree

    from hepml_coffea.samples.write import write_pfnano

    cols = _collections(ttbar_file)
    arrays = {k: cols[k] for k in ("event", "FatJet", "PFCands", "FatJetPFCands", "GenPart")}
    real = WritableTree.extend
    calls = []

    def extend_then_interrupt(self, data):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(WritableTree, "extend", extend_then_interrupt)
    out = tmp_path / "gen" / "sample.root"
    with pytest.raises(KeyboardInterrupt):
        write_pfnano(arrays, out, {"seed": 1}, step=100)
    assert list(out.parent.iterdir()) == []
    # an earlier complete file survives an interrupted rewrite untouched
    monkeypatch.undo()
    write_pfnano(arrays, out, {"seed": 1}, step=100)
    before = out.read_bytes()
    calls.clear()
    monkeypatch.setattr(WritableTree, "extend", extend_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_pfnano(arrays, out, {"seed": 2}, step=100)
    assert [f.name for f in out.parent.iterdir()] == ["sample.root"] and out.read_bytes() == before
    assert uproot.open(out)["Events"].num_entries == N_EVENTS


def test_interrupted_save_artifact_leaves_nothing(arts, tmp_path, monkeypatch):
    import hepml_coffea.artifacts as artifacts

    art = load_artifact(arts["pfn"])

    def interrupted(path):
        raise KeyboardInterrupt

    kw = {"name": "pfn-copy", "model": art.model, "input_kind": art.input_kind, "spec": art.spec,
          "metrics": art.metrics, "torchscript": False}
    monkeypatch.setattr(artifacts, "_sha256", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(tmp_path / "new", **kw)
    assert list(tmp_path.iterdir()) == []
    # overwriting an existing artifact: the old one stays complete and loadable
    old = _copy_artifact(arts["pfn"], tmp_path / "old")
    with pytest.raises(KeyboardInterrupt):
        save_artifact(old, **kw)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert load_artifact(old).hash == art.hash


# --------------------------------------------------------------------------- safety & determinism
def test_pickled_weights_refused_without_running_code(arts, tmp_path):
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    bad = _copy_artifact(arts["pfn"], tmp_path / "evil")
    torch.save({"phi.0.weight": Payload()}, bad / "weights.safetensors")
    _rehash(bad)  # checksums consistent: only the weights format can stop it
    with pytest.raises(ArtifactError, match=r"weights\.safetensors is not a valid safetensors file"):
        load_artifact(bad)
    with pytest.raises(ArtifactError, match="safetensors"):
        TaggerProcessor(taggers=[bad])
    assert not marker.exists()
    # the payload is live: an unpickling loader would have run it
    with open(bad / "weights.safetensors", "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()


def test_per_jet_scores_independent_of_chunk_size(arts, ttbar_file, tmp_path):
    tables = {}
    for chunksize in (300, 70):
        folder = tmp_path / f"scores_{chunksize}"
        p = TaggerProcessor(taggers=[arts["pfn"], arts["particlenet-lite"]], device="cpu", save_scores=folder)
        _run({"ttbar": [str(ttbar_file)]}, p, chunksize=chunksize)
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


def test_fuzzed_files_never_crash_and_are_accounted_for(proc_skip, ref, ttbar_file, tmp_path):
    rng = np.random.default_rng(20260607)
    data = ttbar_file.read_bytes()
    size = len(data)
    fileset = {"good": [str(ttbar_file)]}
    damaged = {}
    for i in range(6):
        kind = ("truncate", "overwrite", "zero")[i % 3]
        b = bytearray(data)
        if kind == "truncate":
            b = b[: int(rng.integers(size // 10, size - 1))]
        elif kind == "overwrite":
            pos, n = int(rng.integers(0, size - 256)), int(rng.integers(8, 256))
            b[pos:pos + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        else:
            pos, n = int(rng.integers(0, size - 8192)), int(rng.integers(512, 8192))
            b[pos:pos + n] = bytes(n)
        path = tmp_path / f"fuzz{i}_{kind}.root"
        path.write_bytes(bytes(b))
        fileset[f"fuzz{i}"] = [str(path)]
        damaged[f"fuzz{i}"] = str(path)
    out = _run(fileset, proc_skip, chunksize=150, skip=True)  # no crash
    _no_nan(out)
    _same(out, {"datasets": {"good": ref["datasets"]["ttbar"]}}, ["good"])
    for ds, path in damaged.items():
        mine = [s for s in out["run"]["skipped"] if s["file"] == path]
        assert all(s["dataset"] == ds and s["reason"] for s in mine)
        if any(s["entrystart"] is None for s in mine):  # the whole file was refused up front
            # ... and its dataset stays in the output, empty, with the file's events counted
            assert len(mine) == 1 and out["datasets"][ds]["cutflow"]["events"] == 0
            assert out["datasets"][ds]["skipped"] == mine
            assert out["datasets"][ds]["cutflow"]["events_skipped"] == (mine[0]["events"] or 0)
            continue
        # every event is either processed or inside a skipped chunk
        skipped_events = sum(s["entrystop"] - s["entrystart"] for s in mine)
        assert out["datasets"][ds]["cutflow"]["events"] + skipped_events == N_EVENTS, (ds, mine)
    assert all(s["file"] in damaged.values() for s in out["run"]["skipped"])
