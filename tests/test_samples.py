"""Tests of hepml_coffea.samples: generated PFNano files (layout, metadata, physics consistency)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from faults import (
    N_EVENTS,
    collections,
)

from hepml_coffea.data.io import load_events
from hepml_coffea.samples import GenerationConfig, read_metadata


def test_generated_file_layout_and_metadata(ttbar_file):
    meta = read_metadata(ttbar_file)
    assert meta["process"] == "ttbar" and meta["seed"] == 11 and meta["pythia_seeds"] == [11]
    from importlib.metadata import version

    # provenance read from the installed packages, not a hard-coded string
    assert meta["generator"].startswith(f"pythia8mc {version('pythia8mc')} + fastjet {version('fastjet')}")
    with uproot.open(ttbar_file) as f:
        tree = f["Events"]
        assert tree.classname == "TTree"
        keys = set(tree.keys())
        for b in ("run", "luminosityBlock", "event", "genWeight", "FatJet_pt", "FatJet_msoftdrop",
                  "FatJet_tau3", "FatJet_nConstituents", "PFCands_pdgId", "FatJetPFCands_jetIdx",
                  "FatJetPFCands_pFCandsIdx", "GenPart_statusFlags", "GenPart_genPartIdxMother"):
            assert b in keys, b
        assert tree["FatJet_pt"].interpretation.content.to_dtype.name == "float32"
        pt = tree["FatJet_pt"].array()
        assert str(ak.type(pt)).endswith("float32")
        ev = tree["event"].array()
        assert np.all(np.diff(ev.to_numpy().astype(np.int64)) == 1)
        assert ev[0] == 11 * 10**8


def test_coffea_cross_reference_reproduces_jets(ttbar_file):
    events = load_events(ttbar_file, mode="eager")
    fj = events.FatJet
    cons = fj.constituents.pf
    assert ak.all(ak.num(cons, axis=2) == fj.nConstituents)
    # summed constituent four-vectors reproduce the jet (float32 storage precision)
    for comp in ("px", "py", "pz", "energy"):
        total = ak.flatten(ak.sum(getattr(cons, comp), axis=-1))
        ref = ak.flatten(getattr(fj, comp))
        rel = np.abs(ak.to_numpy(total - ref)) / ak.to_numpy(ak.flatten(fj.pt))
        assert rel.max() < 1e-4, comp
    # pT ordering of jets
    assert ak.all(fj.pt[:, :-1] >= fj.pt[:, 1:])


def test_multiprocess_generation_and_detector_switch(tmp_path):
    from hepml_coffea.samples import generate

    p = generate("qcd", 40, 5, tmp_path / "q.root", workers=2, detector=False, pthat_min=300.0)
    meta = read_metadata(p)
    assert meta["pythia_seeds"] == [5000, 5001] and meta["workers"] == 2 and meta["detector"] is False
    ev = uproot.open(p)["Events"]["event"].array().to_numpy().astype(np.int64)
    assert len(ev) == 40 and len(np.unique(ev)) == 40 and ev.min() == 5 * 10**8
    # without the detector response, constituent momenta sum exactly to the jet (no thresholds)
    events = load_events(p, mode="eager")
    cons = events.FatJet.constituents.pf
    rel = np.abs(ak.to_numpy(ak.flatten(ak.sum(cons.px, axis=-1) - events.FatJet.px))) / ak.to_numpy(ak.flatten(events.FatJet.pt))
    assert rel.max() < 1e-4


def test_interrupted_write_pfnano_leaves_nothing(ttbar_file, tmp_path, monkeypatch):
    from uproot.writing.writable import WritableTree

    from hepml_coffea.samples.write import write_pfnano

    cols = collections(ttbar_file)
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


def test_generation_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown process 'wjets'"):
        GenerationConfig(process="wjets", n_events=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be in"):
        GenerationConfig(process="qcd", n_events=10, seed=0)
    with pytest.raises(ValueError, match="n_events must be >= 0"):
        GenerationConfig(process="qcd", n_events=-1)


def _touch_everything(events, schema):
    """Read every field of every collection and the cross-references a processor follows."""
    for name in events.fields:
        coll = events[name]
        for field in ak.fields(coll):
            ak.to_list(coll[field][:1])
    fj = events.FatJet
    ak.to_list(fj.subjets.pt[:2])
    ak.to_list(fj.matched_gen[:2])
    ak.to_list(events.GenPart.children.pdgId[:2])
    ak.to_list(events.GenPart.parent.pdgId[:2])
    if schema.__name__ == "PFNanoAODSchema":
        ak.to_list(fj.constituents.pf.pt[:2])
        ak.to_list(events.Jet.constituents.pf.pt[:2])


def test_generated_file_is_quiet_in_coffea_and_prints_no_fastjet_banner(tmp_path):
    """A user's processor on a generated file sees no warning from coffea's schemas (the file
    carries every cross-reference index they look for), and generation prints no FastJet banner."""
    import subprocess
    import sys
    import warnings

    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory, PFNanoAODSchema

    from hepml_coffea.samples.write import ABSENT_COLLECTIONS, FATJET_INDICES

    path = tmp_path / "ttbar_31.root"
    code = f"from hepml_coffea.samples import generate; generate('ttbar', 20, 31, {str(path)!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "FastJet" not in run.stdout + run.stderr, run.stdout[:500]
    for schema in (NanoAODSchema, PFNanoAODSchema):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=schema, mode="virtual").events()
            _touch_everything(events, schema)
        assert [str(w.message) for w in caught] == [], schema.__name__
    # NanoAOD's "no target": -1 on every jet; the collections the generator does not make are empty
    with uproot.open(path) as f:
        tree = f["Events"]
        npt = ak.num(tree["FatJet_pt"].array())
        for name in FATJET_INDICES:
            idx = tree[f"FatJet_{name}"].array()
            assert ak.all(ak.num(idx) == npt) and ak.all(idx == -1), name
        for coll, fields in ABSENT_COLLECTIONS.items():
            assert ak.sum(tree[f"n{coll}"].array()) == 0, coll
            assert {f"{coll}_{k}" for k in fields} <= set(tree.keys()), coll


def test_batched_pythia_path_gives_the_events_of_the_one_by_one_loop():
    """``nextBatch`` + column code = ``next()`` + the per-particle loop and the reference
    ``_genparts`` on ``pythia8mc.Event`` (same particles, same GenPart rows, bit for bit)."""
    import sys

    gen = sys.modules["hepml_coffea.samples.generate"]
    for process in ("ttbar", "qcd"):
        config = GenerationConfig(process=process, n_events=12, seed=41)
        py = gen._make_pythia(config, 41)
        rows, gens = [], []
        for _ in range(12):
            assert py.next()
            ev = py.event
            rows.append(np.array([(p.px(), p.py(), p.pz(), p.e(), p.id(), p.charge())
                                  for p in ev if p.isFinal() and p.isVisible()]).reshape(-1, 6))
            gens.append(gen._genparts(ev, process))
        py = gen._make_pythia(config, 41)
        batch = gen._EventArrays(gen._next_batch(py, 12))
        flat, counts = gen._visible_final(batch, py.particleData, {})
        assert counts.tolist() == [len(r) for r in rows]
        np.testing.assert_array_equal(flat, np.concatenate(rows))
        new = [gen._genparts_arrays(batch, k, process) for k in range(12)]
        assert [len(g) for g in new] == [len(g) for g in gens] and sum(map(len, gens)) >= 12
        # float32 storage: identical; float64: Pythia's own formulas, to the last bits
        np.testing.assert_array_equal(np.array(sum(new, []), dtype=np.float32), np.array(sum(gens, []), dtype=np.float32))
        np.testing.assert_allclose(np.array(sum(new, [])), np.array(sum(gens, [])), rtol=1e-13, atol=1e-12)


def test_softdrop_mass_is_fastjets_softdrop_bit_for_bit(ttbar_file):
    import sys

    import fastjet

    gen = sys.modules["hepml_coffea.samples.generate"]
    cons = load_events(ttbar_file, mode="eager").FatJet.constituents.pf
    flat = ak.flatten(cons, axis=1)
    jets = ak.zip({k: ak.values_astype(getattr(flat, a), np.float64)
                   for k, a in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "energy"))})
    jets = jets[ak.num(jets) >= 1]
    cs = fastjet.ClusterSequence(jets, fastjet.JetDefinition(fastjet.cambridge_algorithm, 0.8))
    ref = ak.to_numpy(cs.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=0.8).msoftdrop)
    assert len(ref) > 300
    np.testing.assert_array_equal(gen._softdrop_mass(jets, 0.8), ref)


def test_training_set_resumes_after_an_interruption_and_keeps_a_true_manifest(tmp_path, monkeypatch):
    """grow_training_set: an interrupted file (left as .root.tmp) is never counted and is
    regenerated; finished files are kept; the manifest matches the files on disk."""
    import hashlib
    import json
    from pathlib import Path

    from hepml_coffea.samples import training_set as ts
    from hepml_coffea.samples.count import count_window_jets

    out, copy = tmp_path / "train", tmp_path / "docs" / "data_manifest.json"
    real = ts._generate_file
    calls = []

    def interrupted(process, events, seed, path):
        calls.append((process, seed))
        if len(calls) == 2:  # killed while writing the second file
            Path(path + ".tmp").write_bytes(b"half a file")
            raise KeyboardInterrupt
        return real(process, events, seed, path)

    monkeypatch.setattr(ts, "_generate_file", interrupted)
    kw = {"target_top": 20, "target_qcd": 30, "events_per_file": 40, "manifest_copy": copy, "command": "test"}
    with pytest.raises(KeyboardInterrupt):
        ts.grow_training_set(out, **kw)
    m = json.loads((out / "manifest.json").read_text())
    assert [e["file"] for e in m["files"]] == ["qcd_20001.root"] and not m["done"]
    assert (out / "ttbar_10001.root.tmp").exists() and not (out / "ttbar_10001.root").exists()
    first_bytes = (out / "qcd_20001.root").read_bytes()

    calls.clear()
    def recorded(process, events, seed, path):
        calls.append((process, seed))
        return real(process, events, seed, path)

    monkeypatch.setattr(ts, "_generate_file", recorded)
    m = ts.grow_training_set(out, **kw)
    assert calls[0] == ("ttbar", 10001)  # the interrupted seed again; the finished file is not regenerated
    assert (out / "qcd_20001.root").read_bytes() == first_bytes
    assert not list(out.glob("*.tmp"))
    assert m["done"] and json.loads(copy.read_text()) == json.loads((out / "manifest.json").read_text())
    on_disk = sorted(p.name for p in out.glob("*.root"))
    assert sorted(e["file"] for e in m["files"]) == on_disk
    for e in m["files"]:
        path = out / e["file"]
        assert e["seed"] == int(e["file"].split("_")[1].removesuffix(".root"))
        assert e["seed"] >= 10001 and e["events"] == 40 and e["bytes"] == path.stat().st_size
        assert e["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert e["window_jets"] == count_window_jets(path, e["process"])
        assert e["generator"].startswith("pythia8mc ") and e["command"] == "test"
    for p in ("ttbar", "qcd"):
        assert m["totals"][p]["window_jets"] == sum(e["window_jets"] for e in m["files"] if e["process"] == p)
        assert m["totals"][p]["window_jets"] >= kw[f"target_{'top' if p == 'ttbar' else 'qcd'}"]
    # a finished file the manifest missed (killed between rename and manifest update) is adopted
    (out / "manifest.json").unlink()
    calls.clear()
    again = ts.grow_training_set(out, **kw)
    assert calls == [] and [e["content_sha256"] for e in again["files"]] == [e["content_sha256"] for e in m["files"]]
    # seeds of the evaluation set are refused
    with pytest.raises(ValueError, match="overlap seeds 3001-4999"):
        ts.grow_training_set(out, 1, 1, first_seeds={"ttbar": 3001, "qcd": 20001})


def test_training_set_rebuilds_from_a_manifest(tmp_path):
    """--files-from: exactly the listed files, content identical to the first build."""
    from hepml_coffea.samples.training_set import grow_training_set

    first = grow_training_set(tmp_path / "a", 10, 10, events_per_file=30, manifest_copy=tmp_path / "m.json")
    again = grow_training_set(tmp_path / "b", 0, 0, files_from=tmp_path / "m.json")
    assert [e["file"] for e in again["files"]] == [e["file"] for e in first["files"]]
    assert [e["content_sha256"] for e in again["files"]] == [e["content_sha256"] for e in first["files"]]
    assert set(again["rebuild_check"].values()) == {True}
