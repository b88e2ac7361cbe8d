"""Filesets, the Runner and the run output (``hepml_coffea/run.py``)."""

from __future__ import annotations

import coffea.util
import pytest
import torch

from hepml_coffea.config import ConfigurationError, RunConfig
from hepml_coffea.processor import TaggerProcessor
from hepml_coffea.run import FilesetError, check_fileset, load_fileset, run_fileset


@pytest.fixture(scope="module")
def pfn(tiny_artifacts):
    return str(tiny_artifacts["pfn"])


def _cfg(**kw):
    return RunConfig(executor="iterative", chunksize=150, status=False, **kw)


def test_output_keeps_datasets_apart_from_run_metadata(pfn, ttbar_file, tmp_path):
    proc = TaggerProcessor(taggers=[pfn], device="cpu")
    # a dataset named like a metadata key is just a dataset
    out = run_fileset({"report": [str(ttbar_file)], "skipped": [str(ttbar_file)]}, proc, config=_cfg(),
                      out=tmp_path / "o.coffea")
    assert set(out) == {"datasets", "run"}
    assert set(out["datasets"]) == {"report", "skipped"}
    assert out["datasets"]["report"]["cutflow"] == out["datasets"]["skipped"]["cutflow"]
    assert out["datasets"]["report"]["cutflow"]["events"] == 300
    run = out["run"]
    assert run["skipped"] == [] and run["events_skipped"] == 0
    assert run["selection"] == "550 < pT < 650 GeV, |eta| < 2"
    assert [t["name"] for t in run["taggers"]] == ["pfn"] and len(run["taggers"][0]["hash"]) == 64
    assert "infer" in run["report"]
    loaded = coffea.util.load(tmp_path / "o.coffea")
    assert loaded["datasets"]["report"]["scores"].sum() == out["datasets"]["report"]["scores"].sum()


def test_directory_in_fileset_is_named_as_such(tmp_path):
    (tmp_path / "adir.root").mkdir()
    with pytest.raises(FilesetError, match="adir.root: is a directory, not a ROOT file"):
        check_fileset(load_fileset({"x": [str(tmp_path / "adir.root")]}))


def test_dataset_whose_only_file_is_bad_stays_with_its_events_counted(pfn, ttbar_file, tmp_path):
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(ttbar_file.read_bytes()[: ttbar_file.stat().st_size - 5000])
    (tmp_path / "adir.root").mkdir()
    proc = TaggerProcessor(taggers=[pfn], device="cpu", skip_bad_inputs=True)
    out = run_fileset({"good": [str(ttbar_file)], "cut": [str(truncated)], "dir": [str(tmp_path / "adir.root")]},
                      proc, config=_cfg(skip_bad_files=True))
    assert set(out["datasets"]) == {"good", "cut", "dir"}
    cut = out["datasets"]["cut"]
    assert cut["cutflow"]["events"] == 0 and cut["scores"].sum() == 0
    assert [s["reason"].split(" (")[0] for s in cut["skipped"]] == ["truncated"]
    # the truncated file's header still tells how many events it had: they are counted as skipped
    assert cut["skipped"][0]["events"] == 300 and cut["cutflow"]["events_skipped"] == 300
    assert out["datasets"]["dir"]["skipped"][0]["reason"] == "is a directory, not a ROOT file"
    assert out["datasets"]["dir"]["skipped"][0]["events"] is None
    assert out["run"]["events_skipped"] == 300 and len(out["run"]["skipped"]) == 2
    assert out["datasets"]["good"]["cutflow"]["events"] == 300


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_gpu_fails_the_run_even_when_skipping_bad_inputs(pfn, ttbar_file):
    proc = TaggerProcessor(taggers=[pfn], device="cuda", skip_bad_inputs=True)
    # coffea's Runner wraps the worker's error; it is still the configuration error, not a skip
    with pytest.raises(Exception, match="ConfigurationError.*torch sees no CUDA device"):
        run_fileset({"tt": [str(ttbar_file)]}, proc, config=_cfg(skip_bad_files=True))


def test_client_with_a_non_dask_executor_is_refused(pfn, ttbar_file):
    proc = TaggerProcessor(taggers=[pfn], device="cpu")
    with pytest.raises(ConfigurationError, match="a Dask client was given"):
        run_fileset({"tt": [str(ttbar_file)]}, proc, config=_cfg(), client=object())


def test_zero_scored_jets_notice(pfn, ttbar_file, capsys):
    from hepml_coffea.selection import Selection

    proc = TaggerProcessor(taggers=[pfn], device="cpu", selection=Selection(pt_min=5000, pt_max=6000))
    out = run_fileset({"tt": [str(ttbar_file)]}, proc, config=_cfg())
    err = capsys.readouterr().err
    n_fat = out["datasets"]["tt"]["cutflow"]["fat_jets"]
    assert n_fat > 0
    assert f"no fat jet was scored. 300 events had {n_fat} fat jets" in err
    assert f"rejected {n_fat} of them" in err and "--pt-min" in err
