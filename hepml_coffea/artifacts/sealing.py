"""Hashing and sealing: manifest.json (sha256 of every file, the artifact hash), the one
atomic writer of artifacts (:func:`seal_artifact`), recovery of an interrupted re-seal and
verification of a sealed artifact."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .format import HASHED, ArtifactError, ArtifactIntegrityError

__all__ = ["file_sha256", "seal_artifact", "write_description"]

log = logging.getLogger("hepml_coffea.artifacts")

def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_sha256 = file_sha256


def _combined(files: dict[str, str]) -> str:
    text = "".join(f"{k}:{v}\n" for k, v in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def write_description(folder: Path, doc: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Write ``model.yaml`` (``doc``) and ``metrics.json`` into an artifact being built."""
    (folder / "model.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, sort_keys=True))


def seal_artifact(
    out: str | os.PathLike[str],
    fill: Callable[[Path], Any],
    *,
    keep_from: Path | None = None,
    remove: tuple[str, ...] = (),
) -> str:
    """The one way an artifact is written: build it in a hidden sibling folder, seal it
    (manifest.json: sha256 of every file and the artifact hash) and move it to ``out``
    atomically (:func:`_seal`); on any error the half-built folder is removed and ``out``
    is left as it was.

    Parameters
    ----------
    out : the artifact directory (replaced if it exists)
    fill : writes the artifact's files into the folder it is given
    keep_from : an artifact whose files (but manifest.json and ``remove``) are copied in
        first, permissions included (re-sealing an artifact)

    Returns
    -------
    str
        the artifact hash.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_dir(out)
    try:
        if keep_from is not None:
            tmp.chmod(keep_from.stat().st_mode & 0o777)
            for f in keep_from.iterdir():
                if f.is_file() and f.name != "manifest.json" and f.name not in remove:
                    shutil.copy2(f, tmp / f.name)
        fill(tmp)
        return _seal(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _tmp_dir(out: Path) -> Path:
    """A new hidden sibling folder of ``out`` to build an artifact in (``.<name>.tmp-*``: never
    listed as a tagger, removed by :func:`_recover` once its writer is gone)."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def _recover(out: Path) -> None:
    """Finish or undo a :func:`_seal` that was interrupted (crash, kill) in this folder.

    ``.<name>.old-<pid>-*`` is the previous artifact moved aside: if ``out`` is missing (the
    writer died between moving the old one aside and moving the new one in) it is moved
    back, else it is deleted. ``.<name>.tmp-<pid>-*`` folders of writers that are gone are
    deleted. Folders of a writer that is still running (same host), this process included,
    are left alone.
    """
    parent = out.parent
    if not parent.is_dir():
        return
    for kind in ("old", "tmp"):
        for left in sorted(parent.glob(f".{out.name}.{kind}-*")):
            try:
                pid = int(left.name.split(f".{kind}-", 1)[1].split("-", 1)[0])
            except ValueError:
                continue
            if pid == os.getpid() or _pid_alive(pid):
                continue
            if kind == "old" and not out.exists():
                os.replace(left, out)
                log.warning("artifact %s: an interrupted re-seal left it aside as %s; restored", out, left.name)
            else:
                shutil.rmtree(left, ignore_errors=True)


def _seal(tmp: Path, out: Path) -> str:
    """Write manifest.json (sha256 of every file) in ``tmp`` and move it to ``out`` atomically.

    Steps: manifest written in ``tmp`` (a sibling of ``out``); the old ``out`` renamed aside
    (``.<name>.old-<pid>-*``); ``tmp`` renamed to ``out``; the old one deleted. A process
    killed at any point leaves either the old or the new artifact complete: the next
    :func:`resolve_artifact` / :func:`load_artifact` / re-seal of ``out`` runs
    :func:`_recover` (moves the old one back if the new one never arrived, removes leftovers).
    """
    files = {f: _sha256(tmp / f) for f in HASHED if (tmp / f).exists()}
    digest = _combined(files)
    (tmp / "manifest.json").write_text(json.dumps({"files": files, "hash": digest}, indent=2))
    _recover(out)
    aside = None
    if out.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.replace(out, aside)  # an empty folder is replaced by the old artifact
    try:
        os.replace(tmp, out)
    except BaseException:
        if aside is not None and not out.exists():
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return digest


def _verify(path: Path) -> tuple[str, dict[str, str]]:
    manifest = path / "manifest.json"
    if not manifest.is_file():
        msg = f"artifact {path} has no manifest.json (not a hepml-coffea artifact, or incomplete)"
        raise ArtifactError(msg)
    man = json.loads(manifest.read_text())
    files: dict[str, str] = man.get("files", {})
    for fname, digest in files.items():
        p = path / fname
        if not p.is_file():
            msg = f"artifact {path}: file {fname} listed in manifest.json is missing"
            raise ArtifactIntegrityError(msg)
        actual = _sha256(p)
        if actual != digest:
            msg = f"artifact {path}: {fname} has sha256 {actual[:12]}..., manifest says {digest[:12]}...; refusing to load"
            raise ArtifactIntegrityError(msg)
    for fname in HASHED:
        if (path / fname).exists() and fname not in files:
            msg = f"artifact {path}: {fname} is not covered by manifest.json; refusing to load"
            raise ArtifactIntegrityError(msg)
    if _combined(files) != man.get("hash"):
        msg = f"artifact {path}: manifest hash does not match its file list; refusing to load"
        raise ArtifactIntegrityError(msg)
    return str(man["hash"]), files
