"""Slurm: worker job scripts, job-array scripts, and live runs on a real Slurm.

The live tests (marker ``batch``) submit to the Slurm that ``sinfo`` reaches: in CI the
one-node cluster of ``.ci/slurm-up.sh``. Without Slurm they are skipped with the
reason -- except under ``CI=true``, where a missing Slurm fails them.
Bounded: 2 single-core worker jobs, a few thousand generated events.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepml_coffea.batch.core import IncompleteJobsError, job_status, merge_job_dir
from hepml_coffea.analysis.histograms import datasets_of
from hepml_coffea.batch.slurm import slurm_available, slurm_job_script, write_array_jobs

pytest.importorskip("dask_jobqueue")

ENV = [". /shared/venv/bin/activate", "export HEPML_TEST=1"]


def _config(executor: str, chunksize: int) -> Any:
    from hepml_coffea.config import RunConfig

    return RunConfig(executor=executor, chunksize=chunksize, status=False)


def assert_same_histograms(a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    da, db = datasets_of(a), datasets_of(b)
    assert set(da) == set(db) and da
    for ds in da:
        assert da[ds]["scores"].values().sum() > 0, ds
        np.testing.assert_array_equal(da[ds]["scores"].values(), db[ds]["scores"].values())
        np.testing.assert_array_equal(da[ds]["working_points"].values(), db[ds]["working_points"].values())
        assert da[ds]["cutflow"] == db[ds]["cutflow"], ds


# --------------------------------------------------------------------------- scripts (no Slurm needed)
def test_cpu_worker_job_script() -> None:
    script = slurm_job_script("cpu", cores=2, memory="8GB", walltime="02:00:00", partition="short",
                              account="cms", env_setup=ENV, python="/shared/venv/bin/python",
                              scheduler="tcp://10.0.0.1:8786")
    lines = script.splitlines()
    assert "#SBATCH -p short" in lines and "#SBATCH -A cms" in lines
    assert "#SBATCH --cpus-per-task=2" in lines
    assert "#SBATCH --mem=8G" in lines
    assert "#SBATCH -t 02:00:00" in lines
    assert not any("gres" in ln for ln in lines)
    cmd = next(ln for ln in lines if "-m distributed.cli.dask_worker" in ln)
    assert cmd.startswith("/shared/venv/bin/python -m distributed.cli.dask_worker tcp://10.0.0.1:8786")
    assert "--nthreads 1 " in cmd and "--nworkers 2" in cmd
    assert lines.index(ENV[0]) < lines.index(ENV[1]) < lines.index(cmd)  # environment first


def test_gpu_worker_job_script() -> None:
    script = slurm_job_script("gpu", cores=4, gpus=2, memory="16GB", python="python3", scheduler="tcp://h:1")
    assert "#SBATCH --gres=gpu:2" in script.splitlines()
    assert "#SBATCH --cpus-per-task=4" in script
    cmd = next(ln for ln in script.splitlines() if "cuda worker" in ln)
    assert cmd.startswith("python3 -m dask cuda worker tcp://h:1")
    assert "--nthreads 2 " in cmd and "--nworkers" not in cmd
    with pytest.raises(ValueError, match="kind"):
        slurm_job_script("tpu")
    with pytest.raises(ValueError, match="gpus >= 1"):
        slurm_job_script("gpu", gpus=0)


def test_array_script(ttbar_file: Path, qcd_file: Path, tmp_path: Path) -> None:
    art = tmp_path / "pfn"
    art.mkdir()
    fs = {"ttbar": [str(ttbar_file)], "extra": [str(ttbar_file)], "qcd": [str(qcd_file)]}
    paths = write_array_jobs(fs, tmp_path / "jobs", files_per_job=1, taggers=[str(art), "particlenet-lite"],
                             chunksize=500, env_setup=ENV, cpus_per_task=2, memory="3GB", walltime="00:30:00",
                             partition="gpu", account="cms", gpus=1, max_parallel=2,
                             extra_directives=["--constraint=a100"])
    script = paths["script"].read_text()
    head = [ln for ln in script.splitlines() if ln.startswith("#SBATCH")]
    jobdir = (tmp_path / "jobs").resolve()
    assert head == ["#SBATCH --job-name=hepml-coffea", "#SBATCH --array=0-2%2", "#SBATCH --ntasks=1",
                    "#SBATCH --cpus-per-task=2", "#SBATCH --mem=2862M", "#SBATCH --time=00:30:00",
                    f"#SBATCH --chdir={jobdir}", f"#SBATCH --output={jobdir}/logs/job_%a.out",
                    f"#SBATCH --error={jobdir}/logs/job_%a.err", "#SBATCH --partition=gpu",
                    "#SBATCH --account=cms", "#SBATCH --gres=gpu:1", "#SBATCH --constraint=a100"]
    assert "export OMP_NUM_THREADS=2" in script
    assert script.index(ENV[0]) < script.index("hepml-coffea run --executor iterative --chunksize 500")
    assert f"--taggers {art.resolve()} particlenet-lite" in script
    assert '--fileset "job_${JOB}.json" --out "out/job_${JOB}.coffea"' in script
    assert paths["script"].stat().st_mode & 0o111
    assert [json.loads(p.read_text()) for p in paths["jobs"]][2] == \
        {"qcd": {"files": {str(qcd_file.resolve()): "Events"}, "metadata": {}}}
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["scheduler"] == "slurm" and [j["id"] for j in manifest["jobs"]] == [0, 1, 2]
    assert [r["state"] for r in job_status(tmp_path / "jobs")] == ["missing"] * 3
    # bash parses it
    assert subprocess.run(["bash", "-n", str(paths["script"])], check=False).returncode == 0
    with pytest.raises(ValueError, match="walltime"):
        write_array_jobs(fs, tmp_path / "bad", walltime="1h")
    with pytest.raises(ValueError, match="max_parallel"):
        write_array_jobs(fs, tmp_path / "bad", max_parallel=0)


def test_cli_split_and_cluster_script(ttbar_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hepml_coffea.cli import main

    fs_json = tmp_path / "fileset.json"
    fs_json.write_text(json.dumps({"a": [str(ttbar_file)], "b": [str(ttbar_file)], "c": [str(ttbar_file)]}))
    assert main(["slurm", "split", str(fs_json), "--outdir", str(tmp_path / "jobs"), "--n-jobs", "2",
                 "--env-setup", ENV[0], "--gpus", "1", "--partition", "gpu", "--memory", "2GB"]) == 0
    script = (tmp_path / "jobs" / "jobs.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH --partition=gpu" in script
    assert "sbatch" in capsys.readouterr().out
    assert main(["slurm", "cluster-script", "--kind", "gpu", "--env-setup", ENV[0]]) == 0
    printed = capsys.readouterr().out
    assert "#SBATCH --gres=gpu:1" in printed and "dask cuda worker" in printed
    assert main(["slurm", "merge", str(tmp_path / "jobs"), "--out", str(tmp_path / "m.coffea")]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 job(s)" in err and "--allow-incomplete" in err
    assert not (tmp_path / "m.coffea").exists()
    with pytest.raises(IncompleteJobsError, match="job 1: no output and no exit status"):
        merge_job_dir(tmp_path / "jobs")


# --------------------------------------------------------------------------- live Slurm
@pytest.fixture(scope="module")
def slurm() -> None:
    reason = slurm_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no usable Slurm: {reason} (.ci/run starts one with .ci/slurm-up.sh)")
    pytest.skip(f"no Slurm here: {reason} (start a one-node cluster as root with .ci/slurm-up.sh)")


@pytest.fixture(scope="module")
def live(ttbar_file: Path, qcd_file: Path, tiny_artifacts: dict[str, Path],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """1200 events (copies of the generated files), two taggers, and the
    iterative run over them that every live run is compared with."""
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    tmp = tmp_path_factory.mktemp("slurm_live")
    files: dict[str, list[str]] = {}
    for name, src in (("ttbar", ttbar_file), ("qcd", qcd_file)):
        files[name] = []
        for k in range(2):
            dst = tmp / f"{name}_{k}.root"
            shutil.copy(src, dst)
            files[name].append(str(dst))
    taggers = [str(tiny_artifacts["baseline"]), str(tiny_artifacts["pfn"])]
    proc = TaggerProcessor(taggers=taggers)
    chunksize = 100
    local = run_fileset(files, proc, config=_config("iterative", chunksize))
    return {"tmp": tmp, "files": files, "proc": proc, "chunksize": chunksize, "local": local, "taggers": taggers,
            "proc_baseline": TaggerProcessor(taggers=taggers[:1])}


@pytest.fixture(scope="module")
def slurm_client(slurm: None, live: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Two single-core Dask workers, each a Slurm job, through make_cluster('slurm')."""
    from hepml_coffea.batch.clusters import make_cluster, wait_for_workers

    cluster, client = make_cluster("slurm", workers=2, dashboard_address="127.0.0.1:0", memory="2GB",
                                   walltime="00:15:00", log_directory=live["tmp"] / "worker-logs",
                                   scheduler_options={"host": "127.0.0.1"})
    try:
        wait_for_workers(client, 2, timeout=180, cluster=cluster)
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def _job_ids(client: Any) -> dict[str, str]:
    return client.run(lambda: os.environ.get("SLURM_JOB_ID", ""))


