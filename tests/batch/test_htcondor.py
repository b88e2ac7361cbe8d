"""HTCondor (``hepml_coffea.batch.htcondor``): worker job scripts, batch submit files, run_job.sh.

No HTCondor daemons here (only its Python bindings install from PyPI): the Dask cluster
is constructed (its scheduler starts, bound to localhost) but never scaled, so
condor_submit is never called; every submit description we write is parsed by the
``htcondor2`` bindings and its requests checked; batch "jobs" are run in-process with
the iterative executor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import htcondor2
import pytest

from hepml_coffea.batch.core import split_fileset
from hepml_coffea.batch.htcondor import (
    htcondor_cluster,
    htcondor_job_script,
    write_jobs,
)

ENV = [". /shared/venv/bin/activate", "export HEPML_TEST=1"]


# --------------------------------------------------------------------------- Dask on HTCondor
def test_cpu_cluster_job_script(tmp_path: Path) -> None:
    cluster = htcondor_cluster("cpu", cores=2, memory="8GB", disk="2GB", env_setup=ENV,
                               python="/shared/venv/bin/python", log_directory=tmp_path / "logs",
                               dashboard_address="127.0.0.1:0", scheduler_options={"host": "127.0.0.1"})
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert "127.0.0.1" in cluster.dashboard_link
    finally:
        cluster.close()
    assert "MY.DaskWorkerCores = 2" in script
    assert "RequestCpus = MY.DaskWorkerCores" in script
    assert "MY.DaskWorkerMemory = 8000000000" in script
    assert "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)" in script
    assert "MY.DaskWorkerDisk = 2000000000" in script
    assert "request_gpus" not in script.lower()
    args = next(line for line in script.splitlines() if line.startswith("Arguments"))
    # environment first, then the worker: two single-threaded worker processes
    assert args.index(". /shared/venv/bin/activate") < args.index("export HEPML_TEST=1") < args.index("/shared/venv/bin/python")
    assert "/shared/venv/bin/python -m distributed.cli.dask_worker tcp://127.0.0.1:" in args
    assert "--nthreads 1 " in args
    assert "--nworkers 2" in args
    assert str(tmp_path / "logs") in script
    assert "CUDA_VISIBLE_DEVICES" not in script


def test_gpu_job_script() -> None:
    script = htcondor_job_script("gpu", cores=4, gpus=2, memory="16GB", env_setup=ENV, python="python3",
                                 scheduler="tcp://10.0.0.1:8786")
    assert "request_gpus = 2" in script
    assert "MY.DaskWorkerCores = 4" in script
    args = next(line for line in script.splitlines() if line.startswith("Arguments"))
    assert "python3 -m dask cuda worker tcp://10.0.0.1:8786" in args
    assert "--nthreads 2 " in args  # 4 cores over 2 GPU workers
    assert "--nworkers" not in args  # dask cuda worker starts one worker per GPU itself
    assert ". /shared/venv/bin/activate" in args
    assert "CUDA_VISIBLE_DEVICES" not in script  # left to HTCondor
    with pytest.raises(ValueError, match="kind"):
        htcondor_job_script("tpu")


def test_gpu_cluster_job_script(tmp_path: Path) -> None:
    cluster = htcondor_cluster("gpu", env_setup=ENV[:1], log_directory=tmp_path / "logs",
                               dashboard_address="127.0.0.1:0", scheduler_options={"host": "127.0.0.1"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "request_gpus = 1" in script
    assert "-m dask cuda worker tcp://127.0.0.1:" in script
    assert "--nthreads 1 " in script



def test_tls_cluster_job_script(tmp_path: Path) -> None:
    from distributed.security import Security

    cluster = htcondor_cluster("cpu", log_directory=tmp_path / "logs", dashboard_address="127.0.0.1:0",
                               scheduler_options={"host": "127.0.0.1"}, protocol="tls",
                               security=Security.temporary(), shared_temp_directory=str(tmp_path))
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    finally:
        cluster.close()
    assert "--tls-ca-file " + str(tmp_path) in script
    assert "--tls-cert " in script and "--tls-key " in script

# --------------------------------------------------------------------------- the htcondor bindings read them
def _submit(text: str) -> htcondor2.Submit:
    """Parse a submit description as condor_submit would (htcondor2.Submit raises on
    a line it cannot read); keys are case-insensitive in HTCondor, so lower them."""
    sub = htcondor2.Submit(text)
    assert dict(sub), "nothing parsed"
    return sub


def _lower(sub: htcondor2.Submit) -> dict[str, str]:
    return {k.lower(): v for k, v in dict(sub).items()}


def test_bindings_reject_garbage() -> None:
    with pytest.raises(Exception, match="parse"):
        htcondor2.Submit("request_cpus 2 3\nqueue")


@pytest.mark.parametrize(("kind", "kw", "expect"), [
    ("cpu", {"cores": 2, "memory": "8GB", "disk": "2GB"},
     {"my.daskworkercores": "2", "my.daskworkermemory": "8000000000", "my.daskworkerdisk": "2000000000"}),
    ("gpu", {"cores": 4, "gpus": 2, "memory": "16GB"},
     {"my.daskworkercores": "4", "my.daskworkermemory": "16000000000", "request_gpus": "2"}),
])
def test_worker_job_descriptions_parse(kind: str, kw: dict, expect: dict[str, str]) -> None:
    text = htcondor_job_script(kind, env_setup=ENV, python="/shared/venv/bin/python", scheduler="tcp://10.0.0.1:8786",
                               **kw)
    sub = _lower(_submit(text))
    for k, v in expect.items():
        assert sub[k] == v, k
    assert sub["requestcpus"] == "MY.DaskWorkerCores"
    assert sub["requestmemory"] == "floor(MY.DaskWorkerMemory / 1048576)"
    assert sub["executable"] == "/bin/sh"
    worker = "dask cuda worker" if kind == "gpu" else "distributed.cli.dask_worker"
    assert f"/shared/venv/bin/python -m {worker} tcp://10.0.0.1:8786" in sub["arguments"]
    assert sub["arguments"].index(ENV[0]) < sub["arguments"].index("/shared/venv/bin/python")
    assert ("request_gpus" in sub) == (kind == "gpu")


def test_batch_submit_descriptions_parse(ttbar_file: Path, qcd_file: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every jobs.sub write_jobs writes (CPU, GPU, transferred taggers, extra directives)
    and the committed example parse, carry the requests asked for, and queue one job per
    line of jobs.txt."""
    art = tmp_path / "pfn"
    art.mkdir()
    fs = {"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)], "more": [str(ttbar_file)]}
    cases = [
        ({"request_cpus": 1, "request_memory": "4GB"}, {"request_cpus": "1", "request_memory": "3815"}),
        ({"request_cpus": 4, "request_memory": "16GB", "request_gpus": 1, "request_disk": "10GB",
          "taggers": [str(art)], "transfer_taggers": True, "extra_directives": {"+SingularityImage": '"/cvmfs/x.sif"'}},
         {"request_cpus": "4", "request_memory": "15259", "request_gpus": "1", "request_disk": str(9537 * 1024),
          "my.singularityimage": '"/cvmfs/x.sif"', "transfer_input_files": f"job_$(job).json, {art.resolve()}"}),
    ]
    for i, (kw, expect) in enumerate(cases):
        paths = write_jobs(fs, tmp_path / f"sub{i}", n_jobs=3, env_setup=ENV, **kw)
        sub = _submit(paths["submit"].read_text())
        got = _lower(sub)
        for k, v in expect.items():
            assert got[k] == v, (i, k)
        assert "request_gpus" in got if kw.get("request_gpus") else "request_gpus" not in got
        assert got["universe"] == "vanilla" and got["executable"] == "run_job.sh" and got["arguments"] == "$(job)"
        assert got["transfer_output_files"] == "out, status" and "transfer_output_remaps" not in got
        assert sub.getQArgs() == "job from jobs.txt"
        monkeypatch.chdir(paths["submit"].parent)  # condor_submit reads jobs.txt from the submit folder
        assert list(sub.itemdata()) == [{"job": "0"}, {"job": "1"}, {"job": "2"}]
        assert sub.expand("transfer_output_files") == "out, status"  # folders every job creates
    example = Path(__file__).resolve().parents[2] / "condor" / "jobs.sub"
    got = _lower(_submit(example.read_text()))
    assert got["executable"] == "run_job.sh" and got["request_memory"].isdigit()


# --------------------------------------------------------------------------- batch jobs
def _all_files(jobs: list[dict]) -> list[tuple[str, str]]:
    return [(ds, f) for job in jobs for ds, e in job.items() for f in e["files"]]


def test_write_jobs_submit_description(four_files: dict[str, list[str]], tmp_path: Path) -> None:
    pfn = tmp_path / "artifacts" / "pfn"  # only its path matters here: nothing is loaded
    pfn.mkdir(parents=True)
    fs_json = tmp_path / "fileset.json"
    fs_json.write_text(json.dumps(four_files))
    paths = write_jobs(fs_json, tmp_path / "sub", files_per_job=3, taggers=[str(pfn)],
                       chunksize=5000, env_setup=ENV, request_memory="2GB", request_gpus=1, request_cpus=2,
                       transfer_taggers=True)
    assert [p.name for p in paths["jobs"]] == ["job_0.json", "job_1.json"]
    assert paths["joblist"].read_text() == "0\n1\n"
    assert sorted(_all_files([json.loads(p.read_text()) for p in paths["jobs"]])) == \
        sorted(_all_files(split_fileset(fs_json, files_per_job=1)))
    sub = paths["submit"].read_text()
    lines = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in sub.splitlines()
                                                   if "=" in ln and not ln.startswith("#"))}
    assert lines["universe"] == "vanilla"
    assert lines["executable"] == "run_job.sh"
    assert lines["arguments"] == "$(job)"
    assert lines["request_cpus"] == "2"
    assert lines["request_memory"] == "1908"  # MiB of 2 GB
    assert int(lines["request_disk"]) > 0
    assert lines["request_gpus"] == "1"
    assert lines["getenv"] == "false"
    assert lines["should_transfer_files"] == "YES"
    assert lines["transfer_input_files"].split(", ") == ["job_$(job).json", str(pfn.resolve())]
    assert lines["transfer_output_files"] == "out, status"
    assert lines["output"] == "logs/job_$(job).out" and lines["log"] == "logs/jobs.log"
    assert sub.rstrip().endswith("queue job from jobs.txt")
    sh = paths["script"].read_text()
    assert sh.startswith("#!/bin/bash")
    assert paths["script"].stat().st_mode & 0o111
    assert sh.index(ENV[0]) < sh.index("hepml-coffea run")
    assert "hepml-coffea run --executor iterative --chunksize 5000 --device auto --backend auto --taggers pfn" in sh
    assert '--fileset "job_${JOB}.json" --out "out/job_${JOB}.coffea"' in sh
    # CPU jobs: no request_gpus; python -m form when python is given
    cpu = write_jobs(fs_json, tmp_path / "cpu", n_jobs=4, python="/shared/venv/bin/python")
    assert "request_gpus" not in cpu["submit"].read_text()
    assert "/shared/venv/bin/python -m hepml_coffea.cli run" in cpu["script"].read_text()
    assert len(cpu["jobs"]) == 4


