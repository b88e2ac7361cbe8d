"""The batch core (``hepml_coffea.batch.core``): fileset splitting, job folders, merging.

Job outputs are made in-process with the iterative executor (what ``run_job.sh`` / a
Slurm task does, job by job); merged they equal one run over the whole fileset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hepml_coffea.analysis.histograms import datasets_of
from hepml_coffea.batch.core import (
    MergeError,
    job_status,
    merge_job_dir,
    merge_outputs,
    split_fileset,
)
from hepml_coffea.batch.htcondor import write_jobs
from hepml_coffea.config import RunConfig


def _all_files(jobs: list[dict]) -> list[tuple[str, str]]:
    return [(ds, f) for job in jobs for ds, e in job.items() for f in e["files"]]


def test_split_covers_every_file_once(four_files: dict[str, list[str]], tmp_path: Path) -> None:
    fs = dict(four_files)
    fs["extra"] = {"files": {str(tmp_path / "ttbar_1.root"): "Events"}, "metadata": {"xs": 1.5}}
    expected = sorted((ds, str(Path(f))) for ds, e in fs.items() for f in (e["files"] if isinstance(e, dict) else e))
    for kw, n in (({"files_per_job": 1}, 5), ({"files_per_job": 2}, 3), ({"files_per_job": 10}, 1),
                  ({"n_jobs": 2}, 2), ({"n_jobs": 3}, 3), ({"n_jobs": 50}, 5)):
        jobs = split_fileset(fs, **kw)
        assert len(jobs) == n, kw
        got = _all_files(jobs)
        assert sorted(got) == expected, kw  # each (dataset, file) exactly once
        assert all(job for job in jobs)
        for job in jobs:
            for entry in job.values():
                assert set(entry["files"].values()) == {"Events"}
    # relative paths of a fileset JSON are resolved against its folder and made absolute
    (tmp_path / "sub").mkdir()
    rel = tmp_path / "sub" / "fileset.json"
    rel.write_text(json.dumps({"ttbar": ["../ttbar_1.root"], "qcd": ["root://host//store/qcd.root"]}))
    jobs = split_fileset(rel, n_jobs=2)
    assert _all_files(jobs) == [("ttbar", str(tmp_path / "ttbar_1.root")), ("qcd", "root://host//store/qcd.root")]
    extra = [job["extra"] for job in split_fileset(fs, files_per_job=1) if "extra" in job]
    assert extra[0]["metadata"] == {"xs": 1.5}
    with pytest.raises(ValueError, match="exactly one"):
        split_fileset(fs)


# --------------------------------------------------------------------------- jobs + merge == one run
@pytest.fixture(scope="module")
def job_outputs(ttbar_file: Path, qcd_file: Path, tiny_artifacts: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> dict:
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    tmp = tmp_path_factory.mktemp("condor_jobs")
    proc = TaggerProcessor(taggers=[str(tiny_artifacts["baseline"]), str(tiny_artifacts["pfn"])])
    config = RunConfig(executor="iterative", status=False)
    fileset = {"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}
    job_dir = tmp / "sub"
    paths = write_jobs(fileset, job_dir, files_per_job=1)
    outs = []
    for i, job_json in enumerate(paths["jobs"]):  # what run_job.sh does, job by job
        out = paths["out"] / f"job_{i}.coffea"
        run_fileset(job_json, proc, config=config, out=out)
        outs.append(out)
    whole = run_fileset(fileset, proc, config=config)
    return {"outs": outs, "whole": whole, "tmp": tmp, "job_dir": job_dir}


def _assert_same(merged: dict, whole: dict) -> None:
    dm, dw = datasets_of(merged), datasets_of(whole)
    assert set(dm) == set(dw) == {"ttbar", "qcd"}
    for ds in dm:
        assert dm[ds]["scores"].values().sum() > 0
        np.testing.assert_array_equal(dm[ds]["scores"].values(), dw[ds]["scores"].values())
        np.testing.assert_array_equal(dm[ds]["working_points"].values(), dw[ds]["working_points"].values())
        assert dm[ds]["cutflow"] == dw[ds]["cutflow"]
        assert dm[ds]["tagger_counts"] == dw[ds]["tagger_counts"]
        assert dm[ds]["skipped"] == dw[ds]["skipped"] == []


def test_merge_equals_single_run(job_outputs: dict) -> None:
    from coffea.util import load

    whole = job_outputs["whole"]
    merged_path = job_outputs["tmp"] / "merged.coffea"
    merged = merge_outputs(job_outputs["outs"], out=merged_path)
    assert merged_path.is_file()
    assert not list(merged_path.parent.glob(".merged.coffea.*"))
    assert set(merged) == {"datasets", "run"}
    _assert_same(merged, whole)
    assert merged["run"]["taggers"] == whole["run"]["taggers"]
    assert merged["run"]["skipped"] == whole["run"]["skipped"] == []
    assert merged["run"]["merged_from"] == 2
    assert "merged from 2 job output(s)" in merged["run"]["report"]
    _assert_same(load(merged_path), whole)
    # the CLI does the same
    from hepml_coffea.cli import main

    cli_out = job_outputs["tmp"] / "cli_merged.coffea"
    assert main(["condor", "merge", *map(str, job_outputs["outs"]), "--out", str(cli_out)]) == 0
    _assert_same(load(cli_out), whole)


def test_merge_job_dir_refuses_incomplete(job_outputs: dict, tmp_path: Path, merge_refused) -> None:
    """The job folder's manifest says which outputs must be there: a missing one is
    listed with its log path, and only ``allow_incomplete`` merges the rest."""
    job_dir = tmp_path / "sub"
    shutil.copytree(job_outputs["job_dir"], job_dir)
    assert [r["state"] for r in job_status(job_dir)] == ["done", "done"]
    _assert_same(merge_job_dir(job_dir), job_outputs["whole"])
    (job_dir / "out" / "job_1.coffea").unlink()
    (job_dir / "logs" / "job_1.err").write_text("Traceback ...\nOSError: XRootD error: [ERROR] Server responded with an error\n")
    merge_refused(job_dir, tmp_path / "merged.coffea", "1 of 2 job(s)", "job 1: no output and no exit status",
                  "XRootD error")
    part = merge_job_dir(job_dir, out=tmp_path / "merged.coffea", allow_incomplete=True)
    assert [(m["id"], m["state"]) for m in part["run"]["missing_jobs"]] == [(1, "missing")]
    assert "INCOMPLETE" in part["run"]["report"]
    assert set(datasets_of(part)) == {"ttbar"}
    np.testing.assert_array_equal(datasets_of(part)["ttbar"]["scores"].values(),
                                  datasets_of(job_outputs["whole"])["ttbar"]["scores"].values())
    with pytest.raises(MergeError, match="no manifest.json"):
        merge_job_dir(tmp_path)
    with pytest.raises(MergeError, match="is a folder"):
        merge_outputs([job_dir])


def test_merge_rejects_different_taggers(job_outputs: dict) -> None:
    from coffea.util import load, save

    other = load(job_outputs["outs"][1])
    other["run"]["taggers"][0] = {**other["run"]["taggers"][0], "hash": "0" * 64}
    bad = job_outputs["tmp"] / "bad_job.coffea"
    save(other, bad)
    with pytest.raises(MergeError, match="different taggers"):
        merge_outputs([job_outputs["outs"][0], bad], out=job_outputs["tmp"] / "never.coffea")
    assert not (job_outputs["tmp"] / "never.coffea").exists()
    with pytest.raises(MergeError, match="does not exist"):
        merge_outputs([job_outputs["outs"][0], job_outputs["tmp"] / "missing.coffea"])
    # skipped lists concatenate
    a, b = load(job_outputs["outs"][0]), load(job_outputs["outs"][1])
    a["run"]["skipped"] = [{"dataset": "ttbar", "file": "x.root", "reason": "r1"}]
    b["run"]["skipped"] = [{"dataset": "qcd", "file": "y.root", "reason": "r2"}]
    assert [s["reason"] for s in merge_outputs([a, b])["run"]["skipped"]] == ["r1", "r2"]


def test_merge_reads_the_old_flat_layout(job_outputs: dict) -> None:
    """Outputs written before the {datasets, run} layout still merge (old job folders)."""
    from coffea.util import load

    flat = []
    for p in job_outputs["outs"]:
        doc = load(p)
        flat.append({**doc["datasets"], "taggers": doc["run"]["taggers"], "skipped": [], "report": ""})
    merged = merge_outputs(flat)
    assert "datasets" not in merged and merged["taggers"] == job_outputs["whole"]["run"]["taggers"]
    _assert_same({"datasets": {k: merged[k] for k in ("ttbar", "qcd")}}, job_outputs["whole"])
