"""Where CPU inference time goes: kernel time spent faulting in freshly mmapped buffers.

glibc serves allocations above its mmap threshold (dynamic, at most 32 MB by default)
with a fresh ``mmap`` and returns them with ``munmap`` on free; torch's CPU allocator
goes through malloc, so every forward pass at a large batch faults in (and zeroes) its
big intermediate tensors again: system time, not arithmetic.  This probe times
``engine.predict`` per tagger and batch size (1 torch thread) in two fresh processes:
glibc defaults, and ``GLIBC_TUNABLES`` raising the mmap and trim thresholds (freed
memory is kept and reused), and reports jets/s, user/system CPU seconds and the peak RSS
added by the forward passes.

    python benchmarks/probe_malloc.py [--artifacts DIR] [--json OUT.json]

Used by ``benchmarks/run_all.py`` (section 2, "malloc probe").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUNED = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(paths: dict[str, str], files: list[str], batch_sizes: list[int], max_events: int) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import run_all as RA  # noqa: F401  (pins threads to 1)
    import psutil
    import torch

    from hepml_coffea.artifacts import load_artifact
    from hepml_coffea.inference.engine import predict

    torch.set_num_threads(1)
    cands, jets = RA.load_jets(files, max_events)
    me = psutil.Process()
    rows = []
    for name, path in paths.items():
        art = load_artifact(path)
        if art.input_kind == "observables":
            continue
        ins = RA._inputs_for(art, cands, jets)
        for bs in batch_sizes:
            n = min(len(ins[0]), 2 * bs)
            sub = [a[:n] for a in ins]
            predict(art.model, sub, batch_size=bs)  # warm
            rss = me.memory_info().rss
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass
            reps = 3
            c0, t0 = os.times(), time.perf_counter()
            for _ in range(reps):
                predict(art.model, sub, batch_size=bs)
            dt, c1 = time.perf_counter() - t0, os.times()
            rows.append({"tagger": name, "batch_size": bs, "n_jets": n, "jets_per_s": reps * n / dt,
                         "user_s": c1.user - c0.user, "sys_s": c1.system - c0.system,
                         "peak_added_mb": max(0, _hwm() - rss) / 2**20, "rss_gb": rss / 2**30})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", default=None)
    ap.add_argument("--paths", default=None, help="JSON {name: artifact path} (instead of --artifacts)")
    ap.add_argument("--files", nargs="+", default=[str(HERE.parent / "data/train/ttbar_101.root")])
    ap.add_argument("--batch-sizes", default="256,1024")
    ap.add_argument("--max-events", type=int, default=4000)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    bss = [int(x) for x in args.batch_sizes.split(",")]
    if args.paths:
        paths = json.loads(args.paths)
    else:
        sys.path.insert(0, str(HERE))
        import run_all as RA

        paths, _ = RA.resolve_taggers(args.artifacts)
    if args.child:
        print("ROWS " + json.dumps(child(paths, args.files, bss, args.max_events)), flush=True)
        return {}
    out: dict = {"tunables": TUNED, "runs": {}}
    for label, extra in (("glibc defaults", {}), ("GLIBC_TUNABLES mmap/trim thresholds raised", {"GLIBC_TUNABLES": TUNED})):
        env = {**os.environ, **extra}
        cmd = [sys.executable, __file__, "--child", "--paths", json.dumps(paths), "--files", *args.files,
               "--batch-sizes", args.batch_sizes, "--max-events", str(args.max_events)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("ROWS ")), None)
        out["runs"][label] = json.loads(line[5:]) if line else {"error": p.stderr[-800:]}
    for label, rows in out["runs"].items():
        print(f"# {label}")
        if isinstance(rows, dict):
            print(rows["error"])
            continue
        for r in rows:
            print(f"{r['tagger']:>18} bs {r['batch_size']:>5}: {r['jets_per_s']:>9,.0f} jets/s  user {r['user_s']:.2f} s  "
                  f"sys {r['sys_s']:.2f} s  peak +{r['peak_added_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
