"""GPU campaign (issue 12): generate, train, evaluate and benchmark in one command.

On the GPU host (device tool; install line and carry list in BENCHMARKS.md, section
"GPU campaign (issue 12)")::

    python workflows/gpu_campaign.py --out $OUT --budget-s 540

On any CPU machine, the same path end to end with tiny sizes (the test suite runs it)::

    python workflows/gpu_campaign.py --out /tmp/campaign_smoke --smoke

Afterwards, on the CPU machine, plots, tables and artifact PNGs from what came back::

    python workflows/gpu_campaign.py --finish RESULTS_DIR --out benchmarks/results/gpu_campaign

Steps, in time order (``--budget-s`` B sets every deadline; each step is guarded: a
failure is recorded with its traceback and the rest goes on):

1. ``environment``: torch + CUDA (+ a bf16 matrix product), coffea, dask, dask-cuda,
   fastjet, pythia8mc, the project's modules; stops within seconds with the list of what
   is missing (exit 2). With ``--smoke`` CUDA and dask-cuda are not required.
2. ``generate``: a pool of ``--workers`` processes (default: every core) generates
   ttbar + QCD parts with fresh seeds (:data:`SEEDS`), each task a ttbar and a QCD file
   read back at once into selected, labelled jets; training parts first until
   ``--train-jets`` top and QCD jets (or 0.34 B), then evaluation parts until
   ``--eval-qcd-jets`` QCD and ``--eval-top-jets`` top jets (or 0.70 B), streaming
   while the GPU trains.
3. ``model_stage`` (while the training parts generate): jets/s of every tagger
   (shipped ones + full-size ParticleNet with random weights) through
   ``Tagger.predict`` in fp32, bf16 autocast and ``torch.compile`` at batch 1k/4k/16k.
4. ``train_<model>``: full ParticleNet, then PFN, ParticleNet-Lite, LSTM, CNN, each
   with its share of the training window, bf16 autocast, data held on the GPU,
   through :func:`hepml_coffea.training.train.train_on_dataset` (complete artifacts).
5. ``evaluate``: every new and shipped artifact on the evaluation set: AUC (DeLong
   error), 1/eB at eS = 30 % / 50 % with Clopper-Pearson intervals.
6. ``cpu_vs_gpu``: fp32 scores of the same jets on CPU and GPU (TF32 off): max |diff|.
7. ``processor``: the TaggerProcessor with the new taggers over the evaluation files on
   a dask-cuda ``LocalCUDACluster`` (one worker; a CPU LocalCluster with ``--smoke``),
   cold and warm, with the share of each stage in Dask's fine performance metrics.

Everything lands under ``--out`` as it finishes, in at most 8 files (the device tool
brings back 8): ``results.json`` (rewritten atomically after every step),
``campaign.log``, ``artifacts.tar.gz`` (the new artifacts), ``scores.npz`` (evaluation
and test-split scores for plots), ``env.txt``. Generated files and artifact folders live
under ``--work`` (default a temporary folder).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere, with or without PYTHONPATH
    sys.path.insert(0, str(ROOT))

#: fresh Pythia seeds, per (set, process): never used in docs/logs (101-115, 201-215,
#: 301, 401), workflows/train_shipped.py / make_training_set.py (101+, 201+) or
#: workflows/make_eval_set.py (3001+, 4001+, 5001+, 6001+)
SEEDS = {("train", "ttbar"): 11001, ("train", "qcd"): 12001, ("eval", "ttbar"): 13001, ("eval", "qcd"): 14001}

#: jets in the selection window per generated event (measured on the shipped training
#: set, docs/logs/train.log: 46,209 top jets from 135k ttbar events, 52,461 QCD jets
#: from 105k QCD events); used only to split a task's events between the processes
YIELD = {"ttbar": 0.34, "qcd": 0.50}

#: model -> (share of the training window, batch size, peak learning rate, max grad norm, epochs cap)
TRAIN_PLAN: dict[str, tuple[float, int, float, float, int]] = {
    "particlenet": (0.40, 512, 3e-3, 0.0, 60),
    "pfn": (0.14, 512, 2e-3, 1.0, 80),
    "particlenet-lite": (0.18, 512, 5e-3, 0.0, 60),
    "lstm": (0.14, 512, 2e-3, 1.0, 60),
    "cnn": (0.14, 512, 2e-3, 0.0, 60),
}

#: (label, autocast, engine backend) of the model-stage benchmark
MODES = (("fp32", None, "torch"), ("bf16", "bf16", "torch"), ("compile", "bf16", "compile"))

#: issue 12 targets on the H200
TARGETS = {"particlenet_jets_per_s": 250_000, "pfn_cnn_lstm_jets_per_s": 1_000_000, "tagging_share_dask_cuda": 0.10}

#: the device tool brings back at most this many files from --out
MAX_OUT_FILES = 8

#: what to install on the device when the environment check fails
INSTALL_HINT = ("install the carried wheels first: python3 -m pip install -q --no-index --no-deps --no-compile "
                "--no-cache-dir --upgrade --target \"$HOME/site\" .whl/*.whl && export PYTHONPATH=\"$HOME/site:$PWD\" "
                "(wheel set: BENCHMARKS.md, section 'GPU campaign (issue 12)')")


class EnvironmentProblem(RuntimeError):
    """The host lacks something the campaign needs (message lists every problem)."""


# --------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Plan:
    """Sizes and deadlines of one campaign (fractions are of ``budget_s``)."""

    budget_s: float
    smoke: bool
    workers: int
    train_jets: int  # per class, in the window
    eval_qcd_jets: int
    eval_top_jets: int
    part_events: int  # events per generation task (ttbar + QCD together)
    bench_jets: int  # jets per model-stage measurement
    batch_sizes: tuple[int, ...]
    modes: tuple[tuple[str, str | None, str], ...]
    compare_jets: int  # CPU vs GPU
    chunksize: int
    length: int = 100  # particles per jet in the inputs of the trained taggers
    repeats: int = 2  # timed model-stage passes (best is kept)
    train_start_frac: float = 0.34
    eval_gen_end_frac: float = 0.70
    train_end_frac: float = 0.76
    evaluate_end_frac: float = 0.84
    processor_end_frac: float = 0.97

    @staticmethod
    def make(budget_s: float, smoke: bool, workers: int | None = None, train_jets: int | None = None,
             eval_qcd_jets: int | None = None, eval_top_jets: int | None = None) -> Plan:
        """The device plan, or tiny sizes with ``smoke`` (a few hundred events, one epoch)."""
        cores = os.cpu_count() or 1
        if smoke:
            # full-size ParticleNet costs ~1 GFLOP per jet at 100 particles: the smoke run
            # keeps 30 particles and scores a few dozen jets per stage on the CPU
            return Plan(budget_s=budget_s, smoke=True, workers=workers or min(2, cores),
                        train_jets=train_jets or 30, eval_qcd_jets=eval_qcd_jets or 20,
                        eval_top_jets=eval_top_jets or 20, part_events=200, bench_jets=64,
                        batch_sizes=(64,), modes=MODES[:1], compare_jets=32, chunksize=150, length=30, repeats=1)
        return Plan(budget_s=budget_s, smoke=False, workers=workers or cores, train_jets=train_jets or 50_000,
                    eval_qcd_jets=eval_qcd_jets or 50_000, eval_top_jets=eval_top_jets or 20_000,
                    part_events=2400, bench_jets=65_536, batch_sizes=(1024, 4096, 16384), modes=MODES,
                    compare_jets=4096, chunksize=50_000)

    def task_events(self, set_name: str, need_top: int, need_qcd: int) -> tuple[int, int]:
        """(ttbar, QCD) events of the next task of ``set_name``: split so both classes
        approach their targets together (each at least 10 % of the task). Evaluation
        tasks are twice as large on the device: their files are the processor's chunks."""
        part = self.part_events * (2 if set_name == "eval" and not self.smoke else 1)
        want_t = max(need_top, 0) / YIELD["ttbar"]
        want_q = max(need_qcd, 0) / YIELD["qcd"]
        frac_t = 0.5 if want_t + want_q <= 0 else min(0.9, max(0.1, want_t / (want_t + want_q)))
        n_t = max(1, round(part * frac_t))
        return n_t, max(1, part - n_t)