@pytest.mark.batch
def test_slurm_cluster_equals_iterative(slurm_client: tuple[Any, Any], live: dict[str, Any]) -> None:
    from hepml_coffea.batch.run import run_fileset

    cluster, client = slurm_client
    jobs = _job_ids(client)
    assert len(jobs) == 2 and all(jobs.values()), jobs  # the workers really are Slurm jobs
    assert set(jobs.values()) == {str(j.job_id) for j in cluster.workers.values()}
    env = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(env.values()) == {"1"}  # worker_env() reached the batch workers
    out = run_fileset(live["files"], live["proc"], config=_config("dask", live["chunksize"]), client=client)
    assert_same_histograms(out, live["local"])
    assert sum(d["cutflow"]["events"] for d in datasets_of(out).values()) == 1200


def _busy_worker(dask_scheduler: Any) -> dict[str, Any]:
    done = sum(1 for ts in dask_scheduler.tasks.values() if ts.state == "memory")
    return {"done": done, "processing": {a: len(ws.processing) for a, ws in dask_scheduler.workers.items()}}


@pytest.mark.batch
def test_scancel_a_worker_mid_run(slurm_client: tuple[Any, Any], live: dict[str, Any]) -> None:
    """One worker's Slurm job is cancelled while it processes chunks: Dask reschedules
    its tasks on the other worker and the histograms come out identical."""
    from hepml_coffea.batch.clusters import wait_for_workers
    from hepml_coffea.batch.run import run_fileset

    cluster, client = slurm_client
    wait_for_workers(client, 2, timeout=120, cluster=cluster)
    jobs = _job_ids(client)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = run_fileset(live["files"], live["proc"], config=_config("dask", live["chunksize"]),
                                        client=client)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        state = client.run_on_scheduler(_busy_worker)
        busy = [a for a, n in state["processing"].items() if n > 0]
        if state["done"] >= 2 and busy:
            victim = busy[0]
            subprocess.run(["scancel", jobs[victim]], check=True)
            break
        time.sleep(0.05)
    assert victim is not None, "the run finished before a worker could be cancelled mid-run"
    thread.join(timeout=300)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    deadline = time.monotonic() + 60  # the cancelled worker leaves the scheduler
    while victim in client.scheduler_info()["workers"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert victim not in client.scheduler_info()["workers"]
    assert_same_histograms(result["out"], live["local"])


@pytest.mark.batch
def test_job_array_fail_refuse_rerun_merge(slurm: None, live: dict[str, Any], merge_refused) -> None:
    """A two-task array whose task 1 reads a truncated file: the failure is reported with
    its exit status and log, merge refuses (and merges task 0 alone only when told to);
    after the file is fixed and task 1 resubmitted alone (``sbatch --array=1``), the
    merged array equals one local run over the whole fileset."""
    from hepml_coffea.batch.run import run_fileset
    from hepml_coffea.batch.slurm import submit_array, wait_for_array

    good = live["files"]["ttbar"][0]
    qcd = live["tmp"] / "qcd_for_array.root"
    qcd.write_bytes(Path(live["files"]["qcd"][0]).read_bytes()[:5000])  # truncated
    fileset = {"ttbar": [good], "qcd": [str(qcd)]}
    jobdir = live["tmp"] / "array"
    paths = write_array_jobs(fileset, jobdir, n_jobs=2, taggers=live["taggers"][:1], chunksize=live["chunksize"],
                             python=sys.executable, memory="2GB", walltime="00:10:00")
    wait_for_array(submit_array(paths["script"]), timeout=300)

    rows = {r["id"]: r for r in job_status(jobdir)}
    assert rows[0]["state"] == "done", rows[0]
    assert rows[1]["state"] == "failed" and rows[1]["exit_status"] == 1, rows[1]
    assert rows[1]["stderr"] == jobdir.resolve() / "logs" / "job_1.err"
    assert "FilesetError" in rows[1]["last_error"] and str(qcd) in rows[1]["last_error"]
    merge_refused(jobdir, jobdir / "merged.coffea", "1 of 2 job(s)", "job 1: failed (exit status 1)",
                  "--allow-incomplete")

    config = _config("iterative", live["chunksize"])
    partial = merge_job_dir(jobdir, allow_incomplete=True)
    assert [(m["id"], m["state"]) for m in partial["run"]["missing_jobs"]] == [(1, "failed")]
    assert_same_histograms(partial, run_fileset({"ttbar": [good]}, live["proc_baseline"], config=config))

    shutil.copy(live["files"]["qcd"][0], qcd)  # fix the input, rerun the failed task only
    wait_for_array(submit_array(paths["script"], array="1"), timeout=300)
    assert [r["state"] for r in job_status(jobdir)] == ["done", "done"]
    merged = merge_job_dir(jobdir, out=jobdir / "merged.coffea")
    assert merged["run"]["missing_jobs"] == [] and (jobdir / "merged.coffea").is_file()
    assert_same_histograms(merged, run_fileset(fileset, live["proc_baseline"], config=config))


@pytest.mark.batch
def test_scancel_an_array_task_then_resubmit(slurm: None, live: dict[str, Any]) -> None:
    """``scancel`` one task of a job array (task 1, held behind task 0 by ``%1``): it has no
    output and no exit status, merge refuses and names it; resubmitted alone
    (``sbatch --array=1``) the merged array equals one local run over the whole fileset."""
    from hepml_coffea.batch.run import run_fileset
    from hepml_coffea.batch.slurm import submit_array, wait_for_array

    fileset = {"ttbar": [live["files"]["ttbar"][0]], "qcd": [live["files"]["qcd"][0]]}
    jobdir = live["tmp"] / "array_scancel"
    paths = write_array_jobs(fileset, jobdir, n_jobs=2, taggers=live["taggers"][:1], chunksize=live["chunksize"],
                             python=sys.executable, memory="2GB", walltime="00:10:00", max_parallel=1)
    job = submit_array(paths["script"])
    subprocess.run(["scancel", f"{job}_1"], check=True)
    wait_for_array(job, timeout=300)
    rows = {r["id"]: r for r in job_status(jobdir)}
    assert rows[0]["state"] == "done", rows[0]
    assert rows[1]["state"] != "done", rows[1]
    with pytest.raises(IncompleteJobsError, match="1 of 2 job"):
        merge_job_dir(jobdir, out=jobdir / "merged.coffea")
    assert not (jobdir / "merged.coffea").exists()

    wait_for_array(submit_array(paths["script"], array="1"), timeout=300)
    assert [r["state"] for r in job_status(jobdir)] == ["done", "done"]
    merged = merge_job_dir(jobdir, out=jobdir / "merged.coffea")
    assert merged["run"]["missing_jobs"] == []
    config = _config("iterative", live["chunksize"])
    assert_same_histograms(merged, run_fileset(fileset, live["proc_baseline"], config=config))
