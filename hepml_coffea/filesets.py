"""Filesets: reading them and checking every file before a run.

* :func:`load_fileset` reads ``{dataset: [files]}`` or coffea's
  ``{dataset: {"files": {path: treename}, "metadata": {...}}}`` (dict or JSON path).
* :func:`check_fileset` opens every file and names what is wrong (missing file, a
  directory, unreadable or truncated file, missing tree); with ``skip_bad_files`` the file
  is left out and recorded with its event count where that can still be read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uproot

__all__ = ["FilesetError", "load_fileset", "check_fileset"]


class FilesetError(ValueError):
    """A fileset entry is wrong: missing file, bad tree name, unreadable file."""


def load_fileset(fileset: str | os.PathLike[str] | Mapping[str, Any], treename: str = "Events") -> dict[str, dict[str, Any]]:
    """Normalise a fileset to ``{dataset: {"files": {path: treename}, "metadata": {...}}}``."""
    if not isinstance(fileset, Mapping):
        path = Path(fileset)
        if not path.is_file():
            msg = f"fileset JSON {path} does not exist"
            raise FilesetError(msg)
        try:
            fileset = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            msg = f"fileset JSON {path} is not valid JSON: {err}"
            raise FilesetError(msg) from err
        base = path.parent
    else:
        base = Path.cwd()
    if not isinstance(fileset, Mapping) or not fileset:
        msg = "a fileset must be a non-empty mapping {dataset: files}"
        raise FilesetError(msg)
    out: dict[str, dict[str, Any]] = {}
    for ds, entry in fileset.items():
        meta: dict[str, Any] = {}
        if isinstance(entry, Mapping) and "files" in entry:
            files = entry["files"]
            meta = dict(entry.get("metadata", {}) or {})
        else:
            files = entry
        if isinstance(files, str):
            files = [files]
        if isinstance(files, Mapping):
            fmap = {str(k): (v or treename) for k, v in files.items()}
        else:
            fmap = {str(f): treename for f in files}
        resolved = {}
        for f, tree in fmap.items():
            p = Path(f)
            if not p.is_absolute() and "://" not in f:
                p = base / p
            resolved[str(p) if "://" not in f else f] = tree
        out[str(ds)] = {"files": resolved, "metadata": meta}
    return out


def _file_problem(f: str, tree: str) -> tuple[str | None, int | None]:
    """What is wrong with one file (``None`` if usable) and its event count if readable."""
    if "://" not in f:
        p = Path(f)
        if p.is_dir():
            return "is a directory, not a ROOT file", None
        if not p.exists():
            return "file does not exist", None
        if not p.is_file():
            return "is not a regular file", None
    try:
        with uproot.open(f) as fh:
            if tree not in fh:
                trees = [k.split(";")[0] for k, c in fh.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
                return f"no tree {tree!r} in the file (trees: {trees})", None
            n = int(fh[tree].num_entries)
            size = os.path.getsize(f) if "://" not in f else None
            if size is not None and size < fh.file.fEND:
                return f"truncated ({size} bytes, its header says {fh.file.fEND})", n
            return None, n
    except Exception as err:  # noqa: BLE001 - any read failure names the file
        first = str(err).splitlines()[0][:200] if str(err) else ""
        return f"cannot be read ({type(err).__name__}: {first})", None


def check_fileset(fileset: Mapping[str, Any], skip_bad_files: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open every file before the run.

    Returns
    -------
    (usable fileset, skipped records)
        Each skipped record names ``dataset``, ``file``, ``reason`` and ``events`` (the
        file's event count where its header could still be read, else ``None``). A dataset
        whose every file is bad stays in the usable fileset with no files, so it still
        appears (empty) in the output.

    Raises
    ------
    FilesetError : on the first bad file unless ``skip_bad_files``.
    """
    good: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    for ds, entry in fileset.items():
        files = {}
        for f, tree in entry["files"].items():
            problem, n_events = _file_problem(f, tree)
            if problem is None:
                files[f] = tree
                continue
            if not skip_bad_files:
                msg = f"dataset {ds!r}: {f}: {problem}"
                raise FilesetError(msg)
            skipped.append({"dataset": ds, "file": f, "entrystart": None, "entrystop": None,
                            "events": n_events, "reason": problem})
        good[ds] = {**entry, "files": files}
    return good, skipped