# --------------------------------------------------------------------------- records
class Campaign:
    """Results, log and deadlines of one run; every record is saved at once."""

    def __init__(self, out: Path, work: Path, plan: Plan, argv: list[str]) -> None:
        self.out = out
        self.work = work
        self.plan = plan
        self.t0 = time.perf_counter()
        self.lock = threading.RLock()
        out.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "campaign.log", "a", buffering=1)  # noqa: SIM115 - closed in close()
        self.results: dict[str, Any] = {
            "campaign": {
                "command": " ".join(["python", "workflows/gpu_campaign.py", *argv]),
                "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "plan": asdict(plan), "seeds": {f"{k[0]}_{k[1]}": v for k, v in SEEDS.items()},
                "targets": TARGETS, "work": str(work),
            },
            "steps": {},
        }
        self.save()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def at(self, frac: float) -> float:
        """Seconds since start of the deadline at ``frac`` of the budget."""
        return frac * self.plan.budget_s

    def left(self, frac: float) -> float:
        return self.at(frac) - self.elapsed()

    def log(self, msg: str) -> None:
        line = f"[{self.elapsed():7.1f} s] {msg}"
        print(line, flush=True)
        with self.lock:
            self.log_file.write(line + "\n")

    def record(self, step: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.results["steps"].setdefault(step, {}).update(_jsonable(data))
            self.save()

    def save(self) -> None:
        with self.lock:
            self.results["campaign"]["elapsed_s"] = round(self.elapsed(), 1)
            tmp = self.out / ".results.json.tmp"
            tmp.write_text(json.dumps(self.results, indent=1, sort_keys=False))
            os.replace(tmp, self.out / "results.json")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Run a step: its dict is recorded with status, start and duration; an exception
        is recorded (type, message, traceback tail) and does not stop the campaign."""
        data: dict[str, Any] = {}
        start = self.elapsed()
        self.log(f"== {name}")
        self.record(name, {"status": "running", "started_s": round(start, 1)})
        try:
            with _tee_stderr(self.log_file):
                yield data
            status = data.pop("status", "ok")
        except Exception as err:  # noqa: BLE001 - one step's failure must not stop the others
            status = "failed"
            data["error"] = f"{type(err).__name__}: {err}"[:2000]
            data["traceback"] = traceback.format_exc()[-4000:]
            self.log(f"!! {name} failed: {data['error'][:300]}")
        data.update({"status": status, "seconds": round(self.elapsed() - start, 1)})
        self.record(name, data)
        self.log(f"== {name}: {status} in {data['seconds']} s")

    def close(self) -> None:
        self.results["campaign"]["finished_utc"] = datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds")
        self.save()
        self.log_file.close()


class _Tee(io.TextIOBase):
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            with contextlib.suppress(Exception):
                st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            with contextlib.suppress(Exception):
                st.flush()


@contextlib.contextmanager
def _tee_stderr(log_file: Any) -> Iterator[None]:
    """Training prints its epoch lines to stderr: copy them into the campaign log."""
    old = sys.stderr
    sys.stderr = _Tee(old, log_file)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stderr = old


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


# --------------------------------------------------------------------------- 1. environment
def pythia_data() -> str | None:
    """Point ``PYTHIA8DATA`` at pythia8mc's ``xmldoc`` when it is unset.

    pythia8mc looks for its settings at ``../../../share/Pythia8/xmldoc`` from its module,
    which is right for a site-packages install but not for ``pip install --target DIR``
    (how the device installs the carried wheels: the files land in ``DIR/share``). Set
    here, before the generation processes start, so they inherit it. Returns the folder.
    """
    import importlib.util

    if os.environ.get("PYTHIA8DATA"):
        return os.environ["PYTHIA8DATA"]
    spec = importlib.util.find_spec("pythia8mc")
    if spec is None or spec.origin is None:
        return None
    base = Path(spec.origin).resolve().parent
    for cand in (base / "share" / "Pythia8" / "xmldoc", Path(os.path.normpath(base / "../../../share/Pythia8/xmldoc")),
                 Path(sys.prefix) / "share" / "Pythia8" / "xmldoc"):
        if (cand / "Index.xml").is_file():
            os.environ["PYTHIA8DATA"] = str(cand)
            return str(cand)
    return None


def _pythia_init_ok() -> bool:
    """Whether Pythia initialises with the generation's QCD settings (about a second)."""
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    ok = all(py.readString(x) for x in ("Print:quiet = on", "Beams:eCM = 14000.", "HardQCD:all = on",
                                         "PhaseSpace:pTHatMin = 500."))
    return bool(ok and py.init())


def check_environment(smoke: bool, work: Path) -> dict[str, Any]:
    """Versions, GPU and imports; raise :class:`EnvironmentProblem` naming everything missing."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "smoke": smoke}
    problems: list[str] = []
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_capability"] = list(torch.cuda.get_device_capability(0))
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
            a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
            info["bf16_matmul_ok"] = bool(torch.isfinite((a @ a).float()).all().item())
            info["torch_cuda"] = torch.version.cuda
        elif not smoke:
            problems.append("torch sees no CUDA device (torch.cuda.is_available() is False; "
                            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    except Exception as err:  # noqa: BLE001
        problems.append(f"torch unusable: {type(err).__name__}: {err}")
    needed = ["numpy", "awkward", "uproot", "hist", "vector", "numba", "coffea", "coffea.processor",
              "coffea.nanoevents", "dask", "distributed", "fastjet", "pythia8mc", "safetensors", "yaml",
              "hepml_coffea.samples.generate", "hepml_coffea.training.train", "hepml_coffea.inference.engine",
              "hepml_coffea.analysis.processor", "hepml_coffea.batch.run", "hepml_coffea.batch.clusters", "hepml_coffea.config",
              "hepml_coffea.analysis.histograms", "hepml_coffea.representations", "hepml_coffea.artifacts"]
    if not smoke:
        needed += ["dask_cuda", "pynvml"]
    versions: dict[str, str] = {}
    for mod in needed:
        try:
            m = __import__(mod, fromlist=["_"])
            versions[mod] = str(getattr(m, "__version__", "ok"))
        except Exception as err:  # noqa: BLE001
            problems.append(f"import {mod} failed: {type(err).__name__}: {str(err)[:200]}")
    info["versions"] = versions
    if "pythia8mc" in versions:
        info["pythia8data"] = pythia_data()
        try:
            if not _pythia_init_ok():
                problems.append(f"Pythia does not initialise (PYTHIA8DATA={os.environ.get('PYTHIA8DATA')!r}: "
                                "point it at pythia8mc's share/Pythia8/xmldoc)")
        except Exception as err:  # noqa: BLE001
            problems.append(f"Pythia does not initialise: {type(err).__name__}: {err}")
    optional = {}
    for mod in ("mplhep", "hepml_coffea.evaluation", "hepml_coffea.scoring"):
        try:
            __import__(mod)
            optional[mod] = True
        except Exception:  # noqa: BLE001 - optional
            optional[mod] = False
    info["optional"] = optional
    with contextlib.suppress(Exception):
        from hepml_coffea.training.train import TrainConfig

        if not {"amp", "data_on_device", "time_budget_s", "plots"} <= set(TrainConfig.__dataclass_fields__):
            problems.append("hepml_coffea.training.train.TrainConfig lacks amp/data_on_device/time_budget_s/plots "
                            "(the project tree is older than the campaign)")
    free = shutil.disk_usage(work).free / 2**30
    info["work_free_gib"] = round(free, 1)
    if free < 2:
        problems.append(f"only {free:.1f} GiB free in the work folder {work}; need >= 2")
    if problems:
        raise EnvironmentProblem("; ".join(problems) + ". " + INSTALL_HINT)
    return info


def _host_report(path: Path, pip: bool = True) -> None:
    """nvidia-smi, CPU model and (``pip``) pip's view of the packages, for the record."""
    lines = []
    cmds = [["nvidia-smi"], ["lscpu"]]
    if pip:
        cmds.append([sys.executable, "-m", "pip", "list", "--disable-pip-version-check"])
    for cmd in cmds:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
            lines += [f"$ {' '.join(cmd)}", r.stdout[-20000:], r.stderr[-2000:]]
        except Exception as err:  # noqa: BLE001
            lines.append(f"$ {' '.join(cmd)}: {type(err).__name__}: {err}")
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------- 2. generation
def _worker_init() -> None:
    """Generation processes yield the CPU to the main process (which drives the GPU)."""
    with contextlib.suppress(OSError):
        os.nice(10)
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def _shipped_spec_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Candidate and jet branches the shipped taggers' input specs read beyond the standard
    ones, so the evaluation can score every shipped tagger on the campaign's jets."""
    import yaml

    from hepml_coffea.artifacts import shipped_taggers
    from hepml_coffea.representations import InputSpec

    cand: set[str] = set()
    jet: set[str] = set()
    for path in shipped_taggers().values():
        doc = yaml.safe_load((path / "model.yaml").read_text())
        if isinstance(doc, dict) and doc.get("input_spec"):
            spec = InputSpec.from_dict(doc["input_spec"])
            cand.update(spec.required_cand_fields())
            jet.update(spec.required_jet_fields())
    return tuple(sorted(cand)), tuple(sorted(jet))


def generate_task(task: dict[str, Any]) -> dict[str, Any]:
    """One task: a ttbar and a QCD file (fresh seeds), read back into selected jets.

    Returns ``{"task", "files", "seconds", "dataset"}`` with the
    :class:`~hepml_coffea.training.dataset.JetDataset` of both files (truth-matched top
    jets, all QCD jets, in the default selection window).
    """
    from hepml_coffea.samples import generate
    from hepml_coffea.training.dataset import load_dataset

    t0 = time.perf_counter()
    folder = Path(task["dir"])
    files = {}
    for proc in ("ttbar", "qcd"):
        path = folder / f"{proc}_{task[proc]['seed']}.root"
        generate(proc, int(task[proc]["events"]), int(task[proc]["seed"]), path, workers=1)
        files[proc] = str(path)
    gen_s = time.perf_counter() - t0
    cand_fields, jet_fields = _shipped_spec_fields()  # e.g. particlenet-jetclass reads puppiWeight
    ds = load_dataset([files["ttbar"]], [files["qcd"]], cand_fields=cand_fields, jet_fields=jet_fields)
    return {"task": task, "files": files, "seconds": round(time.perf_counter() - t0, 2),
            "generate_seconds": round(gen_s, 2), "dataset": ds}


@dataclass
class _SetState:
    name: str
    target_top: int
    target_qcd: int
    pieces: list[Any] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=lambda: {"ttbar": [], "qcd": []})
    n_top: int = 0
    n_qcd: int = 0
    tasks_done: int = 0
    events: dict[str, int] = field(default_factory=lambda: {"ttbar": 0, "qcd": 0})
    task_seconds: list[float] = field(default_factory=list)
    next_seed: dict[str, int] = field(default_factory=dict)
    closed_at: float | None = None

    def done(self) -> bool:
        return self.n_top >= self.target_top and self.n_qcd >= self.target_qcd

    def summary(self) -> dict[str, Any]:
        return {"top_jets": self.n_top, "qcd_jets": self.n_qcd, "target_top": self.target_top,
                "target_qcd": self.target_qcd, "tasks": self.tasks_done, "events": dict(self.events),
                "files": {k: [Path(f).name for f in v] for k, v in self.files.items()},
                "mean_task_seconds": round(float(np.mean(self.task_seconds)), 1) if self.task_seconds else None,
                "closed_at_s": None if self.closed_at is None else round(self.closed_at, 1)}


