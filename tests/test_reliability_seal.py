"""Issue 23, item 6: re-sealing an artifact is atomic. A process killed at any step of
:func:`hepml_coffea.artifacts._seal` leaves the old or the new artifact complete, and the
next start puts things right (old one moved back, leftovers removed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hepml_coffea.artifacts import load_artifact, shipped_taggers

#: run in a subprocess: re-seal ARTIFACT with a new metrics.json, dying (os._exit) at POINT
_CRASH = textwrap.dedent('''
    import os, shutil, sys
    from pathlib import Path
    from hepml_coffea.artifacts import update_artifact

    out, point = Path(sys.argv[1]).resolve(), sys.argv[2]
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def replace(src, dst):
        if point == "before_new_in" and Path(dst).resolve() == out:
            os._exit(9)
        real_replace(src, dst)
        if point == "after_new_in" and Path(dst).resolve() == out:
            os._exit(9)

    def rmtree(path, *args, **kwargs):
        if point == "deleting_old" and Path(path).name.startswith(f".{out.name}.old-"):
            os._exit(9)
        return real_rmtree(path, *args, **kwargs)

    os.replace, shutil.rmtree = replace, rmtree
    update_artifact(out, files={"metrics.json": b'{"auc": 0.5}'})
    os._exit(0)
''')


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    out = tmp_path / "baseline"
    shutil.copytree(shipped_taggers()["baseline"], out)
    return out


@pytest.mark.parametrize(("point", "survivor"), [("before_new_in", "old"), ("after_new_in", "new"),
                                                 ("deleting_old", "new"), ("none", "new")])
def test_killed_reseal_leaves_old_or_new_artifact(artifact: Path, point: str, survivor: str) -> None:
    old = load_artifact(artifact)
    rc = subprocess.run([sys.executable, "-c", _CRASH, str(artifact), point], timeout=120, check=False).returncode
    assert rc == (0 if point == "none" else 9)
    got = load_artifact(artifact)  # recovers first
    if survivor == "old":
        assert got.hash == old.hash and got.metrics == old.metrics
    else:
        assert got.hash != old.hash and got.metrics == {"auc": 0.5}
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["baseline"]  # nothing left aside


def test_building_folders_are_hidden_from_shipped_taggers(tmp_path: Path) -> None:
    from hepml_coffea.artifacts.sealing import _tmp_dir

    tmp = _tmp_dir(tmp_path / "pfn")
    assert tmp.parent == tmp_path and tmp.name.startswith(".pfn.tmp-")
