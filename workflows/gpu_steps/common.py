"""What every step of the GPU campaign shares: seeds, sizes (:class:`Plan`), the record of
results and log (:class:`Campaign`), and JSON conversion.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


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
