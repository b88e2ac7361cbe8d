"""Shared by every benchmark module: threads, machine record, inputs (generated once), timing.

Imported one way: ``run_all.py`` and the section modules (``sec_*.py``, ``probe_malloc.py``)
import this module; it imports none of them.

Inputs: on a fresh clone the generated PFNano files do not exist. :func:`bench_files`
generates them once with ``hepml_coffea.samples.generate`` (Pythia 8 + FastJet, fixed
seeds, all cores) into ``data/bench/`` and reuses them afterwards.
"""

from __future__ import annotations

import os

# one thread everywhere unless a section asks for more (set before numpy / torch load)
for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message="Missing cross-reference")
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(1)

#: generated inputs: (process, events, seed); the quick mode reads the first events only
BENCH_SAMPLES = (("ttbar", 2000, 9101), ("qcd", 3000, 9201))
BENCH_DIR = ROOT / "data" / "bench"
SCORE_ATOL = 1e-5

TARGETS = {
    "repr_particles": 150_000,   # sequences & point clouds, jets/s/core
    "repr_image": 100_000,       # images, jets/s/core
    "vs_torch_wrapper": 2.0,     # ours / torch_wrapper events/s on CPU, identical scores
    "dask_scaling": 1.8,         # 2 workers / 1 worker
    "rss_50k_gb": 1.5,           # worker peak RSS at 50k-event chunks
    # issue 14
    "dask_vs_iterative_torch": 2.0,   # 1-worker Dask (default settings) / iterative backend="torch"
    "dask_vs_iterative_same": 0.9,    # Dask worker / iterative, same backend
    "model_speedup": {"particlenet-lite": 2.0, "cnn": 2.0, "pfn": 1.5, "lstm": 1.5},
    "rntuple_vs_ttree": 1.5,          # processing time RNTuple / TTree, at most
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def peak_rss_mb() -> float:
    """This process image's peak RSS (VmHWM). ``ru_maxrss`` is not used: after fork + exec it
    still carries the parent's peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, int(n)))


def best(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (least disturbed by other processes)."""
    out = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import psutil

    gpu = torch.cuda.is_available()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "glibc": " ".join(platform.libc_ver()),
        "gpu": gpu,
        "gpu_name": torch.cuda.get_device_name(0) if gpu else None,
    }


