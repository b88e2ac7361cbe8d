"""AOTInductor variants of one tagger against ONNX Runtime, interleaved in one process (1 thread,
batch 128, length-sorted trimmed batches of the benchmark files' selected jets; jets per CPU second).

    python benchmarks/probe_aoti_variants.py TAGGER [topk]        (NOCOMPILE=1: only the shipped files)

Compiles the artifact's model twice, without and with Inductor freezing (``topk``: with the kNN
as the top-k on unique keys, as the shipped packages are built; otherwise the eager stable
sort), and times them with ONNX Runtime (``model.onnx``) and, where the artifact has one, the
shipped ``model.pt2``; prints each variant's largest logit difference to eager and the ratio of
medians to ONNX Runtime. This is the measurement behind "the top-k kNN without freezing 1.13x,
with freezing 1.34x" (BENCHMARKS.md, session 5; run as ``particlenet-lite topk`` before the
shipped package existed). Needs a C++ compiler.
"""
import sys, time, tempfile
from pathlib import Path
import numpy as np, torch
from _common import Context, bench_files, resolve_taggers, set_threads, tagger_inputs
set_threads(1)
from hepml_coffea.inference import backends as B
from hepml_coffea.inference.engine import get_tagger
from hepml_coffea.artifacts import load_artifact
name = sys.argv[1]; topk = len(sys.argv) > 2 and sys.argv[2] == "topk"
work = Path(tempfile.mkdtemp())
ctx = Context(taggers=resolve_taggers(), files=bench_files(), quick=False, work=work)
cands, jets = ctx.jets()
path = ctx.taggers[name]
tagger = get_tagger(path, "cpu", backend="torch")
x = tagger_inputs(tagger, cands, jets)
art = load_artifact(path)
names = list(art.input_names)
runners = {"ort": B.onnx_session(str(Path(path)/"model.onnx"), 1)}
if (Path(path)/"model.pt2").exists(): runners["shipped"] = B._aoti_load((Path(path)/"model.pt2").read_bytes())
import os; print("OMP", os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
for freeze in ([] if os.environ.get('NOCOMPILE') else (False, True)):
    t = time.time()
    data = B._aoti_bytes(art, topk_knn=topk, freezing=freeze)
    print("compile", freeze, round(time.time() - t, 1), "s", len(data) // 1024, "kB", flush=True)
    runners[f"aoti_freeze{int(freeze)}"] = B._aoti_load(data)
def call(r, b):
    if hasattr(r, "run"): return r.run(["logits"], dict(zip(names, b)))[0]
    with torch.inference_mode():
        out = r(*[torch.from_numpy(a) for a in b])
    return out
if "mask" in x:
    lens = np.asarray(x["mask"].sum(axis=(1, 2)), int); order = np.argsort(lens, kind="stable")
else:
    lens = np.zeros(len(x[names[0]]), int); order = np.arange(len(lens))
batches = []
for a in range(0, len(lens), 128):
    idx = order[a:a+128]; p = max(1, int(lens[idx].max()))
    batches.append([np.ascontiguousarray(x[k][idx][..., :p]) if "mask" in x else np.ascontiguousarray(x[k][idx]) for k in names])
ref = [B._logits_torch(art.model, b) for b in batches]
for k, r in runners.items():
    got = [np.asarray(call(r, b)) for b in batches]
    print(k, "max logit diff", max(float(np.abs(a - np.asarray(b, dtype=np.float32)).max()) for a, b in zip(ref, got)))
res = {k: [] for k in runners}
for rep in range(4):
    for k, r in runners.items():
        c0 = time.process_time()
        for b in batches: call(r, b)
        res[k].append(len(lens) / (time.process_time() - c0))
print({k: [round(v) for v in vs] for k, vs in res.items()})
print({k: round(np.median(v) / np.median(res["ort"]), 3) for k, v in res.items()})
