"""Tests of hepml_coffea/data/filesets.py."""

from __future__ import annotations

import json
import re

import pytest

from hepml_coffea.config import RunConfig
from hepml_coffea.batch.run import (
    FilesetError,
    check_fileset,
    load_fileset,
    run_fileset,
)


def test_fileset_json_errors(ttbar_file, tmp_path, fast_proc):
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"ttbar": ["data/missing.root"]}))
    with pytest.raises(FilesetError, match=re.escape(str(tmp_path / "data" / "missing.root")) + ".*does not exist"):
        run_fileset(fs, fast_proc, config=RunConfig(executor="iterative", status=False))
    fs.write_text(json.dumps({"ttbar": {"files": {str(ttbar_file): "Evnts"}}}))
    with pytest.raises(FilesetError, match=re.escape(str(ttbar_file)) + r".*no tree 'Evnts'.*'Events'"):
        run_fileset(fs, fast_proc, config=RunConfig(executor="iterative", status=False))
    fs.write_text('{"ttbar": ["a.root",]')
    with pytest.raises(FilesetError, match=re.escape(str(fs)) + ".*not valid JSON"):
        load_fileset(fs)
    fs.write_text("[]")
    with pytest.raises(FilesetError, match="non-empty mapping"):
        load_fileset(fs)


def test_fileset_errors(tmp_path, ttbar_file):
    with pytest.raises(FilesetError, match="does not exist"):
        load_fileset(tmp_path / "missing.json")
    with pytest.raises(FilesetError, match="nofile.root: file does not exist"):
        check_fileset(load_fileset({"x": [str(tmp_path / "nofile.root")]}))
    with pytest.raises(FilesetError, match="no tree 'Evts'"):
        check_fileset(load_fileset({"x": {"files": {str(ttbar_file): "Evts"}}}))
