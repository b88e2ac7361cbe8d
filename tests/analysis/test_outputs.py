"""Tests of hepml_coffea/analysis/outputs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import (
    collections,
    write_tree,
)

from hepml_coffea.config import RunConfig
from hepml_coffea.batch.run import (
    run_fileset,
)


def test_interrupted_save_leaves_nothing(fast_proc, ttbar_file, tmp_path, monkeypatch):
    import coffea.util

    cols = collections(ttbar_file)
    (tmp_path / "in").mkdir()
    empty = write_tree(tmp_path / "in" / "empty.root", {k: v[:0] for k, v in cols.items()})
    outdir = tmp_path / "out"

    def interrupted_save(obj, path):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(coffea.util, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_fileset({"e": [str(empty)]}, fast_proc, config=RunConfig(executor="iterative", status=False), out=outdir / "out.coffea")
    assert list(outdir.iterdir()) == []
    monkeypatch.undo()
    run_fileset({"e": [str(empty)]}, fast_proc, config=RunConfig(executor="iterative", status=False), out=outdir / "out.coffea")
    assert [f.name for f in outdir.iterdir()] == ["out.coffea"]
    assert coffea.util.load(outdir / "out.coffea")["datasets"]["e"]["cutflow"]["events"] == 0
