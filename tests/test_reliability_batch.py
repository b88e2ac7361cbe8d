"""Issue 23, items 7 and 9: HTCondor jobs write their exit status like Slurm tasks and a
failed one is reported by ``merge`` with its log; split jobs carry the run's selection and
backend; a tagger that does not exist is refused at split time as a tagger problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from faults import run_iterative

from hepml_coffea.artifacts import ArtifactError
from hepml_coffea.batch.core import IncompleteJobsError, job_command, merge_job_dir
from hepml_coffea.batch.htcondor import write_jobs
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.selection import Selection
from hepml_coffea.batch.slurm import write_array_jobs

WIDE = Selection(pt_min=200.0, pt_max=3000.0, abs_eta_max=2.5, msd_min=20.0)


def _as_htcondor(jobdir: Path, job: int) -> int:
    """What HTCondor does with jobs.sub for one job: copy transfer_input_files into an empty
    scratch folder, run ``run_job.sh <job>`` there with stdout/stderr to logs/, and copy
    the transfer_output_files (the folders out/ and status/) back. Returns the exit code."""
    sub = dict(ln.split("=", 1) for ln in (jobdir / "jobs.sub").read_text().splitlines() if "=" in ln
               and not ln.startswith("#"))
    sub = {k.strip(): v.strip() for k, v in sub.items()}
    scratch = jobdir.parent / f"scratch_{job}"
    scratch.mkdir()
    for item in (s.strip().replace("$(job)", str(job)) for s in sub["transfer_input_files"].split(",")):
        src = Path(item) if Path(item).is_absolute() else jobdir / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, scratch / src.name)
    shutil.copy(jobdir / "run_job.sh", scratch / "run_job.sh")
    with open(jobdir / f"logs/job_{job}.out", "w") as out, open(jobdir / f"logs/job_{job}.err", "w") as err:
        rc = subprocess.run(["bash", "run_job.sh", str(job)], cwd=scratch, stdout=out, stderr=err, timeout=300,
                            check=False).returncode
    for folder in (s.strip() for s in sub["transfer_output_files"].split(",")):
        shutil.copytree(scratch / folder, jobdir / folder, dirs_exist_ok=True)
    return rc


def test_failed_htcondor_job_is_reported_by_merge_with_its_log(ttbar_file, qcd_file, tmp_path):
    gone = tmp_path / "gone.root"
    shutil.copy(qcd_file, gone)
    jobdir = tmp_path / "jobs"
    write_jobs({"ttbar": [str(ttbar_file)], "qcd": [str(gone)]}, jobdir, files_per_job=1, taggers=["baseline"],
               python=sys.executable)
    gone.unlink()  # job 1's input disappears after the split: the job fails
    assert _as_htcondor(jobdir, 0) == 0
    assert _as_htcondor(jobdir, 1) == 1
    assert (jobdir / "status/job_0.exit").read_text().strip() == "0"
    assert (jobdir / "status/job_1.exit").read_text().strip() == "1"
    with pytest.raises(IncompleteJobsError) as err:
        merge_job_dir(jobdir, tmp_path / "merged.coffea")
    msg = str(err.value)
    assert "job 1: failed (exit status 1)" in msg and f"log {jobdir.resolve() / 'logs/job_1.err'}" in msg
    assert "FilesetError" in msg and "gone.root" in msg  # the log's last line
    merged = merge_job_dir(jobdir, tmp_path / "merged.coffea", allow_incomplete=True)
    assert merged["run"]["missing_jobs"] == [{"id": 1, "state": "failed", "exit_status": 1,
                                              "log": str(jobdir.resolve() / "logs/job_1.err")}]


def test_job_command_carries_selection_and_backend():
    cmd = job_command(selection=WIDE, backend="onnxruntime", taggers=["pfn"])
    text = " ".join(cmd)
    assert "--backend onnxruntime" in text
    assert "--pt-min 200.0 --pt-max 3000.0 --eta-max 2.5 --msd-min 20.0" in text and "--msd-max" not in text
    assert "--pt-min" not in " ".join(job_command())  # no selection given: the CLI's default window


def test_selection_survives_split_and_merge(ttbar_file, qcd_file, tmp_path):
    fs = {"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}
    paths = write_array_jobs(fs, tmp_path / "jobs", files_per_job=1, taggers=["baseline"], python=sys.executable,
                             selection=WIDE, backend="torch")
    script = paths["script"].read_text()
    assert "--backend torch" in script and "--pt-min 200.0" in script
    for i in range(2):  # each array task, run here as `bash jobs.sbatch <i>`
        proc = subprocess.run(["bash", str(paths["script"]), str(i)], capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
    merged = merge_job_dir(tmp_path / "jobs", tmp_path / "merged.coffea")
    local = run_iterative(fs, TaggerProcessor(taggers=["baseline"], selection=WIDE, device="cpu"))
    default = run_iterative(fs, TaggerProcessor(taggers=["baseline"], device="cpu"))
    for ds in fs:
        got = merged["datasets"][ds]["cutflow"]
        assert got == local["datasets"][ds]["cutflow"]
        assert got["selected"] != default["datasets"][ds]["cutflow"]["selected"]  # the selection matters
    assert merged["run"]["selection"] == local["run"]["selection"] == WIDE.describe()


@pytest.mark.parametrize("writer", [write_jobs, write_array_jobs])
@pytest.mark.parametrize("tagger", ["/no/such/artifact", "no-such-tagger"])
def test_missing_tagger_is_an_artifact_error_naming_it(writer, tagger, ttbar_file, tmp_path):
    with pytest.raises(ArtifactError, match=f"tagger '{tagger}' not found"):
        writer({"ttbar": [str(ttbar_file)]}, tmp_path / "jobs", taggers=[tagger])
    with pytest.raises(ArtifactError, match=f"tagger '{tagger}' not found"):
        TaggerProcessor(taggers=[tagger])


def test_cli_missing_tagger_is_one_line_about_the_tagger(ttbar_file, tmp_path, capsys):
    from hepml_coffea.cli import main

    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"ttbar": [str(ttbar_file)]}))
    for argv in (["condor", "split", str(fs), "--outdir", str(tmp_path / "c"), "--taggers", "/no/such/artifact"],
                 ["slurm", "split", str(fs), "--outdir", str(tmp_path / "s"), "--taggers", "/no/such/artifact"],
                 ["run", "--fileset", str(fs), "--executor", "iterative", "--taggers", "/no/such/artifact",
                  "--out", str(tmp_path / "o.coffea")]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hepml-coffea: error: ArtifactError: tagger '/no/such/artifact'")
    assert not (tmp_path / "o.coffea").exists()
