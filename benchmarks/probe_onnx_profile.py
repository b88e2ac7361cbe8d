"""Where ONNX Runtime spends a tagger's time, by operator type (1 thread, batch 128).

    python benchmarks/probe_onnx_profile.py particlenet-lite [--onnx FILE]

Runs the artifact's ``model.onnx`` (or ``--onnx FILE``, e.g. an older export) on the
selected jets of the benchmark files in length-sorted batches trimmed to their longest jet,
as the engine does, with ONNX Runtime's profiler on, and prints jets per CPU second and the
share of each operator type. This is how the channels-last ParticleNet export was found
(BENCHMARKS.md, issue 14): the channels-first graph spent its time in layout reorders,
transposes and separate BatchNorm / Mul / Add passes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Context, bench_files, resolve_taggers, set_threads, tagger_inputs


def main() -> None:
    import onnxruntime as ort

    from hepml_coffea.inference.engine import get_tagger

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tagger")
    ap.add_argument("--onnx", default=None, help="ONNX file to profile (default: the artifact's model.onnx)")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    set_threads(1)
    work = Path(tempfile.mkdtemp(prefix="hepml_probe_"))
    ctx = Context(taggers=resolve_taggers(), files=bench_files(), quick=False, work=work)
    cands, jets = ctx.jets()
    path = ctx.taggers[args.tagger]
    tagger = get_tagger(path, "cpu", backend="torch")
    x = tagger_inputs(tagger, cands, jets)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = str(work / "ort")
    sess = ort.InferenceSession(args.onnx or str(Path(path) / "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    n = len(x[names[0]])
    if "mask" in x:
        lens = np.asarray(x["mask"].sum(axis=(1, 2)), int)
        order = np.argsort(lens, kind="stable")
    else:
        lens, order = None, np.arange(n)
    c0 = time.process_time()
    for a in range(0, n, args.batch):
        idx = order[a:a + args.batch]
        if lens is not None:
            p = max(1, int(lens[idx].max()))
            feed = {k: np.ascontiguousarray(x[k][idx][..., :p]) for k in names}
        else:
            feed = {k: np.ascontiguousarray(x[k][idx]) for k in names}
        sess.run(None, feed)
    cpu = time.process_time() - c0
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node":
            op = e["args"].get("op_name", "?")
            per_op[op] = per_op.get(op, 0.0) + e["dur"]
    total = sum(per_op.values())
    print(f"{args.tagger}: {n} jets, {n / cpu:,.0f} jets per CPU second (profiler on)\n")
    print("| operator | ms | share |\n|---|---:|---:|")
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])[:15]:
        print(f"| {op} | {us / 1e3:.1f} | {100 * us / total:.1f} % |")


if __name__ == "__main__":
    main()