class Generation:
    """The generation pool, driven from a background thread: training parts until the
    training set is closed, then evaluation parts, never more tasks queued than processes."""

    def __init__(self, camp: Campaign) -> None:
        self.camp = camp
        p = camp.plan
        self.sets = {
            "train": _SetState("train", p.train_jets, p.train_jets),
            "eval": _SetState("eval", p.eval_top_jets, p.eval_qcd_jets),
        }
        for (s, proc), seed in SEEDS.items():
            self.sets[s].next_seed[proc] = seed
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.errors: list[str] = []
        self.pending: list[tuple[dict[str, Any], Any]] = []
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding CUDA and threads
        self.pool = ctx.Pool(p.workers, initializer=_worker_init)
        self.thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self.t_start = camp.elapsed()
        self.thread.start()

    # the thread ------------------------------------------------------------
    def _in_flight(self, s: _SetState) -> tuple[float, float]:
        """(top, QCD) jets expected from the tasks of ``s`` still running."""
        top = sum(t["ttbar"]["events"] * YIELD["ttbar"] for t, _ in self.pending if t["set"] == s.name)
        qcd = sum(t["qcd"]["events"] * YIELD["qcd"] for t, _ in self.pending if t["set"] == s.name)
        return top, qcd

    def _open_set(self) -> _SetState | None:
        """The set that needs more tasks: training first, then evaluation (a set whose
        running tasks are expected to reach its targets needs none)."""
        for s in self.sets.values():
            top, qcd = self._in_flight(s)
            if s.closed_at is None and (s.n_top + top < s.target_top or s.n_qcd + qcd < s.target_qcd):
                return s
        return None

    def _next_task(self) -> dict[str, Any] | None:
        s = self._open_set()
        if s is None:
            return None
        n_t, n_q = self.camp.plan.task_events(s.name, s.target_top - s.n_top, s.target_qcd - s.n_qcd)
        folder = self.camp.work / "gen" / s.name
        folder.mkdir(parents=True, exist_ok=True)
        task = {"set": s.name, "dir": str(folder),
                "ttbar": {"seed": s.next_seed["ttbar"], "events": n_t},
                "qcd": {"seed": s.next_seed["qcd"], "events": n_q}}
        s.next_seed["ttbar"] += 1
        s.next_seed["qcd"] += 1
        return task

    def _collect(self, res: dict[str, Any]) -> None:
        s = self.sets[res["task"]["set"]]
        with self.cond:
            if s.closed_at is not None:  # finished after its set was closed: not used
                return
            ds = res["dataset"]
            s.pieces.append(ds)
            s.n_top += int((ds.labels == 1).sum())
            s.n_qcd += int((ds.labels == 0).sum())
            s.tasks_done += 1
            s.task_seconds.append(res["seconds"])
            for proc in ("ttbar", "qcd"):
                s.files[proc].append(res["files"][proc])
                s.events[proc] += int(res["task"][proc]["events"])
            self.cond.notify_all()
        self.camp.log(f"generate: {s.name} task {s.tasks_done} in {res['seconds']:.0f} s -> "
                      f"{s.n_top} top / {s.n_qcd} QCD jets")

    def _run(self) -> None:
        p = self.camp.plan
        try:
            while not self.stop.is_set():
                for item in [x for x in self.pending if x[1].ready()]:
                    self.pending.remove(item)
                    try:
                        self._collect(item[1].get())
                    except Exception as err:  # noqa: BLE001 - a failed task is recorded; others go on
                        self.errors.append(f"{type(err).__name__}: {err}"[:500])
                        self.camp.log(f"generate: task failed: {self.errors[-1]}")
                        if len(self.errors) > 2 * p.workers:
                            self.camp.log("generate: too many failed tasks; stopping generation")
                            return
                ev = self.sets["eval"]
                if self.camp.elapsed() >= self.camp.at(p.eval_gen_end_frac) and ev.tasks_done > 0:
                    self.close("eval")
                if ev.closed_at is not None or (ev.done() and not self.pending):
                    return
                while len(self.pending) < p.workers:
                    task = self._next_task()
                    if task is None:
                        break
                    self.pending.append((task, self.pool.apply_async(generate_task, (task,))))
                time.sleep(0.2)
        finally:
            with self.cond:
                self.cond.notify_all()

    # the main thread -------------------------------------------------------
    def close(self, set_name: str) -> None:
        with self.cond:
            s = self.sets[set_name]
            if s.closed_at is None:
                s.closed_at = self.camp.elapsed()
                self.camp.log(f"generate: {set_name} set closed with {s.n_top} top / {s.n_qcd} QCD jets")
            self.cond.notify_all()

    def wait(self, set_name: str, deadline_s: float, min_tasks: int = 1) -> None:
        """Block until the set reaches its targets or the deadline (then it is closed);
        past the deadline wait on for the first ``min_tasks`` tasks (never with none)."""
        s = self.sets[set_name]
        with self.cond:
            while not s.done() and self.camp.elapsed() < deadline_s and self.thread.is_alive():
                self.cond.wait(timeout=0.5)
            while s.tasks_done < min_tasks and self.thread.is_alive() and s.closed_at is None:
                self.cond.wait(timeout=0.5)
        self.close(set_name)

    def first_piece(self, timeout_s: float) -> Any:
        """The first finished training piece (for the model-stage benchmark)."""
        t_end = time.perf_counter() + timeout_s
        with self.cond:
            while not self.sets["train"].pieces and time.perf_counter() < t_end and self.thread.is_alive():
                self.cond.wait(timeout=0.5)
            return self.sets["train"].pieces[0] if self.sets["train"].pieces else None

    def dataset(self, set_name: str) -> Any:
        from hepml_coffea.training.dataset import JetDataset

        pieces = self.sets[set_name].pieces
        if not pieces:
            msg = f"no {set_name} data was generated (errors: {self.errors[:3]})"
            raise RuntimeError(msg)
        import awkward as ak

        return JetDataset(ak.concatenate([p.jets for p in pieces]), ak.concatenate([p.cands for p in pieces]),
                          np.concatenate([p.labels for p in pieces]), np.concatenate([p.event for p in pieces]),
                          np.concatenate([p.split for p in pieces]))

    def summary(self) -> dict[str, Any]:
        return {"workers": self.camp.plan.workers, "part_events": self.camp.plan.part_events,
                "sets": {k: v.summary() for k, v in self.sets.items()}, "task_errors": self.errors[:20]}

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.pool.terminate()
        self.pool.join()


