"""Train a tagger on generated files and write a self-describing artifact.

Why one module of ~520 lines: :func:`train_on_dataset` is one training loop (bucketing,
schedule, augmentation, distillation, early stopping, export) that reads best top to bottom.

``hepml-coffea train --model pfn --signal ttbar_*.root --background qcd_*.root --out DIR``
calls :func:`train`. Data come through the same constituent, selection, truth and
representation code as inference; the split is by event number (60/20/20); AdamW
with a cosine schedule, early stopping on validation loss (best weights kept), seeds
fixed. The artifact holds weights (safetensors), architecture, input spec, selection,
metrics on the test split, a TorchScript export, ROC and loss plots.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.artifacts import INPUT_NAMES, save_artifact
from hepml_coffea.inference.engine import predict, resolve_device
from hepml_coffea.representations import build
from hepml_coffea.selection import Selection, TrainingDomain
from hepml_coffea.training.augment import Augmenter, distillation_loss, teacher_logits
from hepml_coffea.training.dataset import (
    TEST,
    TRAIN,
    VAL,
    JetDataset,
    load_dataset,
    standard_spec,
)
from hepml_coffea.training.metrics import roc_curve, tagger_metrics

__all__ = ["TrainConfig", "model_inputs", "train", "train_on_dataset"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters and run options of one training."""

    model: str = "pfn"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clip_grad: float = 0.0  # max gradient norm (0 = no clipping)
    seed: int = 1
    max_jets: int = 0
    patience: int = 4
    device: str = "auto"
    threads: int = 0
    length: int = 100
    progress: bool = True
    #: ``"bf16"``: autocast forward and loss on CUDA (ignored on CPU); ``None``: fp32
    amp: str | None = None
    #: copy every input array to the training device once (GPU: no per-batch host copies)
    data_on_device: bool = False
    #: > 0: stop after this many seconds of training; the one-cycle learning-rate schedule
    #: then follows the larger of the elapsed-time and step fractions, so it always completes
    time_budget_s: float = 0.0
    #: write roc.png / loss.png into the artifact (needs mplhep; they are not hashed)
    plots: bool = True
    #: start from the weights of this artifact (shipped name or folder; same architecture):
    #: continued training on new data, recorded with the parent's hash
    init_from: str | None = None
    #: add model.onnx (checked against torch eager) to the artifact after saving
    onnx: bool = True
    #: sequence models without batch statistics (PFN, LSTM) train on batches of similar
    #: multiplicity trimmed to their longest jet (same result, less padding computed)
    bucket: bool = True
    #: jet-frame symmetries as augmentation (sequence / point-cloud models): ``"none"``,
    #: ``"reflect"`` (deta -> -deta, dphi -> -dphi: exact), ``"reflect+rotate"``
    #: (:mod:`hepml_coffea.training.augment`)
    augment: str = "none"
    #: weight alpha of the teacher term (0: truth labels only); needs the dataset's
    #: teacher scores (``load_dataset(..., teacher=NAME)``)
    distill: float = 0.0
    #: temperature of the distillation term
    distill_temperature: float = 2.0
    #: constructor arguments over the registry's defaults (e.g. ``{"pool": "meanmax"}`` for
    #: the LSTM); recorded in the artifact's model config like every other argument
    model_options: dict[str, Any] = field(default_factory=dict)


def model_inputs(built: dict[str, np.ndarray], input_kind: str) -> list[np.ndarray]:
    """The arrays a model of ``input_kind`` takes, in forward() order."""
    return [built[k] for k in INPUT_NAMES[input_kind]]


def _seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train_baseline(ds: JetDataset, out: Path, cfg: TrainConfig, meta: dict[str, Any]) -> dict[str, Any]:
    from hepml_coffea.models import CutBasedTopTagger

    msd, tau32 = ds.observables()
    ok = CutBasedTopTagger.valid_mask(msd, tau32)  # jets without tau32 are not scored at inference either
    tr = (ds.split == TRAIN) & ok
    te = (ds.split == TEST) & ok
    t0 = time.perf_counter()
    model = CutBasedTopTagger().fit(msd[tr], tau32[tr], ds.labels[tr])
    scores = model.score(msd[te], tau32[te])
    metrics = tagger_metrics(ds.labels[te], scores)
    metrics["jets_without_tau32"] = int((~ok).sum())
    metrics.update({"parameters": int(np.asarray(model.sig_hist).size * 2), "train_seconds": time.perf_counter() - t0})
    metrics.update(_sizes(ds))
    with tempfile.TemporaryDirectory(prefix="hepml_plots_") as tmp:
        plots = _plots(ds.labels[te], scores, None, cfg.model, Path(tmp)) if cfg.plots else None
        save_artifact(out, name=cfg.model, model=model, input_kind="observables", spec=None, metrics=metrics,
                      meta=meta, extra_files=plots)
    return metrics


