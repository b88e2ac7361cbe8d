"""Step 2, ``generate``: a pool of processes generates ttbar + QCD parts with fresh seeds and
reads each back into selected, labelled jets (:func:`hepml_coffea.samples.generate`,
:func:`hepml_coffea.training.dataset.load_dataset`), streaming while the GPU trains.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpu_steps.common import Campaign, SEEDS, YIELD


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