def test_cli_split_and_cluster_script(ttbar_file: Path, qcd_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from hepml_coffea.cli import main

    fs_json = tmp_path / "fileset.json"
    fs_json.write_text(json.dumps({"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}))
    assert main(["condor", "split", str(fs_json), "--outdir", str(tmp_path / "jobs"), "--n-jobs", "2",
                 "--env-setup", ENV[0], "--request-gpus", "1"]) == 0
    assert (tmp_path / "jobs" / "jobs.sub").is_file() and (tmp_path / "jobs" / "job_1.json").is_file()
    assert "request_gpus            = 1" in (tmp_path / "jobs" / "jobs.sub").read_text()
    capsys.readouterr()
    assert main(["condor", "cluster-script", "--kind", "gpu", "--env-setup", ENV[0]]) == 0
    printed = capsys.readouterr().out
    assert "request_gpus = 1" in printed and "dask cuda worker" in printed


def test_run_job_sh_in_a_scratch_folder(ttbar_file: Path, tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    """Do by hand what HTCondor does with jobs.sub: copy the transfer_input_files into an
    empty folder, run ``run_job.sh <id>`` there, expect ``out/job_<id>.coffea`` and exit status 0."""
    import subprocess
    import sys

    from coffea.util import load

    paths = write_jobs({"ttbar": [str(ttbar_file)]}, tmp_path / "sub", files_per_job=1,
                       taggers=[str(tiny_artifacts["baseline"])], transfer_taggers=True, python=sys.executable,
                       env_setup=["export HEPML_JOB_ENV=ok", 'test "$HEPML_JOB_ENV" = ok'])
    sub = paths["submit"].read_text()
    transfer = next(ln.split("=", 1)[1] for ln in sub.splitlines() if ln.startswith("transfer_input_files"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for item in (s.strip().replace("$(job)", "0") for s in transfer.split(",")):
        src = Path(item) if Path(item).is_absolute() else paths["submit"].parent / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, scratch / src.name)
    shutil.copy(paths["script"], scratch / "run_job.sh")
    proc = subprocess.run(["bash", "run_job.sh", "0"], cwd=scratch, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (scratch / "status" / "job_0.exit").read_text().strip() == "0"
    out = load(scratch / "out" / "job_0.coffea")
    assert out["datasets"]["ttbar"]["cutflow"]["events"] == 300
    assert len(out["run"]["taggers"]) == 1
    assert Path(out["run"]["taggers"][0]["path"]).parent == scratch.resolve()  # the transferred copy was used
