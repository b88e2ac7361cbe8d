"""Model stage per tagger, side by side in one run (issue 14), one thread, CPU, fp32.

For every shipped tagger, on the same selected real jets (inputs built beforehand):

* ``before``: ``engine.predict(model, arrays)``, torch eager on the padded inputs (the
  path before issue 14: no length bucketing, no padding trim);
* ``torch``: ``get_tagger(..., backend="torch").predict`` (eager, jets bucketed by
  constituent count, each batch trimmed to its longest jet);
* ``compile`` / ``onnxruntime`` / ``aoti``: the same through ``torch.compile`` / ONNX
  Runtime / the artifact's AOTInductor package (``model.pt2``, where it has one);
* ``auto``: the backend recorded in the artifact (what the processor uses by default).

Each variant is timed best-of-N, interleaved; scores are compared with ``before``
(max |diff|). FLOPs per jet are counted with ``torch.utils.flop_counter`` on the
work actually done (trimmed batches for the new path, padded for ``before``), and set
against one core's measured fp32 matmul rate (``torch.mm`` 1024 x 1024, same run).

    python benchmarks/sec_model.py [--quick]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _common import TARGETS, Context, best, fmt, log, set_threads

VARIANTS = ("before", "torch", "compile", "onnxruntime", "aoti", "auto")


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """One core's fp32 ``torch.mm`` rate (n x n x n), GFLOP/s: the arithmetic ceiling."""
    import torch

    set_threads(1)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    return 2 * n**3 / best(lambda: torch.mm(a, b), repeats) / 1e9


