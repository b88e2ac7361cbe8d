"""Inference cost of retrained taggers against the ones they replace, side by side in one run.

For each ``NAME=OLD:NEW`` pair (artifact folders or shipped names), on the same selected real
jets of the benchmark files: the model stage through the runtime each artifact records
(``get_tagger(path, "cpu").predict``, what the processor runs by default), one thread,
interleaved best of N, in jets per CPU second of this process (robust to other load), and the
ratio new / old. Inputs are built beforehand for each artifact (same spec for a retraining).

    python benchmarks/probe_retrained_cost.py --pairs pfn=data/curve/pfn-80k:pfn \\
        lstm=OLD_LSTM:lstm [--repeats 5] [--files F ...] [--json benchmarks/results/session8_retrained_cost.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import bench_files, best, load_jets, log, machine_info, set_threads, tagger_inputs, versions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", nargs="+", required=True, metavar="NAME=OLD:NEW")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-events", type=int, default=None)
    ap.add_argument("--files", nargs="+", default=None,
                    help="ROOT files whose selected jets are scored (default: the benchmark files)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from hepml_coffea.inference.engine import get_tagger

    set_threads(1)
    files = args.files or [str(p) for p in bench_files().values()]
    cands, jets = load_jets(files, args.max_events)
    rows = []
    for item in args.pairs:
        name, _, rest = item.partition("=")
        old, _, new = rest.partition(":")
        if not (name and old and new):
            raise SystemExit(f"--pairs {item!r}: expected NAME=OLD:NEW")
        taggers = {"old": get_tagger(old, "cpu"), "new": get_tagger(new, "cpu")}
        inputs = {k: tagger_inputs(t, cands, jets) for k, t in taggers.items()}
        n = len(next(iter(inputs["new"].values())))
        for k, t in taggers.items():  # warm-up
            t.predict(inputs[k])
        cpu = {k: float("inf") for k in taggers}
        for _ in range(args.repeats):
            for k, t in taggers.items():
                c0 = time.process_time()
                best(lambda t=t, x=inputs[k]: t.predict(x), 1)
                cpu[k] = min(cpu[k], time.process_time() - c0)
        rate = {k: n / max(v, 1e-9) for k, v in cpu.items()}
        row = {"tagger": name, "old": old, "new": new, "n_jets": n,
               "backend": {k: t.backend for k, t in taggers.items()},
               "jets_per_cpu_s": rate, "new_over_old": rate["new"] / rate["old"]}
        rows.append(row)
        log(f"  {name}: old {rate['old']:,.0f} ({row['backend']['old']}), new {rate['new']:,.0f} "
            f"({row['backend']['new']}) jets per CPU s: x{row['new_over_old']:.2f}")
    res = {"rows": rows, "machine": machine_info(), "versions": versions(),
           "setup": f"1 thread, fp32, {len(rows)} pairs, same jets, interleaved best of {args.repeats}, "
                    "jets per CPU second (time.process_time)"}
    print("| tagger | old (runtime) | new (runtime) | new / old |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tagger']} | {r['jets_per_cpu_s']['old']:,.0f} ({r['backend']['old']}) | "
              f"{r['jets_per_cpu_s']['new']:,.0f} ({r['backend']['new']}) | {r['new_over_old']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
