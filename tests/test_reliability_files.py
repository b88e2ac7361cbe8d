"""Issue 23, item 5: empty, non-ROOT, truncated, wrong-tree and missing-branch files each get
their own one-line message; skip records carry the entry range and the event count when
they are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from faults import collections, run_iterative, write_tree

from hepml_coffea.data.filesets import FilesetError, check_fileset, load_fileset
from hepml_coffea.data.io import load_events
from hepml_coffea.analysis.processor import TaggerProcessor

N = 300  # events of the ttbar_file fixture


@pytest.fixture(scope="module")
def bad_files(ttbar_file, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    data = Path(ttbar_file).read_bytes()
    out = {"empty": root / "empty.root", "text": root / "text.root", "head_only": root / "head_only.root",
           "tail_cut": root / "tail_cut.root", "no_fatjet": root / "no_fatjet.root",
           "missing": root / "missing.root", "directory": root / "adir.root"}
    out["empty"].write_bytes(b"")
    out["text"].write_text("run,lumi,event\n1,2,3\n")
    out["head_only"].write_bytes(data[:2000])  # uproot: "expected Chunk of length 429"
    out["tail_cut"].write_bytes(data[:-100])  # the tree header is still readable: 300 events known
    with uproot.recreate(out["no_fatjet"]) as f:
        f["Events"] = {"nJet": np.arange(5, dtype=np.int32)}
    out["directory"].mkdir()
    return out


EXPECT = {
    "empty": ("is empty (0 bytes), not a ROOT file", None),
    "text": ("is not a ROOT file (it starts with b'run,lumi,eve'", None),
    "head_only": ("truncated (2000 bytes, its header says ", None),
    "tail_cut": ("truncated (", N),
    "no_fatjet": ("tree 'Events' has no fat-jet branches ['FatJet_pt', 'FatJet_eta', 'FatJet_phi'] (5 events)", 5),
    "missing": ("file does not exist", None),
    "directory": ("is a directory, not a ROOT file", None),
}


@pytest.mark.parametrize("kind", list(EXPECT))
def test_each_bad_file_has_its_own_one_line_message(bad_files, kind):
    path = bad_files[kind]
    with pytest.raises(FilesetError) as err:
        check_fileset(load_fileset({"ds": [str(path)]}))
    msg = str(err.value)
    assert msg.startswith(f"dataset 'ds': {path}: {EXPECT[kind][0]}") and "\n" not in msg
    assert "expected Chunk" not in msg


def test_wrong_tree_is_named_with_the_trees_there(ttbar_file):
    with pytest.raises(FilesetError, match=r": no tree 'Evts' in the file \(trees: \['Events'\]\)$"):
        check_fileset(load_fileset({"ds": {"files": {str(ttbar_file): "Evts"}}}))


def test_reasons_are_distinct(bad_files):
    _, skipped = check_fileset(load_fileset({k: [str(p)] for k, p in bad_files.items()}), skip_bad_files=True)
    heads = {s["dataset"]: s["reason"].split(" (")[0].split(":")[0] for s in skipped}
    assert len(heads) == len(bad_files)
    assert heads["head_only"] == heads["tail_cut"] == "truncated"  # one kind, two depths
    assert len(set(heads.values())) == len(bad_files) - 1


def test_skip_records_carry_entry_range_and_events_when_known(bad_files, ttbar_file):
    fs = {"good": [str(ttbar_file)], **{k: [str(p)] for k, p in bad_files.items()}}
    proc = TaggerProcessor(taggers=["baseline"], device="cpu", skip_bad_inputs=True)
    out = run_iterative(fs, proc, skip=True)
    by_ds = {s["dataset"]: s for s in out["run"]["skipped"]}
    assert set(by_ds) == set(bad_files)
    for kind, (reason, n) in EXPECT.items():
        rec = by_ds[kind]
        assert rec["reason"].startswith(reason) and rec["events"] == n, kind
        assert (rec["entrystart"], rec["entrystop"]) == ((0, n) if n is not None else (None, None)), kind
        assert out["datasets"][kind]["cutflow"]["events_skipped"] == (n or 0)
    assert out["run"]["events_skipped"] == N + 5


def test_skipped_chunk_without_entry_range_counts_its_events(ttbar_file, tmp_path):
    cols = collections(ttbar_file)
    del cols["FatJetPFCands"]  # no association branches: MissingBranchError when scoring
    path = write_tree(tmp_path / "no_assoc.root", cols)
    events = load_events(path)  # NanoEvents made directly: metadata without entrystart / entrystop
    proc = TaggerProcessor(taggers=["pfn"], device="cpu", skip_bad_inputs=True)
    acc = proc.process(events)["datasets"]["unknown"]
    (rec,) = acc["skipped"]
    assert rec["reason"].startswith("MissingBranchError: ") and rec["events"] == N
    assert acc["cutflow"]["events_skipped"] == N


def test_cli_prints_one_line_per_kind(bad_files, tmp_path, capsys):
    from hepml_coffea.cli import main

    for kind in ("empty", "text", "head_only", "no_fatjet"):
        fs = tmp_path / f"{kind}.json"
        fs.write_text(json.dumps({"ds": [str(bad_files[kind])]}))
        assert main(["run", "--fileset", str(fs), "--executor", "iterative", "--taggers", "baseline",
                     "--out", str(tmp_path / "o.coffea")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"hepml-coffea: error: FilesetError: dataset 'ds': "
                                                   f"{bad_files[kind]}: {EXPECT[kind][0]}")
    assert not (tmp_path / "o.coffea").exists()