def flops_per_jet(tagger: Any, inputs: dict[str, np.ndarray], trimmed: bool) -> float:
    """Multiply-add FLOPs per jet of the model's forward passes over ``inputs``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hepml_coffea.inference import engine

    arrays = [inputs[k] for k in tagger.input_names]
    lengths = engine.padded_lengths(inputs["mask"]) if trimmed and tagger.trims_padding else None
    model = tagger.model
    with FlopCounterMode(display=False) as counter:
        engine.predict(model, arrays, lengths=lengths)
    del torch
    return counter.get_total_flops() / max(1, len(arrays[0]))


def run(ctx: Context) -> dict[str, Any]:
    from _common import tagger_inputs

    from hepml_coffea.inference import engine
    from hepml_coffea.inference.engine import Tagger, get_tagger

    set_threads(1)
    cands, jets = ctx.jets()
    repeats = 2 if ctx.quick else 3
    ceiling = matmul_gflops()
    log(f"  matmul ceiling: {ceiling:.1f} GFLOP/s (1 thread, fp32)")
    rows = []
    for name, path in ctx.taggers.items():
        auto = get_tagger(path, "cpu")
        inputs = tagger_inputs(auto, cands, jets)
        n = len(next(iter(inputs.values())))
        if auto.input_kind == "observables":
            r = n / best(lambda a=auto, x=inputs: a.predict(x), repeats)
            rows.append({"tagger": name, "n_jets": n, "jets_per_s": {"auto": r}, "jets_per_wall_s": {"auto": r},
                         "chosen": "numpy"})
            continue
        arrays = [inputs[k] for k in auto.input_names]
        runs: dict[str, Any] = {"before": lambda a=auto, x=arrays: engine.predict(a.model, x)}
        for b in ("torch", "compile", "onnxruntime", "aoti"):
            try:
                t = get_tagger(path, "cpu", backend=b)
            except Exception as err:  # noqa: BLE001 - recorded (e.g. no model.onnx)
                runs[b] = err
                continue
            runs[b] = (lambda t=t, x=inputs: t.predict(x))
        runs["auto"] = lambda a=auto, x=inputs: a.predict(x)
        scores, rate, errors = {}, {}, {}
        for k, fn in runs.items():  # warm-up (compile), scores
            if isinstance(fn, Exception):
                errors[k] = f"{type(fn).__name__}: {str(fn)[:200]}"
                continue
            t0 = time.perf_counter()
            scores[k] = fn()
            if k == "compile":
                log(f"  {name}: compile + first pass {time.perf_counter() - t0:.1f} s")
        timings = {k: float("inf") for k in scores}
        cpu = {k: float("inf") for k in scores}
        for _ in range(repeats):
            for k in scores:
                c0 = time.process_time()
                timings[k] = min(timings[k], best(runs[k], 1))
                cpu[k] = min(cpu[k], time.process_time() - c0)
        wall_rate = {k: n / t for k, t in timings.items()}
        rate = {k: n / max(t, 1e-9) for k, t in cpu.items()}  # per CPU second: robust to other load
        diff = {k: float(np.max(np.abs(s - scores["before"]))) if n else 0.0 for k, s in scores.items()}
        f_new = flops_per_jet(Tagger(artifact=auto.artifact, model=auto.model, device="cpu"), inputs, True)
        f_old = flops_per_jet(Tagger(artifact=auto.artifact, model=auto.model, device="cpu"), inputs, False)
        row = {
            "tagger": name, "n_jets": n, "chosen": auto.backend, "jets_per_s": rate, "jets_per_wall_s": wall_rate,
            "max_abs_diff_vs_before": diff,
            "errors": errors, "mflop_per_jet_trimmed": f_new / 1e6, "mflop_per_jet_padded": f_old / 1e6,
            "mean_constituents": float(np.mean(engine.padded_lengths(inputs["mask"]))) if "mask" in inputs else None,
            "speedup_auto_vs_before": rate["auto"] / rate["before"],
            "speedup_auto_vs_torch": rate["auto"] / rate["torch"] if "torch" in rate else None,
            "fraction_of_ceiling_auto": rate["auto"] * f_new / (ceiling * 1e9),
            "fraction_of_ceiling_before": rate["before"] * f_old / (ceiling * 1e9),
        }
        rows.append(row)
        log(f"  {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rate.items()) + f" jets/s; auto={auto.backend} "
            f"x{row['speedup_auto_vs_before']:.2f} vs before; max|diff| {max(diff.values()):.1e}")
    targets = {}
    for r in rows:
        want = TARGETS["model_speedup"].get(r["tagger"])
        if want is None or "speedup_auto_vs_before" not in r:
            continue
        ok = r["speedup_auto_vs_before"] >= want and max(r["max_abs_diff_vs_before"].values()) <= 1e-5
        targets[f"model_{r['tagger']}_vs_torch_eager"] = {"value": r["speedup_auto_vs_before"], "target": want, "met": ok}
    return {"rows": rows, "matmul_gflops_1thread": ceiling, "targets": targets,
            "setup": "1 thread, fp32, default CPU batch 128, inputs prebuilt from the selected jets of the benchmark "
                     "files; best of interleaved repeats; jets_per_s = jets per CPU second of this process "
                     "(time.process_time; robust to other processes on a shared machine), jets_per_wall_s = per "
                     "wall second; 'before' = engine.predict (eager, padded)"}


def markdown(res: dict[str, Any]) -> list[str]:
    out = [f"Matmul ceiling (1 thread, fp32 torch.mm 1024^3): **{res['matmul_gflops_1thread']:.1f} GFLOP/s**. "
           "Jets per CPU second of the process (1 thread; wall-clock rates are in the JSON).", "",
           "| tagger | jets | before | torch (trim) | compile | onnxruntime | aoti | auto (=chosen) | auto / before | "
           "max abs diff | MFLOP/jet (trim / padded) | % of ceiling (auto / before) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        j = r["jets_per_s"]
        if "before" not in j:
            out.append(f"| {r['tagger']} | {r['n_jets']} | - | - | - | - | - | {fmt(j['auto'])} (numpy) | - | - | - | - |")
            continue
        out.append(
            f"| {r['tagger']} | {r['n_jets']} | {fmt(j.get('before'))} | {fmt(j.get('torch'))} | {fmt(j.get('compile'))} | "
            f"{fmt(j.get('onnxruntime'))} | {fmt(j.get('aoti'))} | {fmt(j.get('auto'))} ({r['chosen']}) | {r['speedup_auto_vs_before']:.2f}x | "
            f"{max(r['max_abs_diff_vs_before'].values()):.1e} | {r['mflop_per_jet_trimmed']:.2f} / "
            f"{r['mflop_per_jet_padded']:.2f} | {100 * r['fraction_of_ceiling_auto']:.0f} % / "
            f"{100 * r['fraction_of_ceiling_before']:.0f} % |")
    return out


if __name__ == "__main__":
    from _common import standalone

    standalone(run, markdown)
