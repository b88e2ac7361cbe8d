"""Fixtures of the batch tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def four_files(ttbar_file: Path, qcd_file: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Four files (two copies of each sample) in two datasets."""
    files: dict[str, list[str]] = {}
    for name, src in (("ttbar", ttbar_file), ("qcd", qcd_file)):
        files[name] = []
        for k in (1, 2):
            dst = tmp_path / f"{name}_{k}.root"
            shutil.copy(src, dst)
            files[name].append(str(dst))
    return files



@pytest.fixture
def merge_refused():
    """``merge_refused(job_dir, out, *needles)``: merging the job folder into ``out`` raises
    IncompleteJobsError whose message names every needle and the log of the failed job, and
    writes nothing; returns the message."""
    from hepml_coffea.batch.core import IncompleteJobsError, merge_job_dir

    def check(job_dir: Path, out: Path, *needles: str) -> str:
        with pytest.raises(IncompleteJobsError) as err:
            merge_job_dir(job_dir, out=out)
        msg = str(err.value)
        for needle in (*needles, str(Path(job_dir).resolve() / "logs" / "job_1.err")):
            assert needle in msg, (needle, msg)
        assert not Path(out).exists()
        return msg

    return check
