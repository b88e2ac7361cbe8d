"""ParticleNet-Lite's model stage and the process's peak RSS, one runtime per process.

    python benchmarks/probe_particlenet_memory.py ort|shipped|plan [BATCH]   (DESC=1: longest batches first)

``ort``: the artifact's ``model.onnx``; ``shipped``: its ``model.pt2``; ``plan``: a package
compiled here with Inductor's ``memory_planning``. Prints three rounds of jets per CPU second
and the peak RSS before and after running (``resource.getrusage``). Run each mode in a fresh
process, several times: the AOTInductor runs were bimodal between processes (BENCHMARKS.md,
session 5: ONNX Runtime +108 MB over loading, AOTInductor +150 to +450 MB).
"""
import sys, time, tempfile, resource, os
from pathlib import Path
import numpy as np, torch
from _common import Context, bench_files, resolve_taggers, set_threads, tagger_inputs
set_threads(1)
from hepml_coffea.inference import backends as B
from hepml_coffea.inference.engine import get_tagger
from hepml_coffea.artifacts import load_artifact
mode = sys.argv[1]
path = resolve_taggers()["particlenet-lite"]
art = load_artifact(path)
if mode == "shipped":
    r = B._aoti_load((Path(path) / "model.pt2").read_bytes())
elif mode == "ort":
    s = B.onnx_session(str(Path(path) / "model.onnx"), 1)
    r = None
else:
    with torch._inductor.config.patch(memory_planning=True):
        data = B._aoti_bytes(art)
    r = B._aoti_load(data)
work = Path(tempfile.mkdtemp())
ctx = Context(taggers=resolve_taggers(), files=bench_files(), quick=False, work=work)
cands, jets = ctx.jets()
tagger = get_tagger(path, "cpu", backend="torch")
x = tagger_inputs(tagger, cands, jets)
names = list(art.input_names)
lens = np.asarray(x["mask"].sum(axis=(1, 2)), int); order = np.argsort(lens, kind="stable")
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 128
batches = []
for a in range(0, len(lens), bs):
    idx = order[a:a+bs]; p = max(1, int(lens[idx].max()))
    batches.append([np.ascontiguousarray(x[k][idx][..., :p]) for k in names])
if os.environ.get("DESC"): batches = batches[::-1]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def run():
    for b in batches:
        if r is None: s.run(["logits"], dict(zip(names, b)))
        else:
            with torch.inference_mode(): r(*[torch.from_numpy(a) for a in b])
run()
rates = []
for _ in range(3):
    c0 = time.process_time(); run(); rates.append(len(lens) / (time.process_time() - c0))
print(mode, bs, "jets/s", [round(v) for v in rates], "peak RSS before/after MB", round(rss0), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
