"""Issue 23, item 8: ``dask-cuda`` asked for where it cannot run is an error by default;
``allow_cpu_fallback`` makes it a logged notice and a CPU cluster."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from hepml_coffea.batch.clusters import make_cluster
from hepml_coffea.config import ConfigurationError, RunConfig
from hepml_coffea.batch.run import run_fileset

pytestmark = pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None,
                                reason="dask-cuda is installed here: the fall-back path is not reachable")


def test_dask_cuda_unavailable_is_an_error_by_default():
    with pytest.raises(ConfigurationError, match=r"executor 'dask-cuda' asked for but GPU workers cannot start "
                                                 r"\(ModuleNotFoundError: No module named 'dask_cuda'\).*"
                                                 r"--allow-cpu-fallback"):
        make_cluster("dask-cuda", workers=1, dashboard_address="127.0.0.1:0")


def test_dask_cuda_unavailable_run_fails_before_any_output(ttbar_file, tmp_path):
    with pytest.raises(ConfigurationError, match="dask-cuda"):
        run_fileset({"ttbar": [str(ttbar_file)]}, config=RunConfig(executor="dask-cuda", workers=1, status=False),
                    out=tmp_path / "o.coffea")
    assert not (tmp_path / "o.coffea").exists()


def test_allow_cpu_fallback_logs_a_notice_and_starts_cpu_workers(caplog):
    with caplog.at_level(logging.WARNING, logger="hepml_coffea.batch.clusters"):
        cluster, client = make_cluster("dask-cuda", workers=1, dashboard_address="127.0.0.1:0",
                                       allow_cpu_fallback=True)
    try:
        assert type(cluster).__name__ == "LocalCluster"
        assert len(client.scheduler_info()["workers"]) == 1
    finally:
        client.close()
        cluster.close()
    notes = [r for r in caplog.records if r.name == "hepml_coffea.batch.clusters"]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    assert notes[0].getMessage().startswith("dask-cuda unavailable (ModuleNotFoundError: No module named 'dask_cuda'); "
                                            "allow_cpu_fallback: running on a CPU LocalCluster of 1 worker(s)")
