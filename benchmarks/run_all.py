"""All CPU benchmarks in one command: JSON + a markdown report.

    python benchmarks/run_all.py [--quick] [--sections model,processor] [--out benchmarks/results]

Inputs are generated once on a fresh clone (``_common.bench_files``: 2,000 ttbar + 3,000
QCD events with fixed seeds into ``data/bench/``) and reused afterwards. Sections, one
module each (run any of them alone with ``python benchmarks/sec_<name>.py``):

============== ===================== =========================================================
name           module                what
============== ===================== =========================================================
representations sec_representations  builders vs coffea's recipe, jets/s on one core
model          sec_model             model stage per tagger: before / torch / compile /
                                     onnxruntime / auto, FLOPs vs a matmul ceiling (issue 14)
malloc         probe_malloc          CPU time per jet under each allocator setting (issue 14)
processor      sec_processor         end to end: iterative vs 1-worker Dask, torch vs auto
                                     (issue 14), 2-worker scaling
rntuple        sec_rntuple           RNTuple vs the same events as TTree (issue 14)
torch_wrapper  sec_vs_torch_wrapper  our path vs ``coffea.ml_tools.torch_wrapper``
memory         sec_memory            worker peak RSS per chunk size
============== ===================== =========================================================

The GPU figures come from ``workflows/gpu_campaign.py`` (``benchmarks/gpu.sh``). Torch,
numba and BLAS run one thread unless a section says otherwise. The machine record (CPU,
cores, versions) and the load average at start and end are written with the results:
on a shared machine absolute figures move, ratios measured side by side much less.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _common import (
    HERE,
    Context,
    bench_files,
    loadavg,
    log,
    machine_info,
    resolve_taggers,
    versions,
)

SECTIONS = {
    "representations": "sec_representations",
    "model": "sec_model",
    "malloc": "probe_malloc",
    "processor": "sec_processor",
    "rntuple": "sec_rntuple",
    "torch_wrapper": "sec_vs_torch_wrapper",
    "memory": "sec_memory",
}
TITLES = {
    "representations": "Representations (jets/s, one core)",
    "model": "Model stage per tagger, 1 thread (issue 14)",
    "malloc": "Allocator settings in a worker thread (issue 14)",
    "processor": "Processor end to end: iterative vs Dask worker, torch vs auto (issue 14)",
    "rntuple": "RNTuple vs TTree (issue 14)",
    "torch_wrapper": "Ours vs coffea.ml_tools.torch_wrapper",
    "memory": "Worker peak memory per chunk",
}


def targets_table(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for sec, r in res["sections"].items():
        for k, t in (r.get("targets") or {}).items():
            rows.append({"section": sec, "target": k, "value": t.get("value"), "goal": t.get("target"),
                         "met": bool(t.get("met"))})
    return rows


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {x:.2f}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def to_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"# Benchmarks ({'quick' if res['quick'] else 'full'} run, {res['date']})", "",
           f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {m['memory_gb']} GB, {m['glibc']}; "
           f"load average {res['loadavg_start']} at start, {res['loadavg_end']} at end"
           + (" (**shared machine**: other processes were running)" if res["shared"] else "") + ".",
           f"Versions: {', '.join(f'{k} {v}' for k, v in res['versions'].items())}.",
           f"Command: `{res['command']}`, {res['total_seconds']:.0f} s.", "", "## Targets", "",
           "| section | target | value | goal | met |", "|---|---|---|---|---|"]
    for t in res["targets_table"]:
        out.append(f"| {t['section']} | {t['target']} | {_value(t['value'])} | {_value(t['goal'])} | "
                   f"{'**yes**' if t['met'] else 'no'} |")
    for sec, r in res["sections"].items():
        out += ["", f"## {TITLES.get(sec, sec)}", ""]
        if "error" in r:
            out.append(f"Failed: `{r['error']}`")
            continue
        try:
            out += importlib.import_module(SECTIONS[sec]).markdown(r)
        except Exception as err:  # noqa: BLE001 - the JSON still has the figures
            out.append(f"(markdown failed: {type(err).__name__}: {err})")
        out.append(f"\n({r.get('seconds', 0):.0f} s)")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    ap.add_argument("--artifacts", default=None, help="folder of artifacts instead of the shipped taggers")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    res: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "quick": args.quick,
        "machine": machine_info(), "versions": versions(), "loadavg_start": loadavg(),
        "command": " ".join(["python", *sys.argv]), "sections": {},
    }
    work = Path(tempfile.mkdtemp(prefix="hepml_bench_"))
    ctx = Context(taggers=resolve_taggers(args.artifacts), files=bench_files(), quick=args.quick, work=work)
    res["taggers"] = ctx.taggers
    res["files"] = {k: str(v) for k, v in ctx.files.items()}
    log(f"machine {res['machine']['cpu_model']}, load {res['loadavg_start']}; taggers {list(ctx.taggers)}")
    try:
        for sec in chosen:
            log(f"section {sec} ...")
            t0 = time.perf_counter()
            try:
                res["sections"][sec] = importlib.import_module(SECTIONS[sec]).run(ctx)
            except Exception as err:  # noqa: BLE001 - record and go on with the next section
                traceback.print_exc()
                res["sections"][sec] = {"error": f"{type(err).__name__}: {err}",
                                        "traceback": traceback.format_exc()[-3000:]}
            res["sections"][sec]["seconds"] = time.perf_counter() - t0
            log(f"section {sec} done in {time.perf_counter() - t0:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = loadavg()
    ncores = res["machine"]["logical_cores"] or 1
    res["shared"] = max(res["loadavg_start"][0], res["loadavg_end"][0]) > 0.5 * ncores
    res["total_seconds"] = time.perf_counter() - t_start
    res["targets_table"] = targets_table(res)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "benchmarks_quick" if args.quick else "benchmarks"
    md = to_markdown(res)
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (out_dir / f"{stem}.md").write_text(md)
    print(md)
    log(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')} in {res['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
