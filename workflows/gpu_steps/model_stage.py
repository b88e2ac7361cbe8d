"""Step 3, ``model_stage``: jets/s of every tagger through the engine
(:func:`hepml_coffea.inference.engine.get_tagger`) in fp32, bf16 autocast and ``torch.compile``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from gpu_steps.common import Campaign, TARGETS


def free_gpu() -> None:
    """Return the main process's cached GPU memory (the dask-cuda worker shares the GPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _tile(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first axis repeated to ``n`` entries. Shapes: (M, ...) -> (n, ...)."""
    out = {}
    for k, a in arrays.items():
        idx = np.arange(n) % len(a)
        out[k] = np.ascontiguousarray(a[idx])
    return out


def tagger_inputs(tagger: Any, cands: Any, jets: Any, cache: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``tagger`` reads, built once per input spec (the processor's code)."""
    import awkward as ak

    from hepml_coffea.representations import build

    if tagger.input_kind == "observables":
        msd = np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64)
        t3 = np.asarray(ak.to_numpy(jets.tau3), dtype=np.float64)
        t2 = np.asarray(ak.to_numpy(jets.tau2), dtype=np.float64)
        return {"msoftdrop": msd, "tau32": np.divide(t3, t2, out=np.zeros_like(t3), where=t2 > 0)}
    key = json.dumps(tagger.artifact.spec.to_dict(), sort_keys=True)
    if key not in cache:
        cache[key] = build(cands, jets, tagger.artifact.spec)
    return cache[key]


def random_particlenet(work: Path, length: int = 100) -> Path:
    """Full-size ParticleNet with random weights as an artifact (speed only), reading
    ``length`` particles per jet."""
    from hepml_coffea.artifacts import save_artifact
    from hepml_coffea.models import build_model
    from hepml_coffea.training.dataset import standard_spec

    out = work / "bench" / "particlenet-random"
    if not (out / "manifest.json").exists():
        model = build_model("particlenet").eval()
        save_artifact(out, name="particlenet", model=model, input_kind="pointcloud",
                      spec=standard_spec("pointcloud", length), metrics={"note": "random weights: speed measurements only"},
                      meta={"training": {"command": "workflows/gpu_campaign.py (random weights)"}}, torchscript=False)
    return out


def model_stage(camp: Campaign, taggers: dict[str, Path], piece: Any, device: str, deadline_s: float) -> dict[str, Any]:
    """Jets/s of each tagger's model stage (``Tagger.predict``: host arrays in, scores out)."""
    import torch

    from hepml_coffea.inference.engine import get_tagger

    p = camp.plan
    rows: list[dict[str, Any]] = []
    cache: dict[str, dict[str, np.ndarray]] = {}
    # every tagger in fp32 and bf16 before any compilation (the slow first calls) starts
    for label, amp, backend in p.modes:
        for name, path in taggers.items():
            if camp.elapsed() >= deadline_s:
                rows.append({"tagger": name, "mode": label, "skipped": "step deadline"})
                continue
            try:
                tagger = get_tagger(path, device, amp, backend=backend)
                arrays = _tile(tagger_inputs(tagger, piece.cands, piece.jets, cache), p.bench_jets)
                for bs in p.batch_sizes:
                    if camp.elapsed() >= deadline_s:
                        rows.append({"tagger": name, "mode": label, "batch": bs, "skipped": "step deadline"})
                        continue
                    t_warm = time.perf_counter()
                    tagger.predict({k: v[: 2 * bs] for k, v in arrays.items()}, batch_size=bs)
                    warm_s = time.perf_counter() - t_warm
                    best = float("inf")
                    for _ in range(p.repeats):
                        t0 = time.perf_counter()
                        tagger.predict(arrays, batch_size=bs)
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()
                        best = min(best, time.perf_counter() - t0)
                    rows.append({"tagger": name, "mode": label, "batch": bs, "jets": p.bench_jets,
                                 "jets_per_s": p.bench_jets / best, "first_call_s": round(warm_s, 2),
                                 "backend": tagger.backend})
                    camp.log(f"model stage {name} {label} bs={bs}: {p.bench_jets / best:,.0f} jets/s")
            except Exception as err:  # noqa: BLE001 - one mode failing (e.g. compile) is a result
                rows.append({"tagger": name, "mode": label, "error": f"{type(err).__name__}: {err}"[:500]})
                camp.log(f"model stage {name} {label}: FAILED {type(err).__name__}: {str(err)[:200]}")
            camp.record("model_stage", {"rows": rows})
    best: dict[str, float] = {}
    for r in rows:
        if "jets_per_s" in r:
            best[r["tagger"]] = max(best.get(r["tagger"], 0.0), r["jets_per_s"])
    fast = {k: v for k, v in best.items() if k in ("pfn", "cnn", "lstm")}
    return {"rows": rows, "device": device, "best_jets_per_s": best,
            "jets_source": f"{len(piece)} generated training jets tiled to {p.bench_jets}",
            "targets": {
                "particlenet_jets_per_s": {"value": best.get("particlenet"), "target": TARGETS["particlenet_jets_per_s"],
                                           "met": best.get("particlenet", 0) >= TARGETS["particlenet_jets_per_s"]},
                "pfn_cnn_lstm_jets_per_s": {"value": fast, "target": TARGETS["pfn_cnn_lstm_jets_per_s"],
                                            "met": bool(fast) and min(fast.values()) >= TARGETS["pfn_cnn_lstm_jets_per_s"]},
            }}