def versions() -> dict[str, str]:
    import coffea
    import dask
    import distributed
    import numba
    import onnxruntime
    import uproot

    return {
        "python": platform.python_version(), "torch": str(torch.__version__), "coffea": coffea.__version__,
        "dask": dask.__version__, "distributed": distributed.__version__, "awkward": ak.__version__,
        "numba": numba.__version__, "numpy": np.__version__, "uproot": uproot.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- inputs
def bench_files(directory: Path = BENCH_DIR) -> dict[str, Path]:
    """The generated benchmark files (``{"ttbar": path, "qcd": path}``), made if missing."""
    from hepml_coffea.samples import generate

    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for process, n, seed in BENCH_SAMPLES:
        path = directory / f"{process}_{seed}.root"
        if not path.is_file():
            log(f"generating {n} {process} events (seed {seed}) into {path}; done once, then reused")
            t0 = time.perf_counter()
            generate(process, n, seed, path, workers=max(1, os.cpu_count() or 1))
            log(f"  {path.name}: {time.perf_counter() - t0:.0f} s")
        out[process] = path
    return out


def resolve_taggers(artifacts: str | None = None) -> dict[str, str]:
    """name -> artifact path: the shipped taggers in the default order, or those in ``artifacts``."""
    from hepml_coffea.artifacts import shipped_taggers
    from hepml_coffea.analysis.processor import DEFAULT_TAGGERS

    if artifacts:
        root = Path(artifacts)
        found = {p.name: str(p) for p in sorted(root.iterdir()) if (p / "manifest.json").is_file()}
    else:
        found = {k: str(v) for k, v in shipped_taggers().items()}
    ordered = {n: found[n] for n in DEFAULT_TAGGERS if n in found}
    ordered.update({n: p for n, p in found.items() if n not in ordered})
    return ordered


def load_jets(files: list[str | Path], max_events: int | None = None) -> tuple[ak.Array, ak.Array]:
    """Selected, valid fat jets and their constituents: what the processor scores."""
    from hepml_coffea.data.constituents import fatjet_constituents
    from hepml_coffea.data.io import read_arrays
    from hepml_coffea.selection import Selection

    from hepml_coffea.artifacts import load_artifact, shipped_taggers

    cand_fields: set[str] = set()
    for path in shipped_taggers().values():  # every branch a shipped tagger's spec reads
        spec = load_artifact(path).spec
        if spec is not None:
            cand_fields.update(spec.required_cand_fields())
    cands, jets = [], []
    sel = Selection()
    for f in files:
        jc = fatjet_constituents(read_arrays(f, entry_stop=max_events), cand_fields=tuple(sorted(cand_fields)))
        jc = jc.select(sel.mask(jc) & jc.valid)
        cands.append(jc.cands)
        jets.append(jc.jets)
    return ak.concatenate(cands), ak.concatenate(jets)


def tagger_inputs(tagger: Any, cands: ak.Array, jets: ak.Array) -> dict[str, np.ndarray]:
    """The named inputs of ``tagger`` (an engine Tagger) for these jets."""
    if tagger.input_kind == "observables":
        from hepml_coffea.models import tau32_ratio

        return {"msoftdrop": np.asarray(ak.to_numpy(jets.msoftdrop), dtype=np.float64),
                "tau32": tau32_ratio(ak.to_numpy(jets.tau3), ak.to_numpy(jets.tau2))}
    from hepml_coffea.representations import build

    built = build(cands, jets, tagger.artifact.spec)
    return {k: np.asarray(built[k]) for k in tagger.input_names}


def write_events(sources: list[tuple[str | Path, int, int]], dst: str | Path, rntuple: bool = False) -> int:
    """Concatenate entry ranges of PFNano files into one uncompressed file (TTree, or
    RNTuple with ``rntuple``), NanoAOD layout kept (``nX`` counters + ``X_field``
    branches) so coffea's PFNanoAODSchema reads it like the originals. Returns the entries.
    """
    import uproot

    parts = []
    for path, a, b in sources:
        with uproot.open(path) as f:
            parts.append(f["Events"].arrays(entry_start=a, entry_stop=b, how=dict))
    keys = list(parts[0])
    cat = {k: ak.concatenate([p[k] for p in parts]) for k in keys}
    n = len(cat[keys[0]])
    if rntuple:
        with uproot.recreate(dst) as f:
            f["Events"] = cat
        return n
    prefixes = {kk.split("_", 1)[0] for kk in keys if "_" in kk}
    out: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for k in keys:
        pre = k.split("_", 1)[0]
        if "_" in k and f"n{pre}" in cat:
            groups.setdefault(pre, {})[k.split("_", 1)[1]] = cat[k]
        elif not (k.startswith("n") and k[1:] in prefixes):
            out[k] = cat[k]
    for pre, fields in groups.items():
        out[pre] = ak.zip(fields)
    out = {k: (np.asarray(ak.to_numpy(v)) if v.ndim == 1 and not ak.fields(v) else v) for k, v in out.items()}
    with uproot.recreate(dst, compression=None) as f:
        types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content) for k, v in out.items()}
        tree = f.mktree("Events", types)
        for a in range(0, max(n, 1), 10000):
            tree.extend({k: v[a:a + 10000] for k, v in out.items()})
    return n


def n_entries(files: list[str | Path]) -> int:
    import uproot

    total = 0
    for f in files:
        with uproot.open(f) as fh:
            total += fh["Events"].num_entries
    return total


@dataclass
class Context:
    """What every section receives: taggers, inputs, sizes, a scratch folder."""

    taggers: dict[str, str]
    files: dict[str, Path]
    quick: bool
    work: Path
    _jets: tuple[ak.Array, ak.Array] | None = field(default=None, repr=False)

    @property
    def max_events(self) -> int | None:
        return 600 if self.quick else None

    def jets(self) -> tuple[ak.Array, ak.Array]:
        """Selected jets of both files (first ``max_events`` events of each)."""
        if self._jets is None:
            self._jets = load_jets([self.files["ttbar"], self.files["qcd"]], self.max_events)
        return self._jets

    def fileset(self, events: int | None = None) -> dict[str, list[str]]:
        """``{"ttbar": [...], "qcd": [...]}``: the files, or slices of ``events`` entries
        written to the scratch folder (quick mode: 600)."""
        events = events or self.max_events
        if events is None:
            return {k: [str(v)] for k, v in self.files.items()}
        out = {}
        for k, v in self.files.items():
            dst = self.work / f"{k}_0_{events}.root"
            if not dst.exists():
                write_events([(v, 0, events)], dst)
            out[k] = [str(dst)]
        return out


def fmt(x: Any, nd: int = 0) -> str:
    """Numbers for markdown tables: thousands separators, ``-`` for missing."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:
            return "nan"
        return f"{x:,.{nd}f}"
    return str(x)


def met(target: dict[str, Any] | None) -> str:
    if not target:
        return "-"
    return "**met**" if target.get("met") else "not met"


def standalone(run: Callable[[Context], dict[str, Any]], markdown: Callable[[dict[str, Any]], list[str]]) -> None:
    """``python benchmarks/sec_<name>.py [--quick] [--json OUT]``: one section alone."""
    import argparse
    import json
    import shutil
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hepml_bench_"))
    try:
        res = run(Context(taggers=resolve_taggers(), files=bench_files(), quick=args.quick, work=work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(markdown(res)))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
