"""All benchmarks in one command: JSON + a markdown table, nothing committed.

    python benchmarks/run_all.py [--quick] [--out benchmarks/results]
    python benchmarks/run_all.py --gpu-only --out DIR      # the GPU parts (benchmarks/gpu.sh)

Sections (all on the generated PFNano files, by default ``data/train/ttbar_101.root``
and ``data/train/qcd_201.root``; jets = fat jets passing ``Selection()`` with valid
constituents, i.e. exactly what the processor scores):

1. representations: jets/s on one core of ``build_sequence``/``build_pointcloud``/
   ``build_image`` and of coffea's recipe on the same real jets (the functions of
   ``benchmarks/bench_representations.py``), plus the shipped taggers' specs;
2. model stage: jets/s of each shipped tagger through ``inference.engine.predict`` at
   batch sizes 64/256/1024, CPU fp32, torch threads 1 and 2; with CUDA also fp32 vs
   bf16 autocast vs ``torch.compile`` (and full-size ParticleNet, random weights);
3. our inference path vs ``coffea.ml_tools.torch_wrapper``: the same TorchScript model
   (shipped particlenet-lite and pfn, ``torch.jit.script`` -> ``import_torchscript``),
   the same events, selection, chunksize and threads, both through the coffea Runner
   (IterativeExecutor): events/s, ratio, max |score difference| per jet;
4. end-to-end ``TaggerProcessor`` events/s, all shipped taggers vs no tagging
   (``taggers=[]``), ``run_fileset(executor="dask")`` with 1 and 2 LocalCluster workers;
5. peak resident memory of a worker process running the processor with all taggers on
   one chunk of 10k and of 50k events (a fresh subprocess per size;
   ``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

Torch, numba and BLAS run with one thread unless a section says otherwise.  Before the
results it records the machine (CPU model, cores, memory, GPU), the versions and the
load average at start and end (the machine may be shared).  ``--quick`` uses small sizes
(< 2 min); ``--sections 1,3`` runs a subset; ``--artifacts DIR`` takes the taggers from
DIR instead of the shipped ones (e.g. stand-ins from ``benchmarks/_standins.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

# pins NUMBA / OMP / MKL / OPENBLAS threads to 1 and torch to 1 thread (as the colleague's
# representation benchmark does); sections that want more threads set them explicitly
import bench_representations as BR  # noqa: E402

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore", message="Missing cross-reference")
warnings.filterwarnings("ignore", category=FutureWarning)

import hepml_coffea.representations as R  # noqa: E402
from hepml_coffea.artifacts import import_torchscript, load_artifact, shipped_taggers  # noqa: E402
from hepml_coffea.constituents import fatjet_constituents  # noqa: E402
from hepml_coffea.inference.engine import predict  # noqa: E402
from hepml_coffea.io import read_arrays  # noqa: E402
from hepml_coffea.processor import DEFAULT_TAGGERS  # noqa: E402
from hepml_coffea.selection import Selection  # noqa: E402

TARGETS = {
    "repr_particles": 150_000,   # sequences & point clouds, jets/s/core
    "repr_image": 100_000,       # images, jets/s/core
    "vs_torch_wrapper": 2.0,     # ours / torch_wrapper events/s on CPU, identical scores
    "dask_scaling": 1.8,         # 2 workers / 1 worker
    "rss_50k_gb": 1.5,           # worker peak RSS at 50k-event chunks
    "gpu_particlenet": 250_000,  # full ParticleNet jets/s on H200
    "gpu_fast": 1_000_000,       # PFN / CNN / LSTM jets/s on H200
    "gpu_tagging_fraction": 0.10,
}
SCORE_ATOL = 1e-5
#: HEPML_BENCH_GPU_DRYRUN=1 runs the GPU code paths on the CPU with tiny sizes (a smoke test
#: of this script where there is no GPU; the figures mean nothing)
DRYRUN = os.environ.get("HEPML_BENCH_GPU_DRYRUN") == "1"
GPU_DEV = "cpu" if DRYRUN else "cuda"


#: (batch sizes, repeats, jets per measurement) of the GPU model stage
GPU_SIZES = ([64], 1, 64) if DRYRUN else ([1024, 4096, 16384], 3, 65536)


def _sync() -> None:
    if not DRYRUN:
        torch.cuda.synchronize()


def _gpu_name() -> str:
    return "cpu (dry run)" if DRYRUN else torch.cuda.get_device_name(0)


# ---------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------
def _cpu_model() -> str:
    return BR._cpu_model()


def machine_info() -> dict[str, Any]:
    import psutil

    gpu = torch.cuda.is_available()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "gpu": gpu,
        "gpu_name": torch.cuda.get_device_name(0) if gpu else None,
        "gpu_count": torch.cuda.device_count() if gpu else 0,
    }


def versions() -> dict[str, str]:
    import coffea
    import dask
    import distributed
    import numba
    import uproot

    return {
        "python": platform.python_version(), "torch": torch.__version__, "coffea": coffea.__version__,
        "dask": dask.__version__, "distributed": distributed.__version__, "awkward": ak.__version__,
        "numba": numba.__version__, "numpy": np.__version__, "uproot": uproot.__version__,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def resolve_taggers(artifacts: str | None) -> tuple[dict[str, str], list[str]]:
    """name -> artifact path (shipped, or from ``--artifacts``), and the missing names."""
    if artifacts:
        root = Path(artifacts)
        found = {p.name: str(p) for p in sorted(root.iterdir()) if (p / "manifest.json").is_file()}
    else:
        found = {k: str(v) for k, v in shipped_taggers().items()}
    ordered = {n: found[n] for n in DEFAULT_TAGGERS if n in found}
    ordered.update({n: p for n, p in found.items() if n not in ordered})
    missing = [n for n in DEFAULT_TAGGERS if n not in found]
    return ordered, missing


def load_jets(files: list[str], max_events: int | None = None) -> tuple[ak.Array, ak.Array]:
    """Selected, valid fat jets and their constituents (what the processor scores)."""
    cands, jets = [], []
    sel = Selection()
    for f in files:
        ev = read_arrays(f, entry_stop=max_events)
        jc = fatjet_constituents(ev)
        jc = jc.select(sel.mask(jc) & jc.valid)
        cands.append(jc.cands)
        jets.append(jc.jets)
    return ak.concatenate(cands), ak.concatenate(jets)


def write_events(sources: list[tuple[str, int, int]], dst: str | Path) -> int:
    """Concatenate entry ranges of PFNano files into one uncompressed TTree file.

    Collections keep their NanoAOD layout (``nX`` counter + ``X_field`` branches), so
    coffea's PFNanoAODSchema reads the result like the originals.  Returns the entries.
    """
    import uproot

    parts = []
    for path, a, b in sources:
        with uproot.open(path) as f:
            parts.append(f["Events"].arrays(entry_start=a, entry_stop=b, how=dict))
    keys = list(parts[0])
    cat = {k: ak.concatenate([p[k] for p in parts]) for k in keys}
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for k in keys:
        pre = k.split("_", 1)[0]
        if "_" in k and f"n{pre}" in cat:
            groups.setdefault(pre, {})[k.split("_", 1)[1]] = cat[k]
        elif not (k.startswith("n") and k[1:] in {kk.split("_", 1)[0] for kk in keys if "_" in kk}):
            out[k] = cat[k]
    for pre, fields in groups.items():
        out[pre] = ak.zip(fields)
    out = {k: (np.asarray(ak.to_numpy(v)) if v.ndim == 1 and not ak.fields(v) else v) for k, v in out.items()}
    n = len(cat[keys[0]])
    with uproot.recreate(dst, compression=None) as f:  # a TTree as the generator writes (mktree + extend)
        types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content) for k, v in out.items()}
        tree = f.mktree("Events", types)
        for a in range(0, max(n, 1), 10000):
            tree.extend({k: v[a:a + 10000] for k, v in out.items()})
    return n


def _best(fn: Any, repeats: int) -> float:
    return BR._best(fn, repeats)


# ---------------------------------------------------------------------------
# 1. representations
# ---------------------------------------------------------------------------
def section_representations(cands: ak.Array, jets: ak.Array, repeats: int, source: str) -> dict[str, Any]:
    from hepml_coffea.training.dataset import standard_spec

    set_threads(1)
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
    timings = {"coffea_recipe": _best(lambda: BR.coffea_recipe(cands, jets), max(2, repeats // 2))}
    for name, s in specs.items():
        timings[name] = _best(lambda s=s: R.build(cands, jets, s), repeats)
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


# ---------------------------------------------------------------------------
# 2. model stage
# ---------------------------------------------------------------------------
def _inputs_for(art: Any, cands: ak.Array, jets: ak.Array) -> list[np.ndarray]:
    built = R.build(cands, jets, art.spec)
    return [built[k] for k in art.input_names]


def _rate(fn: Any, n: int, repeats: int) -> float:
    return n / _best(fn, repeats)


def section_model_cpu(taggers: dict[str, str], cands: ak.Array, jets: ak.Array, batch_sizes: list[int],
                      threads: list[int], target_s: float, repeats: int) -> dict[str, Any]:
    rows = []
    n_all = len(jets)
    for name, path in taggers.items():
        art = load_artifact(path)
        if art.input_kind == "observables":
            msd = np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64)
            t2 = np.asarray(ak.to_numpy(jets.tau2), dtype=np.float64)
            t3 = np.asarray(ak.to_numpy(jets.tau3), dtype=np.float64)
            tau32 = np.divide(t3, t2, out=np.zeros_like(t3), where=t2 > 0)
            set_threads(1)
            r = _rate(lambda: art.model.score(msd, tau32), n_all, repeats)
            rows.append({"tagger": name, "device": "cpu", "precision": "fp64 (numpy)", "threads": 1,
                         "batch_size": n_all, "n_jets": n_all, "jets_per_s": r})
            log(f"  model {name}: {r:,.0f} jets/s")
            continue
        model = art.model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        inputs = _inputs_for(art, cands, jets)
        for th in threads:
            set_threads(th)
            for bs in batch_sizes:
                # calibrate: one batch, then enough jets for ~target_s per repeat
                m = min(bs, n_all)
                predict(model, [a[:m] for a in inputs], batch_size=bs)
                t0 = time.perf_counter()
                predict(model, [a[:m] for a in inputs], batch_size=bs)
                est = m / max(time.perf_counter() - t0, 1e-6)
                n = int(min(n_all, max(m, est * target_s)))
                sub = [a[:n] for a in inputs]
                r = _rate(lambda sub=sub, bs=bs: predict(model, sub, batch_size=bs), n, repeats)
                rows.append({"tagger": name, "device": "cpu", "precision": "fp32", "threads": th,
                             "batch_size": bs, "n_jets": n, "jets_per_s": r})
                log(f"  model {name} threads={th} bs={bs}: {r:,.0f} jets/s ({n} jets)")
    set_threads(1)
    return {"rows": rows, "note": "engine.predict on prebuilt numpy inputs (torch.inference_mode, fp32); "
                                  "jets/s of the whole process (threads = torch intra-op threads)"}


def section_model_gpu(taggers: dict[str, str], cands: ak.Array, jets: ak.Array, batch_sizes: list[int],
                      repeats: int, min_jets: int = 65536) -> dict[str, Any]:
    """fp32 vs bf16 autocast vs torch.compile on CUDA, plus CPU-vs-GPU fp32 agreement."""
    from hepml_coffea.models import build_model
    from hepml_coffea.training.dataset import standard_spec

    dev = GPU_DEV
    models: dict[str, tuple[Any, list[np.ndarray], str]] = {}
    for name, path in taggers.items():
        art = load_artifact(path)
        if art.input_kind == "observables":
            continue
        models[name] = (art.model, _inputs_for(art, cands, jets), "shipped artifact")
    if "particlenet" not in models:  # full size: not shipped; speed does not depend on weights
        torch.manual_seed(1)
        spec = standard_spec("pointcloud")
        built = R.build(cands, jets, spec)
        models["particlenet (full)"] = (build_model("particlenet").eval(),
                                        [built[k] for k in ("points", "features", "mask")], "registry, random weights")
    rows, agree = [], []
    for name, (model, inputs, origin) in models.items():
        model = model.to(dev).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        reps = max(1, -(-min_jets // len(inputs[0])))
        big = [np.ascontiguousarray(np.concatenate([a] * reps)[:min_jets]) for a in inputs]
        n = len(big[0])
        # CPU vs GPU fp32 agreement (TF32 as torch defaults, and with TF32 off)
        k = min(128 if DRYRUN else 4096, len(inputs[0]))
        cpu_model = model.to("cpu")
        set_threads(max(1, os.cpu_count() or 1))
        ref = predict(cpu_model, [a[:k] for a in inputs], batch_size=1024)
        set_threads(1)
        model = cpu_model.to(dev)
        for tf32 in (True, False):
            old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = tf32 and old[0]
            torch.backends.cudnn.allow_tf32 = tf32 and old[1]
            got = predict(model, [a[:k] for a in inputs], device=dev, batch_size=1024)
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
            d = float(np.max(np.abs(got - ref)))
            agree.append({"tagger": name, "tf32_defaults": tf32, "n_jets": k, "max_abs_diff": d, "ok": d <= SCORE_ATOL})
        variants: list[tuple[str, Any, str | None]] = [("fp32", model, None), ("bf16 autocast", model, "bf16")]
        try:
            compiled = torch.compile(model)
            variants += [("fp32 torch.compile", compiled, None), ("bf16 torch.compile", compiled, "bf16")]
        except Exception as err:  # noqa: BLE001
            rows.append({"tagger": name, "precision": "torch.compile", "error": f"{type(err).__name__}: {err}"[:300]})
        for label, m, amp in variants:
            for bs in batch_sizes:
                try:
                    predict(m, big, device=dev, batch_size=bs, amp=amp)  # warm-up / compile (all shapes)
                    _sync()
                    r = _rate(lambda m=m, bs=bs, amp=amp: predict(m, big, device=dev, batch_size=bs, amp=amp), n, repeats)
                    rows.append({"tagger": name, "origin": origin, "device": _gpu_name(),
                                 "precision": label, "batch_size": bs, "n_jets": n, "jets_per_s": r})
                    log(f"  gpu {name} {label} bs={bs}: {r:,.0f} jets/s")
                except Exception as err:  # noqa: BLE001
                    rows.append({"tagger": name, "precision": label, "batch_size": bs,
                                 "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]})
                    log(f"  gpu {name} {label} bs={bs}: FAILED {type(err).__name__}")
        model.to("cpu")
        if not DRYRUN:
            torch.cuda.empty_cache()
    best = {}
    for r in rows:
        if "jets_per_s" in r:
            best[r["tagger"]] = max(best.get(r["tagger"], 0.0), r["jets_per_s"])
    pn = best.get("particlenet (full)", best.get("particlenet"))
    fast = {k: v for k, v in best.items() if k in ("pfn", "cnn", "lstm")}
    return {
        "rows": rows, "agreement": agree,
        "note": "engine.predict incl. host->device copies from pinned buffers and scores back to the host",
        "targets": {
            "particlenet_full_jets_per_s": {"value": pn, "target": TARGETS["gpu_particlenet"],
                                            "met": pn is not None and pn >= TARGETS["gpu_particlenet"]},
            "pfn_cnn_lstm_jets_per_s": {"value": fast, "target": TARGETS["gpu_fast"],
                                        "met": bool(fast) and min(fast.values()) >= TARGETS["gpu_fast"]},
            "cpu_gpu_fp32_agreement": {"value": max((a["max_abs_diff"] for a in agree if a["tf32_defaults"]), default=None),
                                       "target": SCORE_ATOL, "met": all(a["ok"] for a in agree if a["tf32_defaults"])},
        },
    }


# ---------------------------------------------------------------------------
# 3. ours vs coffea.ml_tools.torch_wrapper
# ---------------------------------------------------------------------------
def _runner(chunksize: int, maxchunks: int | None = None) -> Any:
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    return processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                            chunksize=chunksize, savemetrics=False, maxchunks=maxchunks)


def _timed_run(fileset: dict[str, list[str]], proc: Any, chunksize: int) -> tuple[float, Any]:
    runner = _runner(chunksize)
    t0 = time.perf_counter()
    out = runner(fileset, proc, treename="Events")
    return time.perf_counter() - t0, out


def section_vs_torch_wrapper(taggers: dict[str, str], fileset: dict[str, list[str]], chunksize: int,
                             repeats: int, workdir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from coffea_recipe import CoffeaRecipeProcessor, RecipeWrapper
    from hepml_coffea.inference.engine import clear_cache
    from hepml_coffea.processor import TaggerProcessor

    set_threads(1)
    n_events = 0
    import uproot

    for files in fileset.values():
        for f in files:
            with uproot.open(f) as fh:
                n_events += fh["Events"].num_entries
    results = []
    for name in ("particlenet-lite", "pfn"):
        if name not in taggers:
            results.append({"model": name, "skipped": "artifact not available"})
            continue
        art = load_artifact(taggers[name])
        ts = workdir / f"{name}.ts"
        torch.jit.script(art.model.eval()).save(str(ts))
        byo = workdir / f"byo-{name}"
        import_torchscript(ts, art.spec, byo, name=f"byo-{name}")
        spec = art.spec.to_dict()
        # warm-up both paths on one chunk (numba cache load, first imports)
        _runner(chunksize, maxchunks=1)(fileset, TaggerProcessor(taggers=[byo], device="cpu"), treename="Events")
        _runner(chunksize, maxchunks=1)(fileset, CoffeaRecipeProcessor(str(ts), spec, keep_scores=False), treename="Events")
        t_ours, t_coffea = [], []
        loads_before = RecipeWrapper.loads
        for _ in range(repeats):  # alternate, best of N
            clear_cache()  # our engine loads the model once per process: count that load too
            t, out_ours = _timed_run(fileset, TaggerProcessor(taggers=[byo], device="cpu"), chunksize)
            t_ours.append(t)
            t, out_coffea = _timed_run(fileset, CoffeaRecipeProcessor(str(ts), spec, keep_scores=False), chunksize)
            t_coffea.append(t)
        loads = (RecipeWrapper.loads - loads_before) / repeats
        # per-jet equality: one more run of each keeping per-jet scores
        sdir = workdir / f"scores-{name}"
        shutil.rmtree(sdir, ignore_errors=True)
        _runner(chunksize)(fileset, TaggerProcessor(taggers=[byo], device="cpu", save_scores=sdir), treename="Events")
        ref = _runner(chunksize)(fileset, CoffeaRecipeProcessor(str(ts), spec, keep_scores=True), treename="Events")
        ours: dict[tuple[str, int, int], float] = {}
        for p in sdir.glob("*.parquet"):
            ds = p.name.split("_", 1)[0]
            tab = pq.read_table(p).to_pydict()
            for e, j, s in zip(tab["event_index"], tab["jet_index"], tab[f"score_byo-{name}"]):
                ours[(ds, int(e), int(j))] = float(s)
        theirs = {}
        for ds, o in ref.items():
            for e, j, s in zip(o["entry"], o["jet"], o["score"]):
                theirs[(ds, int(e), int(j))] = float(s)
        common = sorted(set(ours) & set(theirs))
        diffs = np.array([abs(ours[k] - theirs[k]) for k in common])
        diff = float(diffs.max()) if len(diffs) else float("nan")
        # the model alone: identical inputs (our builder's) through the wrapper and through our engine
        from coffea.ml_tools.torch_wrapper import torch_wrapper
        from hepml_coffea.io import load_events

        class _Ready(torch_wrapper):  # type: ignore[misc]
            def prepare_awkward(self, *arrays: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
                return arrays, {}

        first = next(iter(fileset.values()))[0]
        evs = load_events(first, entry_stop=chunksize)
        jc = fatjet_constituents(evs)
        jc = jc.select(Selection().mask(jc) & jc.valid)
        built = R.build(jc.cands, jc.jets, art.spec)
        arrays = [built[k] for k in art.input_names]
        logits = np.asarray(ak.to_numpy(_Ready(str(ts))(*[ak.Array(a) for a in arrays])), dtype=np.float32)
        ref_m = torch.softmax(torch.from_numpy(logits), dim=1)[:, 1].numpy()
        got_m = predict(load_artifact(byo).model, arrays, batch_size=1024)
        model_only = float(np.max(np.abs(ref_m - got_m))) if len(ref_m) else float("nan")
        # the inputs: coffea recipe vs our builder on the same jets
        fj = evs.FatJet
        pf = fj.constituents.pf
        sel = (fj.pt > 550) & (fj.pt < 650) & (abs(fj.eta) < 2) & (ak.num(pf, axis=2) > 0)
        rec, _ = RecipeWrapper(str(ts), spec).prepare_awkward(ak.flatten(fj[sel]), ak.flatten(pf[sel], axis=1))
        input_diff = {k: float(np.max(np.abs(np.asarray(ak.to_numpy(r)) - a))) if len(a) else 0.0
                      for k, r, a in zip(art.input_names, rec, arrays)}
        jets_ours = sum(int(v["cutflow"]["scored"]) for v in out_ours.values())
        jets_coffea = sum(int(v["jets"]) for v in out_coffea.values())
        eo, ec = n_events / min(t_ours), n_events / min(t_coffea)
        row = {
            "model": name, "artifact": f"byo-{name} (TorchScript via import_torchscript)", "events": n_events,
            "chunksize": chunksize, "jets_ours": jets_ours, "jets_torch_wrapper": jets_coffea,
            "seconds_ours": min(t_ours), "seconds_torch_wrapper": min(t_coffea),
            "all_seconds_ours": t_ours, "all_seconds_torch_wrapper": t_coffea,
            "events_per_s_ours": eo, "events_per_s_torch_wrapper": ec, "ratio": eo / ec,
            "stage_seconds_ours": {k: sum(v["timing"][k] for v in out_ours.values()) for k in
                                   next(iter(out_ours.values()))["timing"]},
            "torch_wrapper_model_loads_per_run": loads,
            "jets_compared": len(common), "jets_only_ours": len(set(ours) - set(theirs)),
            "jets_only_torch_wrapper": len(set(theirs) - set(ours)), "max_abs_score_diff": diff,
            "jets_with_diff_above_1e-5": int((diffs > SCORE_ATOL).sum()),
            "median_abs_score_diff": float(np.median(diffs)) if len(diffs) else float("nan"),
            "model_only_max_abs_diff": model_only, "model_only_jets": len(ref_m),
            "max_abs_input_diff_recipe_vs_ours": input_diff,
            "scores_equal": bool(common) and len(common) == len(ours) == len(theirs) and diff <= SCORE_ATOL,
        }
        results.append(row)
        log(f"  {name}: ours {eo:,.0f} ev/s, torch_wrapper {ec:,.0f} ev/s, ratio {eo / ec:.2f}, "
            f"max|diff| {diff:.2g} over {len(common)} jets ({row['jets_with_diff_above_1e-5']} above 1e-5); "
            f"model only {model_only:.2g}; inputs {input_diff}")
    rows = [r for r in results if "ratio" in r]
    return {
        "rows": results,
        "setup": "coffea Runner + IterativeExecutor, PFNanoAODSchema, same files/chunksize, torch threads 1, "
                 f"best of {repeats} alternating runs after one warm-up chunk each; ours = TaggerProcessor with the "
                 "BYO artifact (also computes truth labels, cutflow and 5-axis + working-point histograms); "
                 "torch_wrapper = benchmarks/coffea_recipe.py (1-axis score histogram)",
        "targets": {"ours_vs_torch_wrapper": {
            "value": {r["model"]: r["ratio"] for r in rows}, "target": TARGETS["vs_torch_wrapper"],
            "met": bool(rows) and all(r["ratio"] >= TARGETS["vs_torch_wrapper"] and r["scores_equal"] for r in rows)}},
    }


# ---------------------------------------------------------------------------
# 4. end-to-end on Dask
# ---------------------------------------------------------------------------
def _wall(report: str) -> float:
    m = re.search(r"wall time ([0-9.]+) s", report)
    return float(m.group(1)) if m else float("nan")


def section_dask(taggers: dict[str, str], fileset: dict[str, list[str]], chunksize: int,
                 workers_list: list[int]) -> dict[str, Any]:
    import contextlib
    import io

    from hepml_coffea.processor import TaggerProcessor
    from hepml_coffea.run import make_cluster, run_fileset

    import uproot

    n_events = sum(uproot.open(f)["Events"].num_entries for files in fileset.values() for f in files)
    paths = list(taggers.values())
    rows = []
    for w in workers_list:
        cluster, client = make_cluster("dask", w, "127.0.0.1:0")
        try:
            client.wait_for_workers(w)
            runs = [("no tagging (cold workers)", []), ("all taggers", paths), ("no tagging", [])]
            for label, tg in runs:
                proc = TaggerProcessor(taggers=tg, device="cpu")
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    res = run_fileset(fileset, executor="dask", workers=w, client=client, processor_instance=proc,
                                      chunksize=chunksize, status=False, dashboard_address="127.0.0.1:0")
                wall = _wall(res["report"])
                timing: dict[str, float] = {}
                jets = 0
                for ds, v in res.items():
                    if isinstance(v, dict) and "timing" in v:
                        for k, s in v["timing"].items():
                            timing[k] = timing.get(k, 0.0) + s
                        jets += int(v["cutflow"]["scored"])
                rows.append({"workers": w, "run": label, "taggers": [Path(p).name for p in tg], "events": n_events,
                             "jets": jets, "wall_s": wall, "events_per_s": n_events / wall,
                             "stage_seconds": timing})
                log(f"  dask workers={w} {label}: {n_events / wall:,.0f} events/s (wall {wall:.1f} s)")
        finally:
            client.close()
            cluster.close()

    def rate(w: int, run: str) -> float | None:
        return next((r["events_per_s"] for r in rows if r["workers"] == w and r["run"] == run), None)

    out: dict[str, Any] = {"rows": rows, "chunksize": chunksize, "fileset": fileset,
                           "setup": "run_fileset(executor='dask', client=LocalCluster(n_workers=N, threads_per_worker=1)); "
                                    "wall = the Runner's wall time reported by run_fileset (cluster start and "
                                    "model warm-up plugin excluded); the first no-tagging run warms the fresh workers"}
    if 1 in workers_list and 2 in workers_list:
        s_tag = (rate(2, "all taggers") or 0) / (rate(1, "all taggers") or float("nan"))
        s_none = (rate(2, "no tagging") or 0) / (rate(1, "no tagging") or float("nan"))
        out["scaling_2_vs_1"] = {"all taggers": s_tag, "no tagging": s_none}
        out["targets"] = {"dask_scaling_2_vs_1": {"value": s_tag, "target": TARGETS["dask_scaling"],
                                                   "met": s_tag >= TARGETS["dask_scaling"]}}
    for w in workers_list:
        a, b = rate(w, "all taggers"), rate(w, "no tagging")
        if a and b:
            out.setdefault("tagging_cost", {})[str(w)] = {"events_per_s_all": a, "events_per_s_none": b,
                                                          "slowdown": b / a}
    return out


# ---------------------------------------------------------------------------
# 5. memory
# ---------------------------------------------------------------------------
MEM_SNIPPET = r"""
import json, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from hepml_coffea.processor import TaggerProcessor
from hepml_coffea.inference.engine import get_tagger
import psutil
paths = json.loads({paths!r})
proc = TaggerProcessor(taggers=paths, device="cpu")
for p in paths:
    get_tagger(p, "cpu")          # a Dask worker loads these at start (TaggerWarmup)
