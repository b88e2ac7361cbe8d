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


#: branches every file must have (the fat jets every tagger scores)
REQUIRED_BRANCHES: tuple[str, ...] = ("FatJet_pt", "FatJet_eta", "FatJet_phi")


def _header_problem(path: Path) -> str | None:
    """An empty, non-ROOT or truncated local file, told from its first bytes and size
    (before uproot, whose error for all three is ``expected Chunk of length ...``)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes), not a ROOT file: an interrupted copy or transfer?"
    with open(path, "rb") as fh:
        head = fh.read(20)
    if head[:4] != b"root":
        return (f"is not a ROOT file (it starts with {head[:12]!r}; a ROOT file starts with b'root'): "
                "check what was copied under this name")
    if len(head) < 20:
        return f"truncated ({size} bytes: not even a complete ROOT header; an interrupted copy or write?)"
    version = int.from_bytes(head[4:8], "big")
    end = int.from_bytes(head[12:20] if version >= 1_000_000 else head[12:16], "big")
    if size < end:
        return f"truncated ({size} bytes, its header says {end}; an interrupted copy or write?)"
    return None


def _file_problem(f: str, tree: str) -> tuple[str | None, int | None]:
    """What is wrong with one file (``None`` if usable) and its event count if readable.

    One distinct reason each: a directory, a missing file, an empty (0-byte) file, a file
    that is not ROOT, a truncated file (with its event count when the tree header is still
    readable), no such tree, a tree without the fat-jet branches, any other read error."""
    header = None
    if "://" not in f:
        p = Path(f)
        if p.is_dir():
            return "is a directory, not a ROOT file", None
        if not p.exists():
            return "file does not exist", None
        if not p.is_file():
            return "is not a regular file", None
        header = _header_problem(p)
        if header is not None and not header.startswith("truncated"):
            return header, None
    try:
        with uproot.open(f) as fh:
            if tree not in fh:
                trees = [k.split(";")[0] for k, c in fh.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
                return header or f"no tree {tree!r} in the file (trees: {trees})", None
            obj = fh[tree]
            n = int(obj.num_entries)
            if header is not None:
                return header, n
            keys = set(obj.keys())
            missing = [b for b in REQUIRED_BRANCHES if b not in keys]
            if missing and "FatJet" not in keys:  # (an RNTuple may hold FatJet as one collection field)
                return f"tree {tree!r} has no fat-jet branches {missing} ({n} events): not a NanoAOD file?", n
            return None, n
    except Exception as err:  # noqa: BLE001 - any read failure names the file
        if header is not None:
            return header, None
        first = " ".join(str(err).split())[:200]
        return f"cannot be read ({type(err).__name__}: {first})", None


def check_fileset(fileset: Mapping[str, Any], skip_bad_files: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open every file before the run.

    Returns
    -------
    (usable fileset, skipped records)
        Each skipped record names ``dataset``, ``file``, ``reason``, ``events`` (the
        file's event count where its header could still be read, else ``None``) and the
        entry range ``entrystart``, ``entrystop`` (``0``, ``events`` when known, else ``None``). A dataset
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
            known = n_events is not None
            skipped.append({"dataset": ds, "file": f, "entrystart": 0 if known else None,
                            "entrystop": n_events if known else None, "events": n_events, "reason": problem})
        good[ds] = {**entry, "files": files}
    return good, skipped
