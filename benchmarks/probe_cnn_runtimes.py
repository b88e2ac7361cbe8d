"""CNN model stage in four runtimes, interleaved in one process, on real and on synthetic
jet images (one thread, batch 128, jets per CPU second, best of the rounds).

    python benchmarks/probe_cnn_runtimes.py [--rounds 4]

Runtimes: torch eager, ONNX Runtime (the artifact's ``model.onnx``), ``torch.compile``
(dynamic) and an AOTInductor package (``torch.export`` + ``aoti_compile_and_package``,
compiled here once, ~35 s; needs a C++ compiler). Real images: the selected jets of the
benchmark files; synthetic: 60 random hot pixels per image. This is the measurement behind
"AOTInductor was tried for the CNN and not kept" (BENCHMARKS.md, issue 14).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Context, bench_files, resolve_taggers, set_threads, tagger_inputs


def main() -> None:
    import torch

    from hepml_coffea.inference.backends import onnx_session
    from hepml_coffea.inference.engine import get_tagger

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    set_threads(1)
    ctx = Context(taggers=resolve_taggers(), files=bench_files(), quick=False, work=Path(tempfile.mkdtemp()))
    cands, jets = ctx.jets()
    tagger = get_tagger(ctx.taggers["cnn"], "cpu", backend="torch")
    real = torch.from_numpy(np.ascontiguousarray(tagger_inputs(tagger, cands, jets)["image"][:2048]))
    n = len(real)
    rng = np.random.default_rng(0)
    synth = np.zeros((n, 1, 40, 40), np.float32)
    for i in range(n):
        synth[i, 0].flat[rng.integers(0, 1600, 60)] = rng.random(60)
    model = tagger.model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(model, (real[:8],), dynamic_shapes=({0: torch.export.Dim("jets", min=1)},))
        pkg = torch._inductor.aoti_compile_and_package(program, package_path=str(ctx.work / "cnn.pt2"))
    print(f"AOTInductor compile: {time.perf_counter() - t0:.1f} s")
    aoti = torch._inductor.aoti_load_package(pkg)
    session = onnx_session(Path(ctx.taggers["cnn"]) / "model.onnx", threads=1)
    runs = {"torch eager": model, "onnxruntime": lambda x: session.run(None, {"image": x.numpy()})[0],
            "torch.compile": torch.compile(model, dynamic=True), "aoti": aoti}
    data = {"real": real, "synthetic": torch.from_numpy(synth)}
    best: dict[tuple[str, str], float] = {}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up / compile
            fn(real[:128])
            fn(real[:100])
        ref = model(real).float().numpy()
        for name, fn in runs.items():
            got = np.asarray(fn(real)).astype(np.float32) if name == "onnxruntime" else fn(real).float().numpy()
            print(f"{name}: max abs logit diff vs eager {np.abs(got - ref).max():.1e}")
        for _ in range(args.rounds):
            for dname, x in data.items():
                for name, fn in runs.items():
                    c0 = time.process_time()
                    for a in range(0, n, 128):
                        fn(x[a:a + 128])
                    best[(dname, name)] = max(best.get((dname, name), 0.0), n / (time.process_time() - c0))
    print(f"\n{n} jet images, jets per CPU second (1 thread, batch 128, best of {args.rounds} interleaved rounds)\n")
    print("| images | " + " | ".join(runs) + " |\n|---|" + "---:|" * len(runs))
    for dname in data:
        print(f"| {dname} | " + " | ".join(f"{best[(dname, k)]:,.0f}" for k in runs) + " |")


if __name__ == "__main__":
    main()
