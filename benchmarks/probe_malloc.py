"""Allocator settings for tagging workers: CPU time per jet under each, measured.

glibc serves large blocks with ``mmap`` and hands freed memory back to the kernel when
more than the trim threshold is free; Dask's nanny starts workers with
``MALLOC_TRIM_THRESHOLD_=65536``. Then every forward pass maps, zeroes and faults in
its big temporaries again. This probe runs ``Tagger.predict`` (backend ``torch`` and
``auto``) in a worker thread, as a Dask worker does, in a fresh process per setting:

* glibc defaults;
* Dask's nanny default (``MALLOC_TRIM_THRESHOLD_=65536``);
* ``hepml_coffea.inference.worker.worker_environment()`` (what our clusters set);
* Dask's default plus ``apply_allocator_settings()`` at run time (what ``TaggerWarmup``
  does on a cluster started without our settings);

and reports user and system CPU microseconds per jet (``getrusage``, robust to other
load on the machine), wall jets/s and the process's peak RSS.

    python benchmarks/probe_malloc.py [--quick] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import Context, bench_files, fmt, log, resolve_taggers

SETTINGS: dict[str, dict[str, str]] = {
    "glibc defaults": {},
    "Dask nanny default (MALLOC_TRIM_THRESHOLD_=65536)": {"MALLOC_TRIM_THRESHOLD_": "65536"},
    "worker_environment()": {},  # filled in main() from the package
    "Dask default + apply_allocator_settings() at run time": {"MALLOC_TRIM_THRESHOLD_": "65536", "HEPML_MALLOPT": "1"},
}


def child(files: list[str], taggers: dict[str, str], max_events: int | None, repeats: int) -> dict[str, Any]:
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from _common import load_jets, tagger_inputs

    if os.environ.get("HEPML_MALLOPT") == "1":
        from hepml_coffea.inference.worker import apply_allocator_settings

        apply_allocator_settings()
    from hepml_coffea.inference.engine import get_tagger

    cands, jets = load_jets(files, max_events)
    rows: dict[str, Any] = {}

    def work() -> None:
        for name, path in taggers.items():
            for backend in ("torch", "auto"):
                t = get_tagger(path, "cpu", backend=backend)
                if t.input_kind == "observables":
                    continue
                x = tagger_inputs(t, cands, jets)
                n = len(next(iter(x.values())))
                t.predict(x)
                r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                for _ in range(repeats):
                    t.predict(x)
                r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                k = repeats * n
                rows[f"{name} ({t.backend})"] = {
                    "user_us_per_jet": (r1.ru_utime - r0.ru_utime) / k * 1e6,
                    "sys_us_per_jet": (r1.ru_stime - r0.ru_stime) / k * 1e6,
                    "jets_per_s": k / (w1 - w0), "n_jets": n}

    with ThreadPoolExecutor(1) as pool:  # a Dask worker runs tasks in a thread
        pool.submit(work).result()
    from _common import peak_rss_mb

    rows["peak_rss_mb"] = peak_rss_mb()
    return rows


def run(ctx: Context) -> dict[str, Any]:
    from hepml_coffea.inference.worker import worker_environment

    settings = dict(SETTINGS)
    settings["worker_environment()"] = worker_environment()
    files = [str(ctx.files["ttbar"]), str(ctx.files["qcd"])]
    max_events = 300 if ctx.quick else 800
    out: dict[str, Any] = {"settings": settings, "runs": {}, "max_events_per_file": max_events}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "HEPML_MALLOPT"))}
    for label, extra in settings.items():
        cmd = [sys.executable, __file__, "--child", "--files", *files, "--taggers", json.dumps(ctx.taggers),
               "--max-events", str(max_events), "--repeats", "2"]
        p = subprocess.run(cmd, env={**base, **extra}, capture_output=True, text=True, timeout=1800, check=False)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("ROWS ")), None)
        out["runs"][label] = json.loads(line[5:]) if line else {"error": p.stderr[-800:]}
        log(f"  {label}: done")
    return out


def markdown(res: dict[str, Any]) -> list[str]:
    labels = list(res["runs"])
    first = next((r for r in res["runs"].values() if "error" not in r), {})
    models = [k for k in first if k != "peak_rss_mb"]
    out = ["CPU microseconds per jet, user + system (system in brackets), model run in a worker thread, "
           "1 thread; last row: peak RSS of the process.", "",
           "| model (backend) | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for m in models:
        cells = []
        for lab in labels:
            r = res["runs"][lab].get(m)
            cells.append("-" if r is None else f"{r['user_us_per_jet'] + r['sys_us_per_jet']:,.0f} ({r['sys_us_per_jet']:,.0f})")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out.append("| peak RSS MB | " + " | ".join(fmt(res["runs"][lab].get("peak_rss_mb")) for lab in labels) + " |")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--taggers", help=argparse.SUPPRESS)
    ap.add_argument("--max-events", type=int, default=800, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("ROWS " + json.dumps(child(args.files, json.loads(args.taggers), args.max_events, args.repeats)), flush=True)
        return {}
    import tempfile

    ctx = Context(taggers=resolve_taggers(), files=bench_files(), quick=args.quick, work=Path(tempfile.mkdtemp()))
    res = run(ctx)
    print("\n".join(markdown(res)))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