me = psutil.Process()
def hwm():  # this process image's peak RSS (VmHWM; ru_maxrss would carry the forking parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
before = me.memory_info().rss
peak_before = hwm()
try:  # reset the high-water mark to the current RSS, so the peak below is the chunk's
    open("/proc/self/clear_refs", "w").write("5")
    reset = True
except OSError:
    reset = False
runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                          chunksize={chunksize}, maxchunks=1, savemetrics=False)
t0 = time.perf_counter()
out = runner({{"mixed": [{file!r}]}}, proc, treename="Events")
wall = time.perf_counter() - t0
v = out["mixed"]
print("RESULT " + json.dumps({{"events": v["cutflow"]["events"], "jets": v["cutflow"]["scored"],
      "rss_after_models_bytes": before, "peak_before_chunk_bytes": peak_before, "hwm_reset": reset,
      "peak_rss_bytes": max(hwm(), peak_before),
      "peak_during_chunk_bytes": hwm() if reset else None,
      "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "rss_end_bytes": me.memory_info().rss, "wall_s": wall, "timing": v["timing"]}}))
"""


def section_memory(taggers: dict[str, str], mem_file: str, chunk_sizes: list[int]) -> dict[str, Any]:
    rows = []
    for cs in chunk_sizes:
        code = MEM_SNIPPET.format(root=str(ROOT), paths=json.dumps(list(taggers.values())), chunksize=cs, file=mem_file)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=1800)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            rows.append({"chunk_events": cs, "error": (p.stderr or p.stdout)[-800:]})
            log(f"  memory chunk={cs}: FAILED")
            continue
        r = json.loads(line[7:])
        r["chunk_events"] = cs
        r["peak_rss_gb"] = r["peak_rss_bytes"] / 2**30
        r["chunk_increment_gb"] = ((r["peak_during_chunk_bytes"] or r["peak_rss_bytes"]) - r["rss_after_models_bytes"]) / 2**30
        rows.append(r)
        log(f"  memory chunk={cs}: {r['events']} events, peak RSS {r['peak_rss_gb']:.2f} GB "
            f"(models loaded: {r['rss_after_models_bytes'] / 2**30:.2f} GB)")
    big = [r for r in rows if r.get("chunk_events") == max(chunk_sizes) and "peak_rss_gb" in r]
    out = {"rows": rows, "file": mem_file,
           "setup": "fresh python process per chunk size: TaggerProcessor(all taggers, device='cpu'), models loaded "
                    "into the engine cache first (as TaggerWarmup does on a Dask worker), then coffea Runner + "
                    "IterativeExecutor on ONE chunk of exactly that many events (maxchunks=1) of a PFNano file "
                    "concatenated from the generated ttbar and QCD files (NanoEvents, PFNanoAODSchema); peak RSS = "
                    "VmHWM of the whole process (python + torch + models + chunk); the high-water mark is reset "
                    "(/proc/self/clear_refs) after the models are loaded, so the peak is the maximum of the start-up "
                    "peak and the peak while the chunk runs; 'increase' = chunk peak - RSS with models loaded"}
    if big and max(chunk_sizes) >= 50000:
        v = big[0]["peak_rss_gb"]
        out["targets"] = {"peak_rss_50k_gb": {"value": v, "target": TARGETS["rss_50k_gb"],
                                              "met": v <= TARGETS["rss_50k_gb"]}}
    return out


# ---------------------------------------------------------------------------
# GPU processor (--gpu-only / full runs with CUDA)
# ---------------------------------------------------------------------------
def section_gpu_processor(taggers: dict[str, str], fileset: dict[str, list[str]], chunksize: int) -> dict[str, Any]:
    from hepml_coffea.processor import TaggerProcessor

    import uproot

    n_events = sum(uproot.open(f)["Events"].num_entries for files in fileset.values() for f in files)
    rows = []
    for dev, amp in (("cpu", None), (GPU_DEV, None), (GPU_DEV, "bf16")):
        set_threads(1)
        proc = TaggerProcessor(taggers=list(taggers.values()), device=dev, amp=amp)
        _runner(chunksize, maxchunks=1)(fileset, proc, treename="Events")  # warm-up
        t, out = _timed_run(fileset, proc, chunksize)
        timing: dict[str, float] = {}
        for v in out.values():
            for k, s in v["timing"].items():
                timing[k] = timing.get(k, 0.0) + s
        rows.append({"executor": "iterative", "device": dev, "amp": amp, "events": n_events, "wall_s": t,
                     "events_per_s": n_events / t, "stage_seconds": timing,
                     "infer_fraction_of_wall": timing.get("infer", 0.0) / t})
        log(f"  processor {dev} {amp or 'fp32'}: {n_events / t:,.0f} events/s, infer {timing.get('infer', 0):.2f} s")
    dask_cuda: dict[str, Any]
    try:
        import contextlib
        import io

        import dask_cuda  # noqa: F401

        from hepml_coffea.run import run_fileset

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            res = run_fileset(fileset, executor="dask-cuda", taggers=list(taggers.values()), chunksize=chunksize,
                              status=False, dashboard_address="127.0.0.1:0", device="auto")
        wall = _wall(res["report"])
        timing = {}
        for v in res.values():
            if isinstance(v, dict) and "timing" in v:
                for k, s in v["timing"].items():
                    timing[k] = timing.get(k, 0.0) + s
        n_workers = max(1, torch.cuda.device_count())
        frac = timing.get("infer", 0.0) / (wall * n_workers)
        dask_cuda = {"events": n_events, "wall_s": wall, "events_per_s": n_events / wall, "stage_seconds": timing,
                     "workers": n_workers, "infer_fraction_of_wall": frac,
                     "note": "includes first-chunk warm-up on the fresh worker"}
        log(f"  dask-cuda: {n_events / wall:,.0f} events/s, tagging {100 * frac:.1f} % of wall")
    except Exception as err:  # noqa: BLE001
        dask_cuda = {"error": f"{type(err).__name__}: {err}"[:300]}
    frac = dask_cuda.get("infer_fraction_of_wall")
    return {"rows": rows, "dask_cuda": dask_cuda, "chunksize": chunksize,
            "targets": {"tagging_fraction_dask_cuda": {"value": frac, "target": TARGETS["gpu_tagging_fraction"],
                                                       "met": frac is not None and frac <= TARGETS["gpu_tagging_fraction"]}}}


# ---------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------
def _fmt(x: Any, nd: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:
            return "nan"
        return f"{x:,.{nd}f}"
    return str(x)


def _met(t: dict[str, Any] | None) -> str:
    if t is None:
        return "not measured"
    return "**met**" if t.get("met") else "**not met**"


def to_markdown(res: dict[str, Any]) -> str:
    m, v = res["machine"], res["versions"]
    L = [f"# hepml_coffea benchmarks{' (quick mode)' if res['quick'] else ''}", "",
         f"{res['date']} - {m['cpu_model']}, {m['logical_cores']} logical cores "
         f"({m['physical_cores']} physical), {m['memory_gb']} GB RAM, "
         f"GPU: {m['gpu_name'] if m['gpu'] else 'none found (torch.cuda.is_available() is False)'}.",
         f"Load average (1/5/15 min) at start {res['loadavg_start']}, at end {res['loadavg_end']}"
         f"{' - the machine was shared (busy) during the run' if res.get('shared') else ''}.",
         "", "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".",
         "Taggers: " + ", ".join(
             f"{k} ({'STAND-IN: random weights, same architecture and input spec' if k in res.get('standins', []) else Path(p).parent.name + '/' + Path(p).name})"
             for k, p in res["taggers"].items())
         + (f"; not shipped yet when this ran: {', '.join(res['taggers_missing'])}" if res["taggers_missing"] else "") + ".",
         f"Total benchmark time {res['total_seconds']:.0f} s.", ""]
    L += ["## Targets", "", "| target | value | threshold | status |", "| --- | ---: | ---: | --- |"]
    for row in res["targets_table"]:
        if res.get("gpu_only") and not row["target"].startswith("GPU"):
            continue
        L.append(f"| {row['target']} | {row['value']} | {row['threshold']} | {row['status']} |")
    L.append("")
    s = res["sections"]
    if "representations" in s and "error" not in s["representations"]:
        r = s["representations"]
        i = r["input"]
        L += ["## 1. Representations (1 core)", "",
              f"{i['n_jets']} real jets ({i['source']}), mean {i['mean_constituents']:.1f} constituents, P = 100; "
              f"best of {i['repeats']}; max |sequence - coffea recipe| = {r['check']['max_abs_diff_sequence_vs_recipe']:.3g}.",
              "", "| method | jets/s/core | vs coffea recipe |", "| --- | ---: | ---: |"]
        for row in r["results"]:
            L.append(f"| {row['method']} | {row['jets_per_s']:,.0f} | {row['ratio_vs_recipe']:.1f}x |")
        L.append("")
    if "model_cpu" in s and "error" not in s["model_cpu"]:
        rows = s["model_cpu"]["rows"]
        bss = sorted({r["batch_size"] for r in rows if r["precision"] == "fp32"})
        ths = sorted({r["threads"] for r in rows if r["precision"] == "fp32"})
        L += ["## 2. Model stage, CPU fp32 (jets/s)", "", s["model_cpu"]["note"] + ".", "",
              "| tagger | threads | " + " | ".join(f"bs {b}" for b in bss) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in bss) + " |"]
        names = list(dict.fromkeys(r["tagger"] for r in rows))
        for name in names:
            obs = [r for r in rows if r["tagger"] == name and r["precision"] != "fp32"]
            if obs:
                L.append(f"| {name} (numpy histogram lookup) | 1 | {obs[0]['jets_per_s']:,.0f} (all jets at once) |"
                         + " |" * (len(bss) - 1))
                continue
            for th in ths:
                cells = [next((f"{r['jets_per_s']:,.0f}" for r in rows if r["tagger"] == name and r["threads"] == th
                               and r["batch_size"] == b), "-") for b in bss]
                L.append(f"| {name} | {th} | " + " | ".join(cells) + " |")
        L.append("")
    mp = s.get("malloc_probe")
    if mp and "runs" in mp:
        L += ["### Where the CPU model time goes: page faults of freshly mmapped tensors", "",
              "benchmarks/probe_malloc.py: engine.predict, 1 thread, two fresh processes - glibc defaults vs "
              f"`GLIBC_TUNABLES={mp['tunables']}` (big freed blocks are kept and reused instead of munmapped). "
              "user/sys = CPU seconds of 3 passes; peak = RSS added by the passes; RSS = process RSS before them "
              "(the models run one after another in one process, so the tuned RSS includes what it kept).", "",
              "| tagger | batch | defaults jets/s | user s | sys s | peak +MB | RSS GB | tuned jets/s | user s | sys s | peak +MB | RSS GB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        runs = list(mp["runs"].values())
        if len(runs) == 2 and all(isinstance(r, list) for r in runs):
            for a, b in zip(*runs):
                L.append(f"| {a['tagger']} | {a['batch_size']} | {a['jets_per_s']:,.0f} | {a['user_s']:.2f} | "
                         f"{a['sys_s']:.2f} | {a['peak_added_mb']:.0f} | {a['rss_gb']:.2f} | {b['jets_per_s']:,.0f} | "
                         f"{b['user_s']:.2f} | {b['sys_s']:.2f} | {b['peak_added_mb']:.0f} | {b['rss_gb']:.2f} |")
        L.append("")
    g = s.get("model_gpu")
    L += ["### GPU model stage", ""]
    if g is None or "skipped" in (g or {}):
        L += [f"{(g or {}).get('skipped', 'not measured: no GPU in this session')}", ""]
    elif "error" in g:
        L += [f"failed: {g['error']}", ""]
    else:
        L += ["| tagger | precision | batch | jets/s |", "| --- | --- | ---: | ---: |"]
        for r in g["rows"]:
            L.append(f"| {r['tagger']} | {r['precision']} | {r.get('batch_size', '-')} | "
                     f"{_fmt(r.get('jets_per_s')) if 'jets_per_s' in r else r.get('error', '')} |")
        L += ["", "CPU vs GPU fp32 agreement:", "", "| tagger | TF32 as torch defaults | max abs diff | <= 1e-5 |",
              "| --- | --- | ---: | --- |"]
        for a in g["agreement"]:
            L.append(f"| {a['tagger']} | {a['tf32_defaults']} | {a['max_abs_diff']:.2g} | {a['ok']} |")
        L.append("")
    t = s.get("vs_torch_wrapper")
    if t and "error" not in t:
        L += ["## 3. Our inference path vs coffea.ml_tools.torch_wrapper (CPU, same TorchScript model)", "",
              t["setup"] + ".", "",
              "| model | events | jets | ours ev/s | torch_wrapper ev/s | ratio | max abs score diff (end to end) | "
              "jets > 1e-5 | max abs diff, same inputs (model only) | jets compared | wrapper model loads/run |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in t["rows"]:
            if "ratio" not in r:
                L.append(f"| {r['model']} | skipped: {r.get('skipped')} |" + " |" * 9)
                continue
            L.append(f"| {r['model']} | {r['events']} | {r['jets_ours']} | {r['events_per_s_ours']:,.0f} | "
                     f"{r['events_per_s_torch_wrapper']:,.0f} | {r['ratio']:.2f}x | {r['max_abs_score_diff']:.2g} | "
                     f"{r['jets_with_diff_above_1e-5']} | {r['model_only_max_abs_diff']:.2g} | "
                     f"{r['jets_compared']} | {r['torch_wrapper_model_loads_per_run']:.0f} |")
        L.append("")
        for r in t["rows"]:
            if "stage_seconds_ours" in r:
                st = ", ".join(f"{k} {x:.2f} s" for k, x in r["stage_seconds_ours"].items())
                L.append(f"- {r['model']}: ours {r['seconds_ours']:.2f} s vs torch_wrapper "
                         f"{r['seconds_torch_wrapper']:.2f} s; our stages: {st}; max |recipe input - our input|: "
                         + ", ".join(f"{k} {x:.2g}" for k, x in r["max_abs_input_diff_recipe_vs_ours"].items()) + ".")
        L.append("")
    d = s.get("dask")
    if d and "error" not in d:
        L += ["## 4. End-to-end TaggerProcessor on a Dask LocalCluster (CPU)", "", d["setup"] + f"; chunksize {d['chunksize']}.",
              "", "| workers | run | events | jets | wall [s] | events/s |", "| ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in d["rows"]:
            L.append(f"| {r['workers']} | {r['run']} | {r['events']} | {r['jets']} | {r['wall_s']:.1f} | {r['events_per_s']:,.0f} |")
        L.append("")
        if "scaling_2_vs_1" in d:
            L.append(f"Scaling 2 vs 1 worker: all taggers {d['scaling_2_vs_1']['all taggers']:.2f}x, "
                     f"no tagging {d['scaling_2_vs_1']['no tagging']:.2f}x.")
        for w, c in d.get("tagging_cost", {}).items():
            L.append(f"{w} worker(s): tagging with all taggers is {c['slowdown']:.1f}x slower than no tagging.")
        for r in d["rows"]:
            if r["run"] == "all taggers":
                st = ", ".join(f"{k} {x:.1f} s" for k, x in r["stage_seconds"].items())
                L.append(f"Worker stage time, {r['workers']} worker(s), all taggers: {st}.")
        L.append("")
    mem = s.get("memory")
    if mem and "error" not in mem:
        L += ["## 5. Worker peak memory (all taggers, CPU)", "", mem["setup"] + ".", "",
              "| chunk events | jets | start-up peak [GB] | RSS after models [GB] | peak during chunk [GB] | "
              "worker peak RSS [GB] | increase from the chunk [GB] | wall [s] |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in mem["rows"]:
            if "error" in r:
                L.append(f"| {r['chunk_events']} | failed |" + " |" * 6)
                continue
            pc = r.get("peak_during_chunk_bytes")
            L.append(f"| {r['events']} | {r['jets']} | {r['peak_before_chunk_bytes'] / 2**30:.2f} | "
                     f"{r['rss_after_models_bytes'] / 2**30:.2f} | {(pc / 2**30) if pc else float('nan'):.2f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['chunk_increment_gb']:.2f} | {r['wall_s']:.1f} |")
        L.append("")
    gp = s.get("gpu_processor")
    if gp and "rows" in gp:
        L += ["## GPU processor", "", "| executor | device | amp | events/s | infer s | infer / wall |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
        for r in gp["rows"]:
            L.append(f"| iterative | {r['device']} | {r['amp'] or 'fp32'} | {r['events_per_s']:,.0f} | "
                     f"{r['stage_seconds'].get('infer', 0):.2f} | {100 * r['infer_fraction_of_wall']:.1f} % |")
        dc = gp["dask_cuda"]
        if "events_per_s" in dc:
            L.append(f"| dask-cuda ({dc['workers']} worker) | cuda | fp32 | {dc['events_per_s']:,.0f} | "
                     f"{dc['stage_seconds'].get('infer', 0):.2f} | {100 * dc['infer_fraction_of_wall']:.1f} % |")
        else:
            L.append(f"\ndask-cuda: {dc.get('error')}")
        L.append("")
    errs = {k: v["error"] for k, v in s.items() if isinstance(v, dict) and "error" in v}
    if errs:
        L += ["## Errors", ""] + [f"- {k}: {e.splitlines()[0]}" for k, e in errs.items()] + [""]
    L += ["Reproduce: `python benchmarks/run_all.py` (full) or `--quick`; GPU parts: `bash benchmarks/gpu.sh` on a GPU host.", ""]
    return "\n".join(L)


def targets_table(res: dict[str, Any]) -> list[dict[str, str]]:
    s = res["sections"]
    out = []

    def tgt(sec: str, key: str) -> dict[str, Any] | None:
        return ((s.get(sec) or {}).get("targets") or {}).get(key)

    t = tgt("representations", "particles_jets_per_s_per_core")
    out.append({"target": "sequences & point clouds (jets/s/core, slowest of default and shipped specs)",
                "value": _fmt(t and t["value"]), "threshold": ">= 150,000", "status": _met(t)})
    t = tgt("representations", "image_jets_per_s_per_core")
    out.append({"target": "images (jets/s/core)", "value": _fmt(t and t["value"]), "threshold": ">= 100,000",
                "status": _met(t)})
    t = tgt("vs_torch_wrapper", "ours_vs_torch_wrapper")
    val = ", ".join(f"{k} {x:.2f}x" for k, x in t["value"].items()) if t else "-"
    rows = (s.get("vs_torch_wrapper") or {}).get("rows", [])
    same = all(r.get("scores_equal") for r in rows if "ratio" in r) if rows else None
    detail = "; ".join(f"{r['model']}: max diff {r['max_abs_score_diff']:.2g} end to end, "
                       f"{r['model_only_max_abs_diff']:.2g} on identical inputs" for r in rows if "ratio" in r)
    out.append({"target": "ours vs torch_wrapper, CPU events/s (identical scores)",
                "value": val + ("" if same is None else f"; scores equal within 1e-5: {same} ({detail})"),
                "threshold": ">= 2x", "status": _met(t)})
    t = tgt("dask", "dask_scaling_2_vs_1")
    out.append({"target": "Dask: 2 workers vs 1 (all taggers)", "value": _fmt(t and t["value"], 2) + ("x" if t else ""),
                "threshold": ">= 1.8x", "status": _met(t)})
    t = tgt("memory", "peak_rss_50k_gb")
    out.append({"target": "worker peak RSS, 50k-event chunk, all taggers", "value": _fmt(t and t["value"], 2) + (" GB" if t else ""),
                "threshold": "<= 1.5 GB", "status": _met(t) if t else "not measured (needs full mode)"})
    gpu_note = "not measured: no GPU in this session"
    g = s.get("model_gpu") or {}
    gp = s.get("gpu_processor") or {}
    for key, label, thr, src in (
        ("particlenet_full_jets_per_s", "GPU: full ParticleNet jets/s (H200)", ">= 250,000", g),
        ("pfn_cnn_lstm_jets_per_s", "GPU: PFN / CNN / LSTM jets/s (H200)", ">= 1,000,000", g),
        ("cpu_gpu_fp32_agreement", "GPU: CPU vs GPU fp32 max abs score diff", "<= 1e-5", g),
        ("tagging_fraction_dask_cuda", "GPU: tagging share of wall time, Dask-CUDA", "<= 10 %", gp),
    ):
        t = (src.get("targets") or {}).get(key)
        if t is None:
            out.append({"target": label, "value": "-", "threshold": thr, "status": gpu_note})
            continue
        v = t["value"]
        if isinstance(v, dict):
            v = ", ".join(f"{k} {x:,.0f}" for k, x in v.items())
        elif key == "tagging_fraction_dask_cuda" and v is not None:
            v = f"{100 * v:.1f} %"
        elif key == "cpu_gpu_fp32_agreement" and v is not None:
            v = f"{v:.2g}"
        else:
            v = _fmt(v)
        out.append({"target": label, "value": v, "threshold": thr, "status": _met(t)})
    return out


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (< 2 min)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--gpu-only", action="store_true", help="only the GPU parts (exits cleanly without a GPU)")
    ap.add_argument("--sections", default="1,2,3,4,5", help="comma-separated subset of 1..5")
    ap.add_argument("--artifacts", default=None, help="folder of artifacts instead of the shipped taggers")
    ap.add_argument("--fill-missing", action="store_true",
                    help="stand in for shipped taggers that are not there yet with random-weight artifacts of the "
                         "same architecture and spec (benchmarks/_standins.py; speed and memory only, labelled)")
    ap.add_argument("--signal", default=str(ROOT / "data/train/ttbar_101.root"))
    ap.add_argument("--background", default=str(ROOT / "data/train/qcd_201.root"))
    ap.add_argument("--extra-files", nargs="*", default=None,
                    help="more files for sections 4/5 (default: ttbar_102 and qcd_202 next to the inputs)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    gpu = torch.cuda.is_available() or DRYRUN
    if args.gpu_only and not gpu:
        print("no GPU: torch.cuda.is_available() is False on this machine; the GPU benchmarks were not run "
              "(run benchmarks/gpu.sh on a GPU host).", flush=True)
        return 0
    res: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "gpu_only": args.gpu_only, "machine": machine_info(), "versions": versions(),
        "loadavg_start": loadavg(), "command": " ".join([Path(sys.executable).name] + sys.argv), "sections": {},
    }
    taggers, missing = resolve_taggers(args.artifacts)
    if args.gpu_only:
        # full-size ParticleNet is added by the GPU model stage; stand-ins if nothing is shipped
        if not taggers:
            from _standins import make_standins

            taggers = {k: str(v) for k, v in make_standins(Path(tempfile.mkdtemp()) / "standins").items()}
    res["standins"] = []
    if args.fill_missing and missing:
        from _standins import make_standin

        sroot = Path(tempfile.mkdtemp(prefix="hepml_standins_"))
        for name in missing:
            taggers[name] = str(make_standin(name, sroot / name))
        taggers = {n: taggers[n] for n in DEFAULT_TAGGERS if n in taggers}
        res["standins"] = list(missing)
    res["taggers"], res["taggers_missing"] = taggers, missing
    fallback = None
    for f in (args.signal, args.background):
        if not Path(f).is_file():
            if args.gpu_only and (ROOT / "tests/samples/pfnano.root").is_file():
                fallback = str(ROOT / "tests/samples/pfnano.root")
                continue
            print(f"input file {f} does not exist (generate it with `hepml-coffea generate`)", file=sys.stderr)
            return 2
    if fallback:
        log(f"generated inputs missing: GPU model stage on synthetic jets, processor on {fallback}")
    sections = {int(x) for x in args.sections.split(",") if x.strip()}
    q = args.quick
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hepml_bench_"))
    log(f"machine: {res['machine']['cpu_model']}, {res['machine']['logical_cores']} cores, GPU: {gpu}; "
        f"load {res['loadavg_start']}; taggers {list(taggers)} (missing {missing})")

    def run_section(key: str, fn: Any) -> None:
        log(f"section {key} ...")
        t0 = time.perf_counter()
        try:
            res["sections"][key] = fn()
        except Exception as err:  # noqa: BLE001 - record and go on
            traceback.print_exc()
            res["sections"][key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        res["sections"].setdefault(key, {})["seconds"] = time.perf_counter() - t0
        log(f"section {key} done in {time.perf_counter() - t0:.0f} s")

    try:
        max_ev = 1500 if q else None
        files_jets = [args.signal, args.background]
        need_jets = bool(sections & {1, 2}) or args.gpu_only
        if need_jets and fallback:
            cands, jets = BR.synthetic_jets(20000)
            jets = ak.with_field(jets, ak.Array(np.full(len(jets), 150.0, dtype=np.float32)), "msoftdrop")
            src = "synthetic jets (benchmarks/bench_representations.synthetic_jets, 20000)"
        elif need_jets:
            cands, jets = load_jets(files_jets, max_ev)
            src = " + ".join(Path(f).name for f in files_jets) + (f" (first {max_ev} events each)" if max_ev else "")
            log(f"{len(jets)} selected jets from {src}")
        # small files for quick mode / the concatenated memory file
        sig, bkg = args.signal, args.background
        extra = args.extra_files
        if extra is None:
            extra = [str(Path(args.signal).with_name("ttbar_102.root")), str(Path(args.background).with_name("qcd_202.root"))]
            extra = [f for f in extra if Path(f).is_file()]
        if fallback or (args.gpu_only and not q):
            fs3, cs3, fs4, cs4 = {}, 0, {}, 0
        elif q:
            qs, qb = work / f"{Path(sig).stem}_0_1000.root", work / f"{Path(bkg).stem}_0_1000.root"
            write_events([(sig, 0, 1000)], qs)
            write_events([(bkg, 0, 1000)], qb)
            fs3 = {"ttbar": [str(qs)], "qcd": [str(qb)]}
            cs3 = 500
            fs4, cs4 = fs3, 500
        else:
            # slices keep the CPU runs to minutes (particlenet-lite scores a few hundred jets/s per core)
            s3 = {"ttbar": [(sig, 0, 6000)], "qcd": [(bkg, 0, 6000)]}
            s4 = {"ttbar": [(f, 0, 4000) for f in [sig] + [f for f in extra if "ttbar" in Path(f).name]],
                  "qcd": [(f, 0, 4000) for f in [bkg] + [f for f in extra if "qcd" in Path(f).name]]}
            fs3, fs4 = {}, {}
            for fs, spec in ((fs3, s3), (fs4, s4)):
                for ds, items in spec.items():
                    for f, a, b in items:
                        dst = work / f"{Path(f).stem}_{a}_{b}.root"
                        if not dst.exists():
                            write_events([(f, a, b)], dst)
                        fs.setdefault(ds, []).append(str(dst))
            cs3, cs4 = 3000, 2000
        res["filesets"] = {"vs_torch_wrapper": {"chunksize": cs3, "files": {k: [Path(f).name for f in v] for k, v in fs3.items()}},
                           "dask": {"chunksize": cs4, "files": {k: [Path(f).name for f in v] for k, v in fs4.items()}},
                           "note": "NAME_A_B.root = entries [A, B) of data/train/NAME.root, rewritten uncompressed "
                                   "(benchmarks/run_all.py write_events)" if not q else "quick-mode slices"}

        if args.gpu_only:
            res["input"] = src
            fsg = {"cms_pfnano": [fallback]} if fallback else {"ttbar": [sig], "qcd": [bkg]}
            if q:
                fsg, csg = fs3, 1000
            else:
                csg = 10000
            res["filesets"] = {"gpu_processor": {"chunksize": csg, "files": fsg}}
            run_section("model_gpu", lambda: section_model_gpu(taggers, cands, jets, *GPU_SIZES))
            run_section("gpu_processor", lambda: section_gpu_processor(taggers, fsg, csg))
        else:
            if 1 in sections:
                run_section("representations", lambda: section_representations(
                    cands, jets, 3 if q else 5, src))
            if 2 in sections:
                run_section("model_cpu", lambda: section_model_cpu(
                    taggers, cands, jets, [64, 256, 1024], [1, 2], 0.3 if q else 1.5, 1 if q else 2))
                def malloc_probe() -> dict[str, Any]:
                    import probe_malloc

                    import contextlib
                    import io

                    with contextlib.redirect_stdout(io.StringIO()):
                        return probe_malloc.main(["--paths", json.dumps(taggers), "--files", args.signal,
                                                  "--max-events", "1000" if q else "4000",
                                                  "--batch-sizes", "256,1024"])
                run_section("malloc_probe", malloc_probe)
                if gpu:
                    run_section("model_gpu", lambda: section_model_gpu(taggers, cands, jets, *GPU_SIZES))
                else:
                    res["sections"]["model_gpu"] = {"skipped": "not measured: no GPU in this session "
                                                               "(torch.cuda.is_available() is False)"}
            if 3 in sections:
                run_section("vs_torch_wrapper", lambda: section_vs_torch_wrapper(taggers, fs3, cs3, 1 if q else 2, work))
            if 4 in sections:
                run_section("dask", lambda: section_dask(taggers, fs4, cs4, [1, 2]))
            if 5 in sections:
                def mem() -> dict[str, Any]:
                    if q:
                        srcs, sizes = [(sig, 0, 1000), (bkg, 0, 1000)], [1000, 2000]
                    else:
                        pool = [sig, bkg] + extra
                        srcs, left = [], 50000
                        for f in pool:
                            n = min(15000, left)
                            if n <= 0:
                                break
                            srcs.append((f, 0, n))
                            left -= n
                        if left > 0:
                            raise RuntimeError(f"not enough events for a 50k chunk in {pool}")
                        sizes = [10000, 50000]
                    mf = work / "mixed.root"
                    n = write_events(srcs, mf)
                    log(f"  wrote {n} events to {mf} from {[(Path(a).name, b, c) for a, b, c in srcs]}")
                    r = section_memory(taggers, str(mf), sizes)
                    r["sources"] = [(Path(a).name, b, c) for a, b, c in srcs]
                    return r
                run_section("memory", mem)
            if gpu:
                run_section("gpu_processor", lambda: section_gpu_processor(taggers, fs3, cs3))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    res["loadavg_end"] = loadavg()
    ncores = res["machine"]["logical_cores"] or 1
    res["shared"] = max(res["loadavg_start"][0], res["loadavg_end"][0]) > 0.5 * ncores
    res["total_seconds"] = time.perf_counter() - t_start
    res["targets_table"] = targets_table(res)
    md = to_markdown(res)
    stem = "gpu" if args.gpu_only else ("benchmarks_quick" if q else "benchmarks")
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (out_dir / f"{stem}.md").write_text(md)
    print(md)
    log(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')} in {res['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
