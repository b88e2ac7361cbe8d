"""Grow a training set toward a number of in-window jets per class, resumably.

One file per (process, seed): ``{out}/ttbar_{seed}.root`` (seeds ``10001, 10002, ...``, at most
10999) and ``{out}/qcd_{seed}.root`` (``20001, ...``, at most 20999), each of ``events_per_file`` events with the
generation settings of the standard evaluation set (the same distribution of jets).
The next file is always for the class furthest from its target (as a fraction), so a
partial set has both classes; generation stops once both targets are reached.

Resumable: :func:`~hepml_coffea.samples.generate` writes ``name.root.tmp`` and renames it
when complete, so only finished files carry the ``.root`` name; a leftover ``.tmp`` of an
interrupted run is never counted and is overwritten when that seed is generated again.
Finished files are skipped; every finished file is counted (training jets:
:func:`~hepml_coffea.samples.count.count_window_jets`) and recorded in
``{out}/manifest.json`` (file, process, seed, events, window jets, bytes, sha256 of the file,
sha256 of the event content, generator versions, seconds, events/s, command), written
atomically after every file, and copied to ``manifest_copy`` (for git). A lock file keeps
two runs from writing the same folder.

The sha256 of a ROOT file changes with its write time; ``content_sha256`` (the ``Events``
branches' buffers) does not: a rebuild with the same generator versions reproduces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["FIRST_SEEDS", "RESERVED_SEEDS", "SEED_SPAN", "content_sha256", "grow_training_set"]

logger = logging.getLogger(__name__)

#: first seed per process of the large training set; each process owns SEED_SPAN seeds
FIRST_SEEDS = {"ttbar": 10001, "qcd": 20001}
SEED_SPAN = 999
#: seeds used by other samples (inclusive ranges): the standard evaluation set (3001-3009 ttbar,
#: 4001-4021 qcd, room to grow to 3999 / 4999), the fine-tune set (5001+ / 6001+), the shipped
#: taggers' training set (101-222), the old held-out file (301/401), the demo (9001/9002), the
#: benchmark inputs (9101/9201), the GPU campaign's training and evaluation parts
#: (11001+ / 12001+ / 13001+ / 14001+, workflows/gpu_campaign.py)
RESERVED_SEEDS = ((101, 222), (301, 301), (401, 401), (3001, 4999), (5001, 6999), (9001, 9002), (9101, 9101),
                  (9201, 9201), (11001, 14999))
#: default yield per event (training jets), used to plan before the first file is counted
_YIELD_GUESS = {"ttbar": 0.35, "qcd": 0.5}
MANIFEST = "manifest.json"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of the ``Events`` tree's content (every branch's awkward form and buffers,
    branches in name order): equal for bit-identical events, whatever the write time."""
    import awkward as ak
    import numpy as np
    import uproot

    h = hashlib.sha256()
    with uproot.open(path) as f:
        tree = f["Events"]
        for name in sorted(tree.keys()):  # noqa: SIM118
            form, length, buffers = ak.to_buffers(ak.to_packed(tree[name].array()))
            h.update(name.encode())
            h.update(form.to_json().encode())
            h.update(str(length).encode())
            for key in sorted(buffers):
                h.update(key.encode())
                h.update(np.ascontiguousarray(buffers[key]).tobytes())
    return h.hexdigest()


def _file_entry(path: Path, process: str, seed: int, seconds: float | None, command: str | None) -> dict[str, Any]:
    """The manifest row of one finished file (reads it: counts, hashes, metadata)."""
    import uproot

    from hepml_coffea.samples.count import count_window_jets
    from hepml_coffea.samples.write import read_metadata

    meta = read_metadata(path)
    with uproot.open(path) as f:
        events = int(f["Events"].num_entries)
    jets = count_window_jets(path, process)
    return {
        "file": path.name, "process": process, "seed": seed, "events": events, "window_jets": jets,
        "bytes": path.stat().st_size, "sha256": _sha256(path), "content_sha256": content_sha256(path),
        "generator": meta.get("generator"), "pythia_seeds": meta.get("pythia_seeds"),
        "seconds": None if seconds is None else round(seconds, 1),
        "events_per_s": None if not seconds else round(events / seconds, 1),
        "window_jets_per_s": None if not seconds else round(jets / seconds, 2),
        "command": command, "finished_utc": _now(),
    }


