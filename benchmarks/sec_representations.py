"""Representation building: jets/s on one core of our builders vs coffea's recipe.

``build_sequence`` / ``build_pointcloud`` / ``build_image`` (default and shipped specs)
and coffea's documented recipe (``benchmarks/bench_representations.coffea_recipe``) on
the same selected real jets, best of N; max |ours - recipe| of the sequence features.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import bench_representations as BR
import numpy as np
from _common import TARGETS, Context, best, fmt, met, set_threads

import hepml_coffea.representations as R


def run(ctx: Context) -> dict[str, Any]:
    from hepml_coffea.training.dataset import standard_spec

    set_threads(1)
    cands, jets = ctx.jets()
    repeats = 3 if ctx.quick else 5
    source = " + ".join(p.name for p in ctx.files.values())
    n = len(jets)
    mean_n = float(ak.mean(ak.num(cands))) if n else 0.0
    specs = {
        "sequence": R.default_sequence_spec(100),
        "pointcloud": R.default_pointcloud_spec(100),
        "image": R.default_image_spec(),
        "sequence (shipped spec)": standard_spec("sequence"),
        "pointcloud (shipped spec)": standard_spec("pointcloud"),
        "image (shipped spec)": standard_spec("image"),
    }
    small_c, small_j = cands[:200], jets[:200]
    for _ in range(2):  # numba load / warm caches
        for s in specs.values():
            R.build(small_c, small_j, s)
        BR.coffea_recipe(small_c, small_j)
    ours = R.build_sequence(cands, jets, specs["sequence"])["features"]
    ref = BR.coffea_recipe(cands, jets)
    max_diff = float(np.max(np.abs(ours - ref))) if ours.size else 0.0
    timings = {"coffea_recipe": best(lambda: BR.coffea_recipe(cands, jets), max(2, repeats // 2))}
    for name, s in specs.items():
        timings[name] = best(lambda s=s: R.build(cands, jets, s), repeats)
    base = n / timings["coffea_recipe"]
    rows = [{"method": k, "seconds": t, "jets_per_s": n / t, "ratio_vs_recipe": (n / t) / base}
            for k, t in timings.items()]
    rate = {r["method"]: r["jets_per_s"] for r in rows}
    particles = min(rate["sequence"], rate["pointcloud"], rate["sequence (shipped spec)"], rate["pointcloud (shipped spec)"])
    image = min(rate["image"], rate["image (shipped spec)"])
    return {
        "input": {"source": source, "n_jets": n, "mean_constituents": mean_n, "P": 100, "threads": 1,
                  "repeats": repeats, "functions": "benchmarks/bench_representations.py (coffea_recipe, _best)"},
        "results": rows,
        "check": {"max_abs_diff_sequence_vs_recipe": max_diff},
        "targets": {
            "particles_jets_per_s_per_core": {"value": particles, "target": TARGETS["repr_particles"],
                                              "met": particles >= TARGETS["repr_particles"]},
            "image_jets_per_s_per_core": {"value": image, "target": TARGETS["repr_image"],
                                          "met": image >= TARGETS["repr_image"]},
        },
    }


def markdown(res: dict[str, Any]) -> list[str]:
    inp = res["input"]
    out = [f"{inp['n_jets']} jets ({inp['source']}), mean {inp['mean_constituents']:.1f} constituents, P = 100, "
           f"1 thread, best of {inp['repeats']}; max |sequence - recipe| = {res['check']['max_abs_diff_sequence_vs_recipe']:.1e}.",
           "", "| method | jets/s | vs recipe |", "|---|---|---|"]
    for r in res["results"]:
        out.append(f"| {r['method']} | {fmt(r['jets_per_s'])} | {r['ratio_vs_recipe']:.1f}x |")
    for k, t in res["targets"].items():
        out.append(f"\n{k}: {fmt(t['value'])} (target {fmt(t['target'])}): {met(t)}")
    return out


if __name__ == "__main__":
    from _common import standalone

    standalone(run, markdown)