def _one_cycle_lr(frac: float, peak: float, pct_start: float = 0.2) -> float:
    """Learning rate at fraction ``frac`` of a one-cycle schedule (torch's OneCycleLR shape:
    cosine warm-up from peak/25 over ``pct_start``, cosine decay to peak/25e4)."""
    lo, end = peak / 25.0, peak / 25e4
    f = min(max(frac, 0.0), 1.0)
    if f < pct_start:
        return lo + (peak - lo) * (1.0 - math.cos(math.pi * f / pct_start)) / 2.0
    return end + (peak - end) * (1.0 + math.cos(math.pi * (f - pct_start) / (1.0 - pct_start))) / 2.0


def _sizes(ds: JetDataset) -> dict[str, int]:
    return {
        "n_train": int((ds.split == TRAIN).sum()),
        "n_val": int((ds.split == VAL).sum()),
        "n_test": int((ds.split == TEST).sum()),
    }


def _plots(labels: np.ndarray, scores: np.ndarray, history: dict[str, list[float]] | None,
           name: str, tmp: Path) -> dict[str, Path]:
    """ROC and loss PNGs in the scratch folder ``tmp``; save_artifact copies them in."""
    from hepml_coffea.curveplots import plot_loss, plot_roc

    es, eb, _ = roc_curve(labels, scores)
    n_background = int((~np.asarray(labels).astype(bool)).sum())
    files = {"roc.png": plot_roc({name: (es, eb)}, tmp / "roc.png", title="test split\nband: 68% CP",
                                 n_background={name: n_background})}
    if history:
        files["loss.png"] = plot_loss({k: history[k] for k in ("train", "validation")}, tmp / "loss.png")
    return files


