"""Filesets, the Runner and the run output (``hepml_coffea/batch/run.py``)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from urllib.parse import urlparse

import coffea.util
import numpy as np
import pytest
import torch
import uproot
from faults import (
    N_EVENTS,
    collections,
    no_nan,
    run_iterative,
    same_histograms,
    write_tree,
)

from hepml_coffea.config import ConfigurationError, RunConfig
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.batch.run import (
    FilesetError,
    check_fileset,
    load_fileset,
    make_cluster,
    run_fileset,
)
from hepml_coffea.selection import Selection


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


def test_zero_scored_jets_notice(pfn, ttbar_file, hepml_log):

    proc = TaggerProcessor(taggers=[pfn], device="cpu", selection=Selection(pt_min=5000, pt_max=6000))
    out = run_fileset({"tt": [str(ttbar_file)]}, proc, config=_cfg())
    err = "\n".join(r.getMessage() for r in hepml_log.records if r.levelname == "WARNING")
    n_fat = out["datasets"]["tt"]["cutflow"]["fat_jets"]
    assert n_fat > 0
    assert f"no fat jet was scored. 300 events had {n_fat} fat jets" in err
    assert f"rejected {n_fat} of them" in err and "--pt-min" in err


def test_truncated_file(fast_proc_skip, ref_output, ttbar_file, qcd_file, tmp_path):
    bad = tmp_path / "truncated.root"
    data = ttbar_file.read_bytes()
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(FilesetError, match=re.escape(str(bad)) + ".*truncated"):
        check_fileset(load_fileset({"ttbar": [str(bad)]}))
    out = run_iterative({"ttbar": [str(bad)], "qcd": [str(qcd_file)]}, fast_proc_skip, skip=True)
    assert [s["file"] for s in out["run"]["skipped"]] == [str(bad)]
    assert "truncated" in out["run"]["skipped"][0]["reason"] and out["run"]["skipped"][0]["dataset"] == "ttbar"
    # the dataset stays, empty, with the file's events counted as skipped
    assert out["datasets"]["ttbar"]["cutflow"]["events"] == 0
    assert out["datasets"]["ttbar"]["cutflow"]["events_skipped"] == N_EVENTS == out["run"]["events_skipped"]
    same_histograms(out, ref_output, ["qcd"])  # the other dataset is untouched
    no_nan(out)



def test_empty_tree_and_zero_byte_file(fast_proc, fast_proc_skip, ttbar_file, qcd_file, ref_output, tmp_path):
    cols = collections(ttbar_file)
    empty = write_tree(tmp_path / "empty.root", {k: v[:0] for k, v in cols.items()})
    assert uproot.open(empty)["Events"].num_entries == 0
    out = run_iterative({"empty": [str(empty)], "qcd": [str(qcd_file)]}, fast_proc)
    assert out["datasets"]["empty"]["cutflow"]["events"] == 0 and out["datasets"]["empty"]["scores"].sum() == 0
    assert out["run"]["skipped"] == []
    same_histograms(out, ref_output, ["qcd"])
    zero = tmp_path / "zero.root"
    zero.write_bytes(b"")
    with pytest.raises(FilesetError, match=re.escape(str(zero)) + r": is empty \(0 bytes\), not a ROOT file"):
        check_fileset(load_fileset({"z": [str(zero)]}))
    out = run_iterative({"z": [str(zero)], "qcd": [str(qcd_file)]}, fast_proc_skip, skip=True)
    assert [(s["dataset"], s["file"]) for s in out["run"]["skipped"]] == [("z", str(zero))]
    assert out["run"]["skipped"][0]["reason"].startswith("is empty (0 bytes)")
    same_histograms(out, ref_output, ["qcd"])



def test_dask_worker_killed_mid_run_and_localhost_cluster(arts, ref_output, ttbar_file, tmp_path):
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
        try:
            cluster.close()
        except TimeoutError:  # a nanny whose worker was killed can be slow to close on a busy machine
            pass
    assert "err" not in result, result.get("err")
    out = result["out"]
    assert out["run"]["skipped"] == []
    same_histograms(out, ref_output, ["ttbar"])



def test_fuzzed_files_never_crash_and_are_accounted_for(fast_proc_skip, ref_output, ttbar_file, tmp_path):
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
    out = run_iterative(fileset, fast_proc_skip, chunksize=150, skip=True)  # no crash
    no_nan(out)
    same_histograms(out, {"datasets": {"good": ref_output["datasets"]["ttbar"]}}, ["good"])
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