def _parse_name(path: Path) -> tuple[str, int] | None:
    stem = path.name.removesuffix(".root")
    process, _, seed = stem.partition("_")
    if process in FIRST_SEEDS and seed.isdigit() and path.name.endswith(".root"):
        return process, int(seed)
    return None


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Exclusive lock on ``out/.lock`` (two runs on one folder would generate the same seeds)."""
    import fcntl

    fh = (out / ".lock").open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            msg = f"another run is writing to {out} (lock held by pid {fh.read().strip() or '?'}); stop it first"
            raise RuntimeError(msg) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def _check_seeds(first: dict[str, int], span: int = SEED_SPAN) -> None:
    """Refuse seed ranges ``first[p] .. first[p] + span - 1`` that meet :data:`RESERVED_SEEDS`."""
    for process, seed in first.items():
        for lo, hi in RESERVED_SEEDS:
            if seed <= hi and seed + span - 1 >= lo:
                msg = (f"{process} seeds {seed}..{seed + span - 1} overlap seeds {lo}-{hi} used by another "
                       f"sample (the evaluation set must stay disjoint from training); choose other first seeds")
                raise ValueError(msg)


def _generate_file(process: str, events: int, seed: int, path: str) -> float:
    from hepml_coffea.samples import generate

    t0 = time.perf_counter()
    generate(process, events, seed, path, workers=1)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def grow_training_set(
    out: str | os.PathLike[str],
    target_top: int,
    target_qcd: int,
    events_per_file: int = 10000,
    workers: int = 1,
    first_seeds: dict[str, int] | None = None,
    manifest_copy: str | os.PathLike[str] | None = None,
    command: str | None = None,
    max_files: int | None = None,
    log: Callable[[str], None] | None = None,
    files_from: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Generate files into ``out`` until ``target_top`` top and ``target_qcd`` QCD training jets.

    Parameters
    ----------
    out : folder of the set (created)
    target_top, target_qcd : training jets wanted per class (counted in finished files)
    events_per_file : events per file (a new run keeps the existing files whatever their size)
    workers : files generated at the same time (one process each)
    first_seeds : first seed per process (default :data:`FIRST_SEEDS`; checked against
        :data:`RESERVED_SEEDS`)
    manifest_copy : also write the manifest here (e.g. ``docs/train/data_manifest.json``)
    command : the command line, recorded in the manifest
    max_files : stop after this many new files (``None``: until the targets)
    log : progress lines (default: this module's logger)
    files_from : a manifest (e.g. the committed ``docs/train/data_manifest.json``): generate
        exactly its files (process, seed, events), whatever the targets, and check each
        file's ``content_sha256`` against it (``rebuild_check`` in the returned manifest)

    Returns the manifest (dict).
    """
    log = log or logger.info
    first = dict(first_seeds or FIRST_SEEDS)
    _check_seeds(first)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = {"ttbar": int(target_top), "qcd": int(target_qcd)}
    wanted: list[dict[str, Any]] = []
    if files_from is not None:
        wanted = json.loads(Path(files_from).read_text())["files"]
        for e in wanted:
            _check_seeds({e["process"]: int(e["seed"])}, span=1)
    expected = {e["file"]: e.get("content_sha256") for e in wanted}
    rebuild_check: dict[str, bool] = {}
    with _lock(out):
        manifest_path = out / MANIFEST
        old: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        known = {e["file"]: e for e in old.get("files", [])}
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(out.glob("*.root")):
            parsed = _parse_name(path)
            if parsed is None:
                continue
            e = known.get(path.name)
            if e is None or e.get("bytes") != path.stat().st_size:
                log(f"{path.name}: finished file not in the manifest (or changed): counting it")
                e = _file_entry(path, parsed[0], parsed[1], None, None)
            entries[path.name] = e
        for name in set(known) - set(entries):
            log(f"{name}: in the manifest but not on disk: dropped from the manifest")
        for name in set(expected) & set(entries):
            rebuild_check[name] = entries[name]["content_sha256"] == expected[name]
        stale = sorted(p.name for p in out.glob("*.root.tmp"))
        if stale:
            log(f"ignoring {len(stale)} unfinished file(s) of an interrupted run (regenerated and replaced): "
                f"{', '.join(stale)}")

        def counted(process: str) -> int:
            return sum(e["window_jets"] for e in entries.values() if e["process"] == process)

        def per_event(process: str) -> float:
            rows = [e for e in entries.values() if e["process"] == process and e["events"]]
            n = sum(e["events"] for e in rows)
            return sum(e["window_jets"] for e in rows) / n if n else _YIELD_GUESS[process]

        settings = {"events_per_file": events_per_file, "first_seeds": first, "targets": target,
                    "selection": "550 < pT < 650 GeV, |eta| < 2; ttbar: fully contained top jets (truth 'contained')"}

        def save() -> dict[str, Any]:
            files = sorted(entries.values(), key=lambda e: (e["process"], e["seed"]))
            totals = {p: {"files": sum(e["process"] == p for e in files),
                          "events": sum(e["events"] for e in files if e["process"] == p),
                          "window_jets": counted(p), "target": target[p],
                          "bytes": sum(e["bytes"] for e in files if e["process"] == p)} for p in ("ttbar", "qcd")}
            secs = [e for e in files if e.get("seconds")]
            manifest = {
                "description": "training set for the shipped taggers (issue 22): in-window jets, seeds disjoint "
                               "from the evaluation set's; data/ is not in git, this manifest is",
                "command": command or old.get("command"), "updated_utc": _now(), **settings,
                "done": all(counted(p) >= target[p] for p in target), "totals": totals,
                "events_per_s_median": (sorted(e["events_per_s"] for e in secs)[len(secs) // 2] if secs else None),
                "files": files,
            }
            if files_from is not None:
                manifest["rebuilt_from"] = str(files_from)
                manifest["rebuild_check"] = {k: rebuild_check.get(k) for k in expected}
            tmp = manifest_path.with_name(MANIFEST + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
            os.replace(tmp, manifest_path)
            if manifest_copy:
                copy = Path(manifest_copy)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(manifest_path, copy.with_name(copy.name + ".tmp"))
                os.replace(copy.with_name(copy.name + ".tmp"), copy)
            return manifest

        manifest = save()
        inflight: dict[Future[float] | None, tuple[str, int, Path, int]] = {}
        taken = {(e["process"], e["seed"]) for e in entries.values()}
        new_files = 0

        def next_job() -> tuple[str, int, Path, int] | None:
            if files_from is not None:
                busy = {j[2].name for j in inflight.values()}
                for e in wanted:
                    if e["file"] not in entries and e["file"] not in busy:
                        return e["process"], int(e["seed"]), out / e["file"], int(e["events"])
                return None
            need = {}
            for p in target:
                pending = sum(j[3] for j in inflight.values() if j[0] == p) * per_event(p)
                missing = target[p] - counted(p) - pending
                if missing > 0:
                    need[p] = missing / max(target[p], 1)
            if not need or (max_files is not None and new_files + len(inflight) >= max_files):
                return None
            process = max(sorted(need), key=lambda p: need[p])
            seed = first[process]
            while (process, seed) in taken or any(j[1] == seed and j[0] == process for j in inflight.values()):
                seed += 1
            if seed >= first[process] + SEED_SPAN:
                msg = f"{process}: all {SEED_SPAN} seeds from {first[process]} used; use larger files"
                raise RuntimeError(msg)
            return process, seed, out / f"{process}_{seed}.root", events_per_file

        def finish(job: tuple[str, int, Path, int], seconds: float) -> None:
            nonlocal manifest, new_files
            process, seed, path, _ = job
            e = _file_entry(path, process, seed, seconds, command)
            if path.name in expected:
                rebuild_check[path.name] = e["content_sha256"] == expected[path.name]
                log(f"{path.name}: content {'identical to' if rebuild_check[path.name] else 'DIFFERS from'} "
                    f"{files_from}")
            entries[path.name] = e
            taken.add((process, seed))
            new_files += 1
            manifest = save()
            t = manifest["totals"]
            log(f"{path.name}: {e['events']} events in {seconds:.0f} s ({e['events_per_s']} events/s), "
                f"{e['window_jets']} window jets ({e['window_jets_per_s']}/s); totals: top "
                f"{t['ttbar']['window_jets']}/{target['ttbar']}, qcd {t['qcd']['window_jets']}/{target['qcd']}")

        if workers <= 1:
            while (job := next_job()) is not None:
                inflight[None] = job
                log(f"generating {job[2].name} ({job[3]} events)")
                seconds = _generate_file(job[0], job[3], job[1], str(job[2]))
                del inflight[None]
                finish(job, seconds)
        else:
            with ProcessPoolExecutor(workers) as pool:
                while True:
                    while len(inflight) < workers and (job := next_job()) is not None:
                        log(f"generating {job[2].name} ({job[3]} events)")
                        inflight[pool.submit(_generate_file, job[0], job[3], job[1], str(job[2]))] = job
                    if not inflight:
                        break
                    done, _ = wait([f for f in inflight if f is not None], return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = inflight.pop(fut)
                        finish(job, fut.result())
        if manifest["done"]:
            log(f"targets reached: {manifest['totals']['ttbar']['window_jets']} top, "
                f"{manifest['totals']['qcd']['window_jets']} QCD jets in {len(entries)} files")
        return manifest