def train_on_dataset(ds: JetDataset, out: str | os.PathLike[str], cfg: TrainConfig,
                     meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on an already-loaded dataset; write the artifact to ``out``."""
    import torch
    from torch import nn

    from hepml_coffea.models import MODEL_REGISTRY, build_model, count_parameters

    out = Path(out)
    meta = dict(meta or {})
    meta["training"] = {**meta.get("training", {}), "config": asdict(cfg)}
    if "domain" not in meta and ds.selection is not None:
        meta["domain"] = TrainingDomain.from_selection(ds.selection, "training files not recorded").to_dict()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_all(cfg.seed)
    if cfg.model == "baseline":
        return _train_baseline(ds, out, cfg, meta)
    if cfg.model not in MODEL_REGISTRY:
        msg = f"unknown model {cfg.model!r}; known: {sorted(MODEL_REGISTRY)} and 'baseline'"
        raise ValueError(msg)
    kind = MODEL_REGISTRY[cfg.model].input_kind
    spec = _parent_spec(cfg.init_from, kind) or standard_spec(kind, cfg.length)
    t0 = time.perf_counter()
    built = build(ds.cands, ds.jets, spec)
    build_s = time.perf_counter() - t0
    arrays = model_inputs(built, kind)
    labels = ds.labels.astype(np.int64)
    idx = {s: np.flatnonzero(ds.split == s) for s in (TRAIN, VAL, TEST)}
    for s, name in ((TRAIN, "train"), (VAL, "validation"), (TEST, "test")):
        if len(idx[s]) == 0 or len(np.unique(labels[idx[s]])) < 2:
            msg = f"the {name} split needs jets of both classes (has {len(idx[s])} jets)"
            raise ValueError(msg)

    device = resolve_device(cfg.device)
    amp_dtype = {None: None, "bf16": torch.bfloat16}.get(cfg.amp, "bad")  # fp16 would need loss scaling
    if amp_dtype == "bad":
        msg = f"TrainConfig.amp={cfg.amp!r}: choose None or 'bf16'"
        raise ValueError(msg)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype is not None and device.startswith(
        "cuda") else contextlib.nullcontext
    model = build_model(cfg.model, **cfg.model_options)
    if cfg.init_from:
        meta["training"]["init_from"] = _warm_start(model, cfg.init_from)
    model = model.to(device)
    mask_arr = built.get("mask")
    lengths = (mask_arr[:, 0, :].sum(axis=1).astype(np.int64) if mask_arr is not None
               else np.zeros(len(labels), dtype=np.int64))
    trim = cfg.bucket and kind == "sequence" and not _has_batchnorm(model) and not cfg.data_on_device
    meta["training"]["length_bucketing"] = trim
    meta["training"]["input_stats"] = _input_stats([a[idx[TRAIN]] for a in arrays], INPUT_NAMES[kind],
                                                   mask_arr[idx[TRAIN]] if mask_arr is not None else None, spec)
    np_rng = np.random.default_rng(cfg.seed)

    def take(b: Any) -> list[Any]:
        """The model inputs of jets ``b`` on the device, trimmed to their longest jet when bucketing."""
        if trim:
            n_max = max(1, int(lengths[b.cpu().numpy() if hasattr(b, "cpu") else b].max()))
            return [t[b][..., :n_max].to(device) for t in tensors]
        return [t[b].to(device) for t in tensors]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(idx[TRAIN]) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch),
                                                pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    tensors = [torch.from_numpy(a) for a in arrays]
    y = torch.from_numpy(labels)
    on_device = cfg.data_on_device and device != "cpu"
    if on_device:
        tensors = [t.to(device) for t in tensors]
        y = y.to(device)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    step = 0
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    augmenter = Augmenter(spec, INPUT_NAMES[kind], cfg.augment) if cfg.augment != "none" else None
    teacher_t = None
    if cfg.distill > 0:
        if ds.teacher is None:
            msg = "TrainConfig.distill > 0 needs teacher scores: load_dataset(..., teacher='particlenet')"
            raise ValueError(msg)
        teacher_t = torch.from_numpy(teacher_logits(ds.teacher))
        meta["training"]["teacher"] = ds.teacher_info
    history: dict[str, list[float]] = {"train": [], "validation": [], "val_auc": [], "lr": []}
    best = (float("inf"), -1)
    best_state: dict[str, Any] | None = None
    bad_epochs = 0
    t_train = time.perf_counter()

    val_order = idx[VAL][np.argsort(lengths[idx[VAL]], kind="stable")] if trim else idx[VAL]

    def val_loss() -> tuple[float, float]:
        """(loss, AUC) on the validation split."""
        from hepml_coffea.training.metrics import auc

        model.eval()
        total, n = 0.0, 0
        probs = []
        with torch.inference_mode():
            for start in range(0, len(val_order), 2048):
                b = torch.from_numpy(val_order[start:start + 2048])
                if on_device:
                    b = b.to(device)
                with autocast():
                    logits = model(*take(b))
                    total += float(loss_fn(logits.float(), y[b].to(device))) * len(b)
                probs.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
                n += len(b)
        return total / n, auc(labels[val_order], np.concatenate(probs))

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.from_numpy(idx[TRAIN])[torch.randperm(len(idx[TRAIN]), generator=gen)]
        if on_device:
            perm = perm.to(device)
        running, seen = 0.0, 0
        if trim:
            batches: Any = [torch.from_numpy(bb) for bb in _length_batches(perm.numpy(), lengths, cfg.batch_size, np_rng)]
        else:
            batches = [perm[start:start + cfg.batch_size] for start in range(0, len(perm), cfg.batch_size)]
        it = tqdm(batches, desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                  disable=not cfg.progress or not sys.stderr.isatty()) if tqdm else batches
        for b in it:
            if len(b) < 2:
                continue
            if cfg.time_budget_s > 0:
                frac = max(step / total_steps, (time.perf_counter() - t_train) / cfg.time_budget_s)
                for group in opt.param_groups:
                    group["lr"] = _one_cycle_lr(frac, cfg.lr)
            with autocast():
                inputs = take(b)
                if augmenter is not None:
                    inputs = augmenter(inputs, aug_gen)
                logits = model(*inputs)
                if teacher_t is not None:
                    loss = distillation_loss(logits.float(), y[b].to(device), teacher_t[b].to(device), cfg.distill,
                                             cfg.distill_temperature)
                else:
                    loss = loss_fn(logits.float(), y[b].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            if cfg.time_budget_s <= 0:
                sched.step()
            step += 1
            running += loss.item() * len(b)
            seen += len(b)
            if cfg.time_budget_s > 0 and time.perf_counter() - t_train >= cfg.time_budget_s:
                break
        vl, vauc = val_loss()
        history["train"].append(running / max(seen, 1))
        history["validation"].append(vl)
        history["val_auc"].append(round(vauc, 5))
        history["lr"].append(float(opt.param_groups[0]["lr"]))
        log.info("[%s] epoch %d: train loss %.4f, val loss %.4f, val AUC %.4f, lr %.2e, %.0f s", cfg.model,
                 epoch + 1, history["train"][-1], vl, vauc, history["lr"][-1], time.perf_counter() - t_train)
        out_of_time = cfg.time_budget_s > 0 and time.perf_counter() - t_train >= cfg.time_budget_s
        if vl < best[0] - 1e-5:
            best = (vl, epoch)
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
        if out_of_time:
            break
    train_s = time.perf_counter() - t_train
    if best_state is not None:
        model.load_state_dict(best_state)
    test_inputs = [a[idx[TEST]] for a in arrays]
    # a GPU-trained model scores its test split on the GPU (fp32); CPU speed is benchmarked elsewhere
    test_device = device if on_device else "cpu"
    model = model.to(test_device).eval()
    t1 = time.perf_counter()
    scores = predict(model, test_inputs, device=test_device, batch_size=512 if test_device == "cpu" else 4096)
    infer_s = time.perf_counter() - t1
    model = model.to("cpu")
    metrics = tagger_metrics(labels[idx[TEST]], scores)
    metrics.update({
        "parameters": count_parameters(model),
        "epochs_run": len(history["train"]),
        "best_epoch": best[1] + 1,
        "train_seconds": round(train_s, 1),
        "build_seconds": round(build_s, 2),
        "cpu_jets_per_s": len(scores) / infer_s if infer_s > 0 and test_device == "cpu" else None,
        "test_device": test_device,
        "amp": cfg.amp if device.startswith("cuda") else None,
        "torch_threads": torch.get_num_threads(),
        "history": history,
        **_sizes(ds),
    })
    example = tuple(torch.from_numpy(a[:8]) for a in test_inputs)
    with tempfile.TemporaryDirectory(prefix="hepml_plots_") as tmp:
        plots = _plots(labels[idx[TEST]], scores, history, cfg.model, Path(tmp)) if cfg.plots else None
        save_artifact(out, name=cfg.model, model=model, input_kind=kind, spec=spec, metrics=metrics, meta=meta,
                      example_inputs=example, extra_files=plots)
    if cfg.onnx:
        _export_onnx(out, kind, test_inputs)
    return metrics


#: test jets the ONNX export is checked on (the first ones of the test split)
EXPORT_CHECK_JETS = 2048


def _export_onnx(out: Path, kind: str, test_inputs: list[np.ndarray] | None = None) -> str | None:
    """Add ``model.onnx`` to the artifact (checked against torch eager, re-sealed).

    The check runs on the model's own test jets (up to :data:`EXPORT_CHECK_JETS`), the
    inputs it will see, rather than synthetic ones: standard-normal synthetic features can
    put two ParticleNet neighbours within float rounding of each other, and ONNX Runtime's
    rounding then picks the other one (a refused export of a correct model).

    Returns the new artifact hash, or ``None`` when the export is refused (reported on
    stderr; the torch artifact stays valid and usable).

    ``kind`` is the model's input kind (its input names: ``INPUT_NAMES[kind]``).

    Shapes:
        test_inputs: each (N, ...) in the model's input order
    """
    from hepml_coffea.inference.backends import ExportError, export_onnx

    inputs = None
    if test_inputs and len(test_inputs[0]):
        names = INPUT_NAMES[kind]
        inputs = {k: np.asarray(a[:EXPORT_CHECK_JETS], dtype=np.float32) for k, a in zip(names, test_inputs)}
    try:
        return export_onnx(out, inputs=inputs)
    except ExportError as err:
        log.warning("%s: no ONNX export (%s); the torch artifact is unaffected", out, err)
        return None


def _parent_spec(init_from: str | None, kind: str) -> Any:
    """The input spec of the artifact a fine-tuning starts from (``None`` without one, or for
    another input kind): a warm start keeps the inputs its weights were trained on."""
    if not init_from:
        return None
    from hepml_coffea.artifacts import load_artifact

    art = load_artifact(init_from)
    return art.spec if art.spec is not None and art.spec.kind == kind else None


def _spec_fields(init_from: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Candidate and jet branches the spec of artifact ``init_from`` reads (none without one)."""
    if not init_from:
        return (), ()
    from hepml_coffea.artifacts import load_artifact

    spec = load_artifact(init_from).spec
    if spec is None:
        return (), ()
    return tuple(spec.required_cand_fields()), tuple(spec.required_jet_fields())


def _warm_start(model: Any, init_from: str) -> dict[str, Any]:
    """Load the weights of artifact ``init_from`` into ``model`` (same class and kwargs)."""
    from hepml_coffea.artifacts import load_artifact

    art = load_artifact(init_from)
    if type(art.model) is not type(model) or art.model.config() != model.config():
        msg = (f"init_from={init_from!r}: artifact holds {type(art.model).__name__}{art.model.config()}, "
               f"the model to train is {type(model).__name__}{model.config()}; warm starts need the same architecture")
        raise ValueError(msg)
    model.load_state_dict(art.model.state_dict())
    return {"artifact": str(init_from), "hash": art.hash, "parent_metrics": {
        k: art.metrics.get(k) for k in ("auc", "rejection_30", "rejection_50", "epochs_run", "n_train")}}


def _has_batchnorm(model: Any) -> bool:
    from torch import nn

    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _length_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                    pool: int = 50) -> list[np.ndarray]:
    """Batches of similar constituent multiplicity: the shuffled ``order`` is cut into pools of
    ``pool`` batches, each pool is sorted by length and cut into batches, and the batch order is
    shuffled. Lets a model without batch statistics skip most padding (see ``trim``).

    Shapes:
        order: (N,) jet indices; lengths: (N_all,) -> list of (<= batch_size,) index arrays
    """
    batches = []
    span = batch_size * pool
    for a in range(0, len(order), span):
        chunk = order[a:a + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _input_stats(arrays: list[np.ndarray], names: tuple[str, ...], mask: np.ndarray | None,
                 spec: Any) -> dict[str, Any]:
    """Mean / std / fraction clipped of each normalised input feature over real particles
    (checks the spec's centre and scale: features should come out O(1))."""
    out: dict[str, Any] = {}
    for arr, name in zip(arrays, names):
        if name != "features":
            continue
        real = mask[:, 0, :] > 0 if mask is not None else np.ones(arr.shape[::2], dtype=bool)
        feats = getattr(spec, "features", None) or []
        for c in range(arr.shape[1]):
            v = arr[:, c, :][real]
            label = getattr(feats[c], "name", str(c)) if c < len(feats) else str(c)
            out[label] = {"mean": round(float(v.mean()), 3), "std": round(float(v.std()), 3),
                          "at_clip": round(float(np.mean(np.abs(v) >= 4.999)), 4)}
    return out


def train(
    signal: Sequence[str | os.PathLike[str]],
    background: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    cfg: TrainConfig | None = None,
    selection: Selection | None = None,
    teacher: str | None = None,
) -> dict[str, Any]:
    """Load files, train ``cfg.model``, write the artifact to ``out``; return test metrics.

    ``teacher`` (a tagger name or artifact; needed when ``cfg.distill > 0``): its scores on
    the training jets, computed once and cached beside the data
    (:mod:`hepml_coffea.training.teacher`)."""
    cfg = cfg or TrainConfig()
    if cfg.distill > 0 and teacher is None:
        from hepml_coffea.errors import ConfigurationError

        msg = "distillation (distill > 0) needs a teacher tagger (--teacher particlenet)"
        raise ConfigurationError(msg)
    selection = selection or Selection()
    cand_fields, jet_fields = _spec_fields(cfg.init_from)  # a fine-tuned BYO spec may read more branches
    ds = load_dataset(signal, background, selection, max_jets=cfg.max_jets, cand_fields=cand_fields,
                      jet_fields=jet_fields, teacher=teacher if cfg.distill > 0 else None)
    meta = {
        "selection": selection.to_dict(),
        "domain": TrainingDomain.from_selection(
            selection, f"{len(signal)} signal + {len(background)} background file(s): "
            + ", ".join(Path(f).name for f in [*signal, *background][:6])
            + (", ..." if len(signal) + len(background) > 6 else "")).to_dict(),
        "training": {
            "signal_files": [Path(f).name for f in signal],
            "background_files": [Path(f).name for f in background],
            "command": f"hepml-coffea train --model {cfg.model} --signal ... --background ...",
        },
    }
    metrics = train_on_dataset(ds, out, cfg, meta)
    return {k: v for k, v in metrics.items() if k != "history"}


