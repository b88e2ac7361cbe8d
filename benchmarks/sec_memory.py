"""Peak resident memory of a worker process running the processor (all taggers) on one chunk.

A fresh Python process per chunk size, the models loaded first (as ``TaggerWarmup`` does),
the worker allocator settings (``worker_environment()``) in its environment, then one
chunk of exactly that many events of a file mixing the generated ttbar and QCD events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from _common import ROOT, TARGETS, Context, fmt, log, write_events

MEM_SNIPPET = r"""
import json, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from hepml_coffea.analysis.processor import TaggerProcessor
from hepml_coffea.inference.engine import get_tagger
import psutil
paths = json.loads({paths!r})
proc = TaggerProcessor(taggers=paths, device="cpu")
for p in paths:
    get_tagger(p, "cpu")          # a Dask worker loads these at start (TaggerWarmup)
me = psutil.Process()
def hwm():  # this process image's peak RSS (VmHWM; ru_maxrss would carry the forking parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
before = me.memory_info().rss
peak_before = hwm()
try:  # reset the high-water mark to the current RSS, so the peak below is the chunk's
    open("/proc/self/clear_refs", "w").write("5")
    reset = True
except OSError:
    reset = False
runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                          chunksize={chunksize}, maxchunks=1, savemetrics=False)
t0 = time.perf_counter()
out = runner({{"mixed": [{file!r}]}}, proc, treename="Events")
wall = time.perf_counter() - t0
from hepml_coffea.analysis.histograms import datasets_of
v = datasets_of(out)["mixed"]
print("RESULT " + json.dumps({{"events": v["cutflow"]["events"], "jets": v["cutflow"]["scored"],
      "rss_after_models_bytes": before, "peak_before_chunk_bytes": peak_before, "hwm_reset": reset,
      "peak_rss_bytes": max(hwm(), peak_before),
      "peak_during_chunk_bytes": hwm() if reset else None,
      "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "rss_end_bytes": me.memory_info().rss, "wall_s": wall, "timing": v["timing"]}}))
"""


def run(ctx: Context) -> dict[str, Any]:
    taggers = ctx.taggers
    chunk_sizes = [1000, 2000] if ctx.quick else [2500, 5000]
    mem_file = str(ctx.work / "memory_mixed.root")
    half = max(chunk_sizes) // 2
    write_events([(ctx.files["ttbar"], 0, min(half, 2000)), (ctx.files["qcd"], 0, max(chunk_sizes) - min(half, 2000))],
                 mem_file)
    rows = []
    for cs in chunk_sizes:
        code = MEM_SNIPPET.format(root=str(ROOT), paths=json.dumps(list(taggers.values())), chunksize=cs, file=mem_file)
        from hepml_coffea.inference.worker import worker_environment

        env = {**__import__("os").environ, **worker_environment()}
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=1800,
                           env=env, check=False)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            rows.append({"chunk_events": cs, "error": (p.stderr or p.stdout)[-800:]})
            log(f"  memory chunk={cs}: FAILED")
            continue
        r = json.loads(line[7:])
        r["chunk_events"] = cs
        r["peak_rss_gb"] = r["peak_rss_bytes"] / 2**30
        r["chunk_increment_gb"] = ((r["peak_during_chunk_bytes"] or r["peak_rss_bytes"]) - r["rss_after_models_bytes"]) / 2**30
        rows.append(r)
        log(f"  memory chunk={cs}: {r['events']} events, peak RSS {r['peak_rss_gb']:.2f} GB "
            f"(models loaded: {r['rss_after_models_bytes'] / 2**30:.2f} GB)")
    big = [r for r in rows if r.get("chunk_events") == max(chunk_sizes) and "peak_rss_gb" in r]
    out = {"rows": rows, "file": mem_file,
           "setup": "fresh python process per chunk size: TaggerProcessor(all taggers, device='cpu'), models loaded "
                    "into the engine cache first (as TaggerWarmup does on a Dask worker), then coffea Runner + "
                    "IterativeExecutor on ONE chunk of exactly that many events (maxchunks=1) of a PFNano file "
                    "concatenated from the generated ttbar and QCD files (NanoEvents, PFNanoAODSchema); peak RSS = "
                    "VmHWM of the whole process (python + torch + models + chunk); the high-water mark is reset "
                    "(/proc/self/clear_refs) after the models are loaded, so the peak is the maximum of the start-up "
                    "peak and the peak while the chunk runs; 'increase' = chunk peak - RSS with models loaded"}
    if big and max(chunk_sizes) >= 50000:
        v = big[0]["peak_rss_gb"]
        out["targets"] = {"peak_rss_50k_gb": {"value": v, "target": TARGETS["rss_50k_gb"],
                                              "met": v <= TARGETS["rss_50k_gb"]}}
    return out


def markdown(res: dict[str, Any]) -> list[str]:
    out = ["| chunk events | jets | peak RSS GB | RSS with models GB | chunk increase GB | wall s |", "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        if "error" in r:
            out.append(f"| {r['chunk_events']} | failed | | | | |")
            continue
        out.append(f"| {r['events']} | {r['jets']} | {r['peak_rss_gb']:.2f} | {r['rss_after_models_bytes'] / 2**30:.2f} | "
                   f"{r['chunk_increment_gb']:.2f} | {fmt(r['wall_s'], 1)} |")
    return out


if __name__ == "__main__":
    from _common import standalone

    standalone(run, markdown)
