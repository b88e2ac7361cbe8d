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