# --------------------------------------------------------------------------- 3. model stage
def _free_gpu() -> None:
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


def _inputs(tagger: Any, cands: Any, jets: Any, cache: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
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
                arrays = _tile(_inputs(tagger, piece.cands, piece.jets, cache), p.bench_jets)
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


# --------------------------------------------------------------------------- 4. training
def _pack_artifacts(camp: Campaign, names: list[str]) -> None:
    """All new artifacts in one ``artifacts.tar.gz`` (replaced atomically)."""
    tmp = camp.out / ".artifacts.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for name in names:
            tar.add(camp.work / "artifacts" / name, arcname=f"artifacts/{name}")
    os.replace(tmp, camp.out / "artifacts.tar.gz")


def train_models(camp: Campaign, ds: Any, device: str, plots: bool, scores: dict[str, np.ndarray],
                 only: list[str] | None = None) -> list[str]:
    """Train every model of :data:`TRAIN_PLAN` within the training window; returns the
    names whose artifacts were written (each recorded as step ``train_<name>``)."""
    from hepml_coffea.inference.engine import get_tagger
    from hepml_coffea.training.dataset import TEST
    from hepml_coffea.training.train import TrainConfig, train_on_dataset

    p = camp.plan
    plan = {k: v for k, v in TRAIN_PLAN.items() if only is None or k in only}
    done: list[str] = []
    test = ds.subset(ds.split == TEST)
    scores["test_labels"] = test.labels.astype(np.int8)
    names = list(plan)
    for i, name in enumerate(names):
        share, bs, lr, clip, epochs = plan[name]
        with camp.step(f"train_{name}") as rec:
            window = camp.left(p.train_end_frac)
            # this model's share of what is left, minus ~15 s for building inputs, test scoring
            # and the TorchScript export
            remaining_share = sum(plan[k][0] for k in names[i:])
            budget = max(5.0, window * share / remaining_share - (0 if p.smoke else 15.0))
            if window < 10 and not p.smoke:
                rec["status"] = "skipped"
                rec["reason"] = f"training window over ({window:.0f} s left)"
                continue
            cfg = TrainConfig(model=name, epochs=1 if p.smoke else epochs, batch_size=64 if p.smoke else bs, lr=lr,
                              clip_grad=clip, seed=12, patience=1 if p.smoke else 12, device=device,
                              amp=None if p.smoke else "bf16", data_on_device=not p.smoke,
                              time_budget_s=budget, progress=False, plots=plots,
                              threads=0 if not p.smoke else 1, length=p.length)
            meta = {
                "selection": {"pt_min": 550.0, "pt_max": 650.0, "abs_eta_max": 2.0, "msd_min": None, "msd_max": None},
                "training": {"campaign": "issue 12 GPU campaign", "command": camp.results["campaign"]["command"],
                             "seeds": {f"{k[0]}_{k[1]}": v for k, v in SEEDS.items() if k[0] == "train"},
                             "share_of_window": share, "time_budget_s": round(budget, 1)},
            }
            out = camp.work / "artifacts" / name
            shutil.rmtree(out, ignore_errors=True)  # never mistake an older run's artifact for this one
            try:
                metrics = train_on_dataset(ds, out, cfg, meta)
            except Exception as err:
                # a failure after the artifact was sealed (e.g. an optional export) keeps the artifact
                if not (out / "manifest.json").is_file():
                    raise
                from hepml_coffea.artifacts import load_artifact

                load_artifact(out)  # verifies every hashed file
                metrics = json.loads((out / "metrics.json").read_text())
                rec["error_after_saving"] = f"{type(err).__name__}: {err}"[:1000]
                camp.log(f"train {name}: artifact kept, error after saving: {rec['error_after_saving'][:200]}")
            done.append(name)
            _pack_artifacts(camp, done)
            rec.update({k: metrics.get(k) for k in ("auc", "accuracy", "rejection_30", "rejection_50", "parameters",
                                                     "epochs_run", "best_epoch", "train_seconds", "build_seconds",
                                                     "n_train", "n_val", "n_test", "test_device", "amp")})
            rec.update({"time_budget_s": round(budget, 1), "batch_size": cfg.batch_size, "lr": lr,
                        "history": metrics.get("history")})
            # test-split scores for the artifact's ROC plot (drawn by --finish on the CPU machine)
            tagger = get_tagger(out, device)
            scores[f"test_{name}"] = tagger.predict(_inputs(tagger, test.cands, test.jets, {}),
                                                    batch_size=4096 if device != "cpu" else 256)
            _save_scores(camp, scores)
            _free_gpu()
            camp.log(f"train {name}: AUC {metrics['auc']:.4f}, 1/eB(30%) {metrics['rejection_30']:.0f}, "
                     f"{metrics['epochs_run']} epochs in {metrics['train_seconds']} s")
    return done


def _save_scores(camp: Campaign, scores: dict[str, np.ndarray]) -> None:
    tmp = camp.out / ".scores.npz.tmp.npz"
    np.savez_compressed(tmp, **scores)
    os.replace(tmp, camp.out / "scores.npz")


# --------------------------------------------------------------------------- 5. evaluation
def _report(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUC +- error and 1/eB at eS = 30 %, 50 % with 68 % intervals.

    Uses :func:`hepml_coffea.evaluation.stats.tagger_report` when that module is there; else
    the AUC from :mod:`hepml_coffea.training.metrics` (error: Hanley-McNeil) and
    Clopper-Pearson intervals on the QCD jets passing each threshold.

    Shapes:
        labels, scores: (N,) -> dict
    """
    try:
        from hepml_coffea.evaluation.stats import tagger_report
    except ImportError:
        tagger_report = None
    if tagger_report is not None:
        return {"method": "hepml_coffea.evaluation.stats.tagger_report", **tagger_report(labels, scores)}
    from scipy.stats import beta

    from hepml_coffea.training.metrics import auc as auc_of

    lab = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    a = auc_of(lab[ok], s[ok])
    n1, n0 = int(lab[ok].sum()), int((~lab[ok]).sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    err = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a), 0.0) / max(n1 * n0, 1))
    out: dict[str, Any] = {"method": "campaign fallback (Hanley-McNeil, Clopper-Pearson)", "auc": a, "auc_err": err,
                           "n_signal": int(lab.sum()), "n_background": int((~lab).sum()),
                           "n_unscored": int((~ok).sum())}
    sig = np.sort(s[lab & ok])
    bkg = np.where(ok, s, -np.inf)[~lab]
    for eff in (0.3, 0.5):
        thr = float(np.quantile(sig, 1.0 - eff))
        k = int((bkg >= thr).sum())
        n = len(bkg)
        lo = beta.ppf(0.15865, k, n - k + 1) if k > 0 else 0.0
        hi = beta.ppf(0.84135, k + 1, n - k) if k < n else 1.0
        out[f"eS{int(eff * 100)}"] = {"threshold": thr, "n_background_passing": k, "rejection": n / k if k else None,
                                      "rejection_low": 1 / hi if hi > 0 else None,
                                      "rejection_high": 1 / lo if lo > 0 else None}
    return out


def evaluate(camp: Campaign, ds: Any, taggers: dict[str, Path], device: str,
             scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every tagger on the evaluation set, scored through the engine (``Tagger.predict``)."""
    import awkward as ak

    from hepml_coffea.inference.engine import get_tagger

    rows: dict[str, Any] = {}
    cache: dict[str, dict[str, np.ndarray]] = {}
    scores["eval_labels"] = ds.labels.astype(np.int8)
    scores["eval_pt"] = np.asarray(ak.to_numpy(ds.jets.pt), dtype=np.float32)
    scores["eval_msd"] = np.asarray(ak.to_numpy(ds.jets.msoftdrop), dtype=np.float32)
    for name, path in taggers.items():
        try:
            tagger = get_tagger(path, device, None, backend="torch")
            t0 = time.perf_counter()
            sc = tagger.predict(_inputs(tagger, ds.cands, ds.jets, cache),
                                batch_size=4096 if device != "cpu" else 256)
            rows[name] = {"artifact": str(path), "hash": tagger.artifact.hash, "score_seconds":
                          round(time.perf_counter() - t0, 2), **_report(ds.labels, sc)}
            scores[f"eval_{name}"] = sc.astype(np.float32)
            camp.log(f"evaluate {name}: AUC {rows[name]['auc']:.4f}")
        except Exception as err:  # noqa: BLE001
            rows[name] = {"artifact": str(path), "error": f"{type(err).__name__}: {err}"[:500]}
        camp.record("evaluate", {"taggers": rows})
    _save_scores(camp, scores)
    res: dict[str, Any] = {"taggers": rows, "n_top": int((ds.labels == 1).sum()), "n_qcd": int((ds.labels == 0).sum())}
    full, lite = rows.get("particlenet (new)", {}), rows.get("particlenet-lite (shipped)", {})
    if "auc" in full and "auc" in lite:
        res["full_particlenet_beats_shipped_lite"] = {
            "auc_diff": full["auc"] - lite["auc"],
            "auc_err_combined": math.hypot(full.get("auc_err") or 0.0, lite.get("auc_err") or 0.0),
            "note": "same jets: the errors are correlated, the combined error is conservative"}
    return res


# --------------------------------------------------------------------------- 6. CPU vs GPU
def cpu_vs_gpu(camp: Campaign, ds: Any, taggers: dict[str, Path], device: str) -> dict[str, Any]:
    """fp32 scores of the same jets on CPU and on ``device`` (TF32 off): max |diff|; and
    bf16 autocast vs fp32 on ``device`` for scale."""
    import torch

    from hepml_coffea.inference.engine import get_tagger

    n = min(camp.plan.compare_jets, len(ds))
    sub = ds.subset(np.arange(len(ds)) < n)
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows: dict[str, Any] = {}
    cache: dict[str, dict[str, np.ndarray]] = {}
    try:
        for name, path in taggers.items():
            try:
                cpu = get_tagger(path, "cpu", None, backend="torch")
                gpu = get_tagger(path, device, None, backend="torch")
                inp = _inputs(cpu, sub.cands, sub.jets, cache)
                a = cpu.predict(inp, batch_size=256)
                b = gpu.predict(inp, batch_size=1024)
                ok = np.isfinite(a) & np.isfinite(b)
                row = {"jets": n, "max_abs_diff_fp32": float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else None,
                       "nan_mismatch": int((np.isfinite(a) != np.isfinite(b)).sum())}
                if device != "cpu" and cpu.input_kind != "observables":
                    c = get_tagger(path, device, "bf16", backend="torch").predict(inp, batch_size=1024)
                    row["max_abs_diff_bf16_vs_fp32"] = float(np.max(np.abs(c - b)))
                rows[name] = row
            except Exception as err:  # noqa: BLE001
                rows[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    diffs = [r["max_abs_diff_fp32"] for r in rows.values() if r.get("max_abs_diff_fp32") is not None]
    return {"device": device, "taggers": rows, "max_abs_diff_fp32": max(diffs) if diffs else None,
            "target": 1e-5, "met": bool(diffs) and max(diffs) <= 1e-5}


# --------------------------------------------------------------------------- 7. processor
def _scheduler_metrics(dask_scheduler: Any) -> list[tuple[list[Any], float]]:
    return [(list(k) if isinstance(k, tuple) else [k], float(v))
            for k, v in dask_scheduler.cumulative_worker_metrics.items()]


async def _send_heartbeat(dask_worker: Any) -> None:
    await dask_worker.heartbeat()


def _metrics_after_run(client: Any, before: list[tuple[list[Any], float]],
                       wait_s: float = 15.0) -> list[tuple[list[Any], float]]:
    """The scheduler's cumulative fine performance metrics once the run's have arrived.

    Workers send the metrics of finished tasks with their heartbeat, so right after
    ``Runner`` returns the scheduler may not have them yet: ask every worker for a
    heartbeat now, then poll (up to ``wait_s``) until the processor's stages show up
    in the difference to ``before``.
    """
    from hepml_coffea.scoring import STAGES

    deadline = time.monotonic() + wait_s
    while True:
        client.run(_send_heartbeat)
        after = client.run_on_scheduler(_scheduler_metrics)
        if set(STAGES) <= set(_stage_shares(before, after)["seconds"]) or time.monotonic() > deadline:
            return after
        time.sleep(0.5)


def _stage_shares(before: list[tuple[list[Any], float]], after: list[tuple[list[Any], float]]) -> dict[str, Any]:
    """Seconds per activity of executed tasks (Dask fine performance metrics), as a
    difference of two snapshots, and each activity's share of the total."""
    def table(rows: list[tuple[list[Any], float]]) -> dict[str, float]:
        t: dict[str, float] = {}
        for key, v in rows:
            if len(key) >= 4 and key[0] == "execute" and key[-1] == "seconds":
                t[str(key[-2])] = t.get(str(key[-2]), 0.0) + v
        return t

    a, b = table(before), table(after)
    sec = {k: b[k] - a.get(k, 0.0) for k in b if b[k] - a.get(k, 0.0) > 0}
    total = sum(sec.values())
    return {"seconds": sec, "share": {k: v / total for k, v in sec.items()} if total > 0 else {}, "total_s": total}


def processor_run(camp: Campaign, files: dict[str, list[str]], taggers: list[Path], deadline_s: float) -> dict[str, Any]:
    """The TaggerProcessor on a one-worker dask-cuda cluster (LocalCluster with --smoke):
    a cold run, then a warm one if time allows; wall time, events/s, stage shares."""
    import uproot

    from hepml_coffea.batch.clusters import make_cluster
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.histograms import datasets_of
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    executor = "dask" if camp.plan.smoke else "dask-cuda"
    fileset = {f"{proc}_eval": fl for proc, fl in files.items() if fl}
    n_events = sum(uproot.open(f)["Events"].num_entries for fl in fileset.values() for f in fl)
    cluster, client = make_cluster(executor, workers=1, dashboard_address="127.0.0.1:0", threads_per_worker=1)
    res: dict[str, Any] = {"executor": executor, "cluster": type(cluster).__name__, "events": n_events,
                           "files": sum(len(v) for v in fileset.values()), "taggers": [t.name for t in taggers],
                           "runs": []}
    try:
        if executor == "dask-cuda" and type(cluster).__name__ != "LocalCUDACluster":
            msg = f"dask-cuda cluster not started (got {type(cluster).__name__}); see the log for why"
            raise RuntimeError(msg)
        client.wait_for_workers(1, timeout=120)
        proc = TaggerProcessor(taggers=[str(t) for t in taggers], device="auto")
        cfg = RunConfig(executor=executor, workers=1, chunksize=camp.plan.chunksize, status=False,
                        dashboard_address="127.0.0.1:0")
        for label in ("cold",) if camp.plan.smoke else ("cold", "warm"):
            if res["runs"] and camp.elapsed() + 1.3 * res["runs"][-1]["wall_s"] > deadline_s:
                res["runs"].append({"run": label, "skipped": "step deadline"})
                break
            before = client.run_on_scheduler(_scheduler_metrics)
            t0 = time.perf_counter()
            out = run_fileset(fileset, proc, config=cfg, client=client)
            wall = time.perf_counter() - t0
            after = _metrics_after_run(client, before)
            timing: dict[str, float] = {}
            scored = 0
            for acc in datasets_of(out).values():
                for k, v in acc.get("timing", {}).items():
                    timing[k] = timing.get(k, 0.0) + float(v)
                scored += int(acc.get("cutflow", {}).get("scored", 0))
            run = {"run": label, "wall_s": round(wall, 2), "events_per_s": n_events / wall, "scored_jets": scored,
                   "stage_seconds": timing, "tagging_share_of_wall": timing.get("infer", 0.0) / wall,
                   "fine_performance_metrics": _stage_shares(before, after)}
            res["runs"].append(run)
            camp.record("processor", res)
            camp.log(f"processor {label}: {n_events / wall:,.0f} events/s, tagging "
                     f"{100 * run['tagging_share_of_wall']:.1f} % of wall")
    finally:
        client.close()
        cluster.close()
    done = [r for r in res["runs"] if "wall_s" in r]
    if done:
        share = done[-1]["tagging_share_of_wall"]
        res["target"] = {"tagging_share_dask_cuda": {"value": share, "target": TARGETS["tagging_share_dask_cuda"],
                                                     "met": share <= TARGETS["tagging_share_dask_cuda"],
                                                     "run": done[-1]["run"]}}
    return res


# --------------------------------------------------------------------------- the campaign
def run_campaign(args: argparse.Namespace, argv: list[str]) -> int:
    """All steps in order; returns the exit code (2: environment unusable)."""
    out = Path(args.out)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="hepml_campaign_"))
    plan = Plan.make(args.budget_s, args.smoke, args.workers, args.train_jets, args.eval_qcd_jets, args.eval_top_jets)
    # the generation processes use one thread each; set before they are spawned
    camp = Campaign(out, work, plan, argv)
    camp.log(f"campaign: budget {plan.budget_s:.0f} s, smoke={plan.smoke}, {plan.workers} generation processes, "
             f"out {out}, work {work}")
    env: dict[str, Any] = {}
    with camp.step("environment") as rec:
        env = check_environment(plan.smoke, work)
        rec.update(env)
    if camp.results["steps"]["environment"]["status"] != "ok":
        camp.log("environment unusable; nothing else was run: " + camp.results["steps"]["environment"]["error"])
        camp.close()
        return 2
    _host_report(out / "env.txt", pip=not plan.smoke)
    import torch

    device = "cuda" if torch.cuda.is_available() and not plan.smoke else "cpu"
    plots = bool(env.get("optional", {}).get("mplhep"))
    gen = Generation(camp)
    scores: dict[str, np.ndarray] = {}
    new: list[str] = []
    try:
        with camp.step("model_stage") as rec:
            from hepml_coffea.artifacts import shipped_taggers

            shipped = shipped_taggers()
            bench = {"particlenet": random_particlenet(work, plan.length)}
            bench.update({k: Path(shipped[k]) for k in ("pfn", "cnn", "lstm", "particlenet-lite") if k in shipped})
            piece = gen.first_piece(timeout_s=max(5.0, camp.left(plan.train_start_frac)))
            if piece is None:
                msg = f"no generated jets for the benchmark (generation errors: {gen.errors[:2]})"
                raise RuntimeError(msg)
            rec.update(model_stage(camp, bench, piece, device, camp.at(plan.train_start_frac)))
        _free_gpu()
        with camp.step("generate_train") as rec:
            gen.wait("train", camp.at(plan.train_start_frac))
            rec.update(gen.summary()["sets"]["train"])
        ds = None
        with camp.step("train") as rec:
            ds = gen.dataset("train")
            rec.update({"top_jets": int((ds.labels == 1).sum()), "qcd_jets": int((ds.labels == 0).sum()),
                        "plots_in_artifacts": plots})
        if ds is not None:
            new = train_models(camp, ds, device, plots, scores)
            camp.record("train", {"artifacts": new})
        del ds
        with camp.step("generate_eval") as rec:
            gen.wait("eval", camp.at(plan.eval_gen_end_frac))
            gen.shutdown()
            rec.update(gen.summary())
        eval_ds = None
        with camp.step("evaluate") as rec:
            eval_ds = gen.dataset("eval")
            from hepml_coffea.artifacts import shipped_taggers

            taggers = {f"{k} (new)": work / "artifacts" / k for k in new}
            taggers.update({f"{k} (shipped)": Path(v) for k, v in shipped_taggers().items()})
            rec.update(evaluate(camp, eval_ds, taggers, device, scores))
        with camp.step("cpu_vs_gpu") as rec:
            if eval_ds is None:
                raise RuntimeError("no evaluation set")
            taggers = {k: work / "artifacts" / k for k in new}
            rec.update(cpu_vs_gpu(camp, eval_ds, taggers, device))
        with camp.step("processor") as rec:
            left = camp.left(plan.processor_end_frac)
            if not new:
                raise RuntimeError("no new artifacts to run the processor with")
            if left < (5 if plan.smoke else 25):
                rec.update({"status": "skipped", "reason": f"only {left:.0f} s left before its deadline"})
            else:
                from hepml_coffea.inference.engine import clear_cache

                clear_cache()  # the main process's models: the worker loads its own
                _free_gpu()
                rec.update(processor_run(camp, gen.sets["eval"].files, [work / "artifacts" / k for k in new],
                                         camp.at(plan.processor_end_frac)))
    finally:
        gen.shutdown()
        camp.results["campaign"]["new_artifacts"] = new
        camp.close()
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if len(files) > MAX_OUT_FILES:
        print(f"warning: {len(files)} files in {out}; the device tool brings back {MAX_OUT_FILES}", file=sys.stderr)
    failed = [k for k, v in camp.results["steps"].items() if v.get("status") == "failed"]
    print(f"campaign done in {camp.elapsed():.0f} s; files: {files}; failed steps: {failed or 'none'}", flush=True)
    if not args.keep_work and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------- --finish (CPU)
def finish(results_dir: Path, out: Path) -> list[Path]:
    """From a campaign's files: unpack the artifacts (adding roc.png / loss.png, which are
    not hashed), draw the evaluation ROC overlay and the model-stage throughput, and write
    ``campaign.md`` (the tables for BENCHMARKS.md / TAGGERS.md). Returns the files written."""
    from hepml_coffea.analysis.plots import plot_loss, plot_roc
    from hepml_coffea.training.metrics import roc_curve

    res = json.loads((results_dir / "results.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    scores = dict(np.load(results_dir / "scores.npz")) if (results_dir / "scores.npz").exists() else {}
    tar_path = results_dir / "artifacts.tar.gz"
    if tar_path.exists():
        with tarfile.open(tar_path) as tar:
            tar.extractall(out, filter="data")
        for art in sorted((out / "artifacts").iterdir()):
            name = art.name
            metrics = json.loads((art / "metrics.json").read_text())
            if not (art / "loss.png").exists() and metrics.get("history"):
                written.append(plot_loss(metrics["history"], art / "loss.png"))
            if not (art / "roc.png").exists() and f"test_{name}" in scores:
                es, eb, _ = roc_curve(scores["test_labels"], scores[f"test_{name}"])
                written.append(plot_roc({name: (es, eb)}, art / "roc.png"))
    if "eval_labels" in scores:
        curves = {}
        for k in sorted(scores):
            if k.startswith("eval_") and k not in ("eval_labels", "eval_pt", "eval_msd"):
                s = scores[k]
                ok = np.isfinite(s)
                es, eb, _ = roc_curve(scores["eval_labels"][ok], s[ok])
                curves[k[5:]] = (es, eb)
        if curves:
            written.append(plot_roc(curves, out / "campaign_roc.png", title="evaluation set (campaign)"))
    ms = res.get("steps", {}).get("model_stage", {})
    if ms.get("rows"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 6))
        for (tagger, mode) in sorted({(r["tagger"], r["mode"]) for r in ms["rows"] if "jets_per_s" in r}):
            pts = sorted((r["batch"], r["jets_per_s"]) for r in ms["rows"]
                         if r.get("tagger") == tagger and r.get("mode") == mode and "jets_per_s" in r)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{tagger} {mode}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (jets)")
        ax.set_ylabel("model stage jets/s")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "campaign_model_stage.png", dpi=110)
        plt.close(fig)
        written.append(out / "campaign_model_stage.png")
    (out / "campaign.md").write_text(summary_markdown(res))
    written.append(out / "campaign.md")
    return written


def _f(x: Any, nd: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{nd}f}"


def _rej(r: Any) -> str:
    """'1/eB [low, high] (k QCD jets)' from either report layout."""
    if not isinstance(r, dict):
        return "-"
    val = r.get("rejection", r.get("value"))
    lo = r.get("rejection_low", r.get("low"))
    hi = r.get("rejection_high", r.get("high"))
    k = r.get("n_background_passing", r.get("n_pass"))
    s = _f(val)
    if lo is not None and hi is not None:
        s += f" [{_f(lo)}, {_f(hi)}]"
    if k is not None:
        s += f" ({k})"
    return s


def summary_markdown(res: dict[str, Any]) -> str:
    """The campaign's tables in markdown."""
    st = res.get("steps", {})
    c = res.get("campaign", {})
    env = st.get("environment", {})
    L = [(f"Campaign `{c.get('command')}` started {c.get('started_utc')}, {c.get('elapsed_s')} s; "
          f"GPU {env.get('gpu', 'none')}, torch {env.get('torch')}, {env.get('cpus')} CPUs."), ""]
    L += ["| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    for k, v in st.items():
        L.append(f"| {k} | {v.get('status')} | {v.get('seconds')} | {str(v.get('error') or v.get('reason') or '')[:120]} |")
    gt, ge = st.get("generate_train", {}), st.get("generate_eval", {}).get("sets", {}).get("eval", {})
    if gt:
        L += ["", (f"Generated: training set {gt.get('top_jets')} top / {gt.get('qcd_jets')} QCD jets "
                   f"({gt.get('tasks')} tasks), evaluation set {ge.get('top_jets')} top / {ge.get('qcd_jets')} "
                   "QCD jets.")]
    ev = st.get("evaluate", {}).get("taggers", {})
    if ev:
        L += ["", "| tagger | AUC | 1/eB at eS=30% [68% CL] (QCD passing) | 1/eB at eS=50% | top / QCD jets |",
              "| --- | --- | --- | --- | --- |"]
        for name, r in ev.items():
            if "auc" not in r:
                L.append(f"| {name} | {r.get('error', '-')[:80]} | | | |")
                continue
            L.append(f"| {name} | {r['auc']:.4f} ± {r.get('auc_err') or 0:.4f} | {_rej(r.get('eS30'))} | "
                     f"{_rej(r.get('eS50'))} | {r.get('n_signal')} / {r.get('n_background')} |")
    ms = st.get("model_stage", {})
    if ms.get("rows"):
        L += ["", f"Model stage ({ms.get('device')}, {ms.get('jets_source')}), jets/s:", "",
              "| tagger | mode | batch | jets/s | first call s |", "| --- | --- | --- | --- | --- |"]
        for r in ms["rows"]:
            L.append(f"| {r.get('tagger')} | {r.get('mode')} | {r.get('batch', '-')} | "
                     f"{_f(r.get('jets_per_s')) if 'jets_per_s' in r else (r.get('error') or r.get('skipped', ''))[:60]}"
                     f" | {r.get('first_call_s', '-')} |")
    cg = st.get("cpu_vs_gpu", {})
    if cg.get("taggers"):
        L += ["", f"CPU vs {cg.get('device')} fp32, max |score diff|: "
              + ", ".join(f"{k} {_f(v.get('max_abs_diff_fp32'), 8) if v.get('max_abs_diff_fp32') is not None else v.get('error', '-')}"
                          for k, v in cg["taggers"].items())]
    pr = st.get("processor", {})
    for r in pr.get("runs", []):
        if "wall_s" in r:
            shares = r["fine_performance_metrics"]["share"]
            L += ["", f"Processor {pr.get('cluster')} ({r['run']}): {pr.get('events')} events in {r['wall_s']} s = "
                      f"{_f(r['events_per_s'])} events/s; tagging {100 * r['tagging_share_of_wall']:.1f} % of wall; "
                      "fine performance metrics: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in
                                                             sorted(shares.items(), key=lambda kv: -kv[1]))]
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="results folder (on the device: $OUT)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="seconds for the whole campaign; every step's deadline scales with it "
                         "(default 540; 600 with --smoke, whose tiny sizes end long before)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one epoch: the same path end to end")
    ap.add_argument("--work", help="folder for generated files and artifacts (default: a temporary one, removed)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--workers", type=int, default=None, help="generation processes (default: every core)")
    ap.add_argument("--train-jets", type=int, default=None, help="training jets per class to aim for (50000)")
    ap.add_argument("--eval-qcd-jets", type=int, default=None, help="evaluation QCD jets to aim for (50000)")
    ap.add_argument("--eval-top-jets", type=int, default=None, help="evaluation top jets to aim for (20000)")
    ap.add_argument("--finish", metavar="RESULTS_DIR",
                    help="CPU afterwards: plots, artifact PNGs and campaign.md from a campaign's files into --out")
    args = ap.parse_args(argv)
    if args.finish:
        if not args.out:
            ap.error("--finish needs --out (where the plots and unpacked artifacts go)")
        for p in finish(Path(args.finish), Path(args.out)):
            print(p)
        return 0
    if not args.out:
        ap.error("--out is required")
    if args.budget_s is None:
        args.budget_s = 600.0 if args.smoke else 540.0
    if args.budget_s <= 0:
        ap.error(f"--budget-s must be > 0, got {args.budget_s}")
    return run_campaign(args, argv)


if __name__ == "__main__":
    sys.exit(main())
