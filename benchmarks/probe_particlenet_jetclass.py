"""The full ParticleNet (JetClass, ``particlenet-jetclass``): its CPU model stage next to
weaver's eager PyTorch and a plain ONNX Runtime session, on the same real jets.

    python benchmarks/probe_particlenet_jetclass.py [--files F ...] [--jets 1000] [--threads 2] [--out DIR]

Same selected jets (550 < pT < 650 GeV, |eta| < 2, from ``--files``; default the benchmark
inputs of ``_common.bench_files``) for every row, inputs built once by the artifact's spec:

* ``weaver eager``: weaver-core's own ``ParticleNet`` (the JetClass configuration, the original
  state dict), ``for_inference``, batches of 128 padded to 128 particles as weaver feeds it;
* ``onnxruntime plain``: an ONNX Runtime session on the authors' ``model.onnx``, batches of 128
  at 128 particles (what a hand-written coffea processor would do);
* ``engine <backend>``: ``Tagger.predict_classes`` through the engine (jets bucketed by
  length, each batch trimmed to its longest jet) with each runtime the artifact has.

At ``--threads`` torch / ONNX Runtime threads (2 = this machine's cores); each row the best of
``--repeats`` interleaved passes. Writes ``particlenet_jetclass.json`` / ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="*", default=None)
    ap.add_argument("--jets", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/session6")
    args = ap.parse_args()
    from _common import bench_files, loadavg, machine_info, set_threads, versions

    set_threads(args.threads)
    import torch

    from hepml_coffea.artifacts import load_artifact, shipped_taggers
    from hepml_coffea.inference.backends import onnx_session
    from hepml_coffea.inference.engine import Tagger
    from hepml_coffea.inference.runners import make_runner
    from hepml_coffea.representations import build

    sys.path.insert(0, str(Path(__file__).parents[1] / "workflows"))
    from choose_backends import selected_jets

    path = shipped_taggers()["particlenet-jetclass"]
    art = load_artifact(path)
    files = args.files or [str(p) for p in bench_files().values()]
    cands, jets = selected_jets(files, args.jets, art.spec.required_cand_fields(), art.spec.required_jet_fields())
    x = {k: np.ascontiguousarray(v) for k, v in build(cands, jets, art.spec).items() if k in art.input_names}
    n = len(jets)
    counts = x["pf_mask"].sum(axis=(1, 2))

    from weaver.nn.model.ParticleNet import ParticleNet as WeaverParticleNet

    wmodel = WeaverParticleNet(input_dims=7, num_classes=10,
                               conv_params=[(16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256))],
                               fc_params=[(256, 0.1)], use_fusion=False, use_fts_bn=True, use_counts=True,
                               for_inference=True).eval()
    from safetensors.torch import load_file

    wmodel.load_state_dict(load_file(str(path / "weights.safetensors")))
    sess = onnx_session(str(path / "model.onnx"), threads=args.threads)
    names = list(art.input_names)

    def padded_batches(fn):  # noqa: ANN001, ANN202
        out = []
        for a in range(0, n, 128):
            out.append(fn([x[k][a:a + 128] for k in names]))
        return np.concatenate(out)

    def weaver_eager() -> np.ndarray:
        with torch.inference_mode():
            return padded_batches(lambda b: wmodel(*[torch.from_numpy(t) for t in b]).numpy())

    def ort_plain() -> np.ndarray:
        return padded_batches(lambda b: sess.run(["softmax"], dict(zip(names, b)))[0])

    rows = {"weaver eager (padded 128)": weaver_eager, "onnxruntime plain (padded 128)": ort_plain}
    for backend in ("onnxruntime", "aoti", "torch"):
        try:
            t = Tagger(artifact=art, model=art.model, runner=make_runner(art, art.model, backend, strict=True))
        except Exception as err:  # noqa: BLE001
            print(f"engine {backend}: unavailable ({err})")
            continue
        rows[f"engine {backend} (bucketed, trimmed)"] = lambda t=t: t.predict_classes(x)
    ref = ort_plain()
    results = {}
    for name, fn in rows.items():
        got = fn()  # warm-up
        results[name] = {"max_abs_diff_vs_onnx": float(np.abs(got - ref).max()), "best_s": float("inf")}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            results[name]["best_s"] = min(results[name]["best_s"], time.perf_counter() - t0)
    for r in results.values():
        r["jets_per_s"] = n / r["best_s"]
    doc = {"command": " ".join(sys.argv), "jets": n, "mean_particles": float(counts.mean()),
           "threads": args.threads, "files": files, "results": results, "machine": machine_info(),
           "versions": versions(), "loadavg": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "particlenet_jetclass.json").write_text(json.dumps(doc, indent=2))
    lines = [f"particlenet-jetclass model stage, {n} real jets (mean {counts.mean():.1f} particles), "
             f"{args.threads} threads, best of {args.repeats}; load average {loadavg()}",
             "", "| path | jets/s | x weaver eager | max |diff| vs ONNX |", "|---|---|---|---|"]
    base = results["weaver eager (padded 128)"]["jets_per_s"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['jets_per_s']:,.0f} | {r['jets_per_s'] / base:.1f} | {r['max_abs_diff_vs_onnx']:.1e} |")
    (out / "particlenet_jetclass.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
