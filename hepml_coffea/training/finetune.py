"""Fine-tune an imported multi-class tagger (e.g. ``particlenet-jetclass``) on our jets.

``hepml-coffea train --init-from particlenet-jetclass --signal ttbar_*.root --background qcd_*.root
--out DIR [--time-budget S]`` calls :func:`finetune`. The network keeps its classes and its
score expression: the loss is the cross-entropy of the two classes the score compares (for
``Tbqq / (Tbqq + QCD)``: a softmax over the ``Tbqq`` and ``QCD`` logits, which *is* the score),
so the head is reused, not replaced, and the artifact scores exactly like its parent's format
(same inputs, spec, classes). Data: the same constituents, selection, truth and
representations as inference (:func:`~hepml_coffea.training.dataset.load_dataset`, split by
event number 60/20/20); AdamW, one-cycle learning rate over the time budget, best
validation-loss weights kept; the test split's metrics and the parent's on the same jets are
recorded in ``metrics.json``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepml_coffea.artifacts import ArtifactError, load_artifact, save_artifact
from hepml_coffea.representations import build
from hepml_coffea.selection import Selection
from hepml_coffea.training.dataset import TEST, TRAIN, VAL, load_dataset
from hepml_coffea.training.metrics import tagger_metrics

__all__ = ["binary_classes", "finetune"]

log = logging.getLogger(__name__)


def binary_classes(score: str, classes: Sequence[str]) -> tuple[int, int]:
    """``(background, signal)`` class indices of a score ``S / (S + B)``.

    Raises
    ------
    ArtifactError
        for a score of another form (fine-tuning needs the two classes it compares).
    """
    import ast

    tree = ast.parse(score.replace(" ", ""), mode="eval").body
    ok = (isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div) and isinstance(tree.left, ast.Name)
          and isinstance(tree.right, ast.BinOp) and isinstance(tree.right.op, ast.Add)
          and isinstance(tree.right.left, ast.Name) and isinstance(tree.right.right, ast.Name))
    if ok:
        s, a, b = tree.left.id, tree.right.left.id, tree.right.right.id
        bkg = b if a == s else a if b == s else None
        if bkg is not None and s in classes and bkg in classes:
            return list(classes).index(bkg), list(classes).index(s)
    msg = f"score {score!r}: fine-tuning needs a score of the form 'S / (S + B)' over two classes of {list(classes)}"
    raise ArtifactError(msg)


def finetune(
    parent: str,
    signal: Sequence[str],
    background: Sequence[str],
    out: str,
    *,
    time_budget_s: float = 600.0,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 3e-4,
    weight_decay: float = 1e-4,
    max_jets: int = 0,
    seed: int = 1,
    threads: int = 0,
    name: str | None = None,
    freeze_batchnorm: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``parent`` (an artifact with classes, a score ``S / (S + B)`` and torch weights).

    ``freeze_batchnorm`` keeps the BatchNorm layers in eval mode (the pretrained running
    statistics): in train mode, batches trimmed to their longest jet and a small data set move
    them away from what the rest of the network was trained with (measured: the validation loss
    went from 0.11 to 3.4 in one epoch with them unfrozen, lr 3e-4).

    Returns
    -------
    dict
        the test metrics of the fine-tuned model, with the parent's on the same test jets
        (``parent_test``); when no epoch beats the parent on the validation split, the parent's
        weights are kept (``best_epoch`` 0).
    """
    import torch
    from torch import nn

    art = load_artifact(parent)
    if art.model is None or not art.classes or art.spec is None:
        msg = (f"--init-from {parent}: fine-tuning needs an artifact with classes and torch weights "
               f"(this one: classes {list(art.classes)}, torch weights {'yes' if art.model is not None else 'no'})")
        raise ArtifactError(msg)
    i_bkg, i_sig = binary_classes(str(art.score_expression), art.classes)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spec = art.spec
    ds = load_dataset(signal, background, Selection(), max_jets=max_jets,
                      cand_fields=spec.required_cand_fields(), jet_fields=spec.required_jet_fields())
    built = build(ds.cands, ds.jets, spec)
    names = list(art.input_names)
    arrays = [np.ascontiguousarray(built[k]) for k in names]
    labels = ds.labels.astype(np.int64)
    idx = {s: np.flatnonzero(ds.split == s) for s in (TRAIN, VAL, TEST)}
    for s, what in ((TRAIN, "train"), (VAL, "validation"), (TEST, "test")):
        if len(idx[s]) == 0 or len(np.unique(labels[idx[s]])) < 2:
            msg = f"the {what} split needs jets of both classes (has {len(idx[s])} jets)"
            raise ValueError(msg)
    mask = built[spec.mask_block][:, 0, :] if spec.mask_block else None
    lengths = mask.sum(axis=1).astype(np.int64) if mask is not None else None
    model = copy.deepcopy(art.model).train()
    tensors = [torch.from_numpy(a) for a in arrays]
    y = torch.from_numpy(labels)
    pick = torch.tensor([i_bkg, i_sig])
    loss_fn = nn.CrossEntropyLoss()

    def logits_of(b: np.ndarray) -> Any:
        n = max(17, int(lengths[b].max())) if lengths is not None and spec.kind == "blocks" else None
        xs = [t[b] if n is None else t[b][..., :n] for t in tensors]
        return model(*xs)[:, pick]

    def evaluate(ids: np.ndarray) -> tuple[float, np.ndarray]:
        model.eval()
        perm = np.argsort(lengths[ids], kind="stable") if lengths is not None else np.arange(len(ids))
        order = ids[perm]
        total, scores = 0.0, np.empty(len(order), np.float32)
        with torch.inference_mode():
            for a in range(0, len(order), 256):
                b = order[a:a + 256]
                lg = logits_of(b).float()
                total += float(loss_fn(lg, y[b])) * len(b)
                scores[a:a + len(b)] = torch.softmax(lg, dim=1)[:, 1].numpy()
        out = np.empty(len(ids), np.float32)
        out[perm] = scores  # back to the order of ids
        return total / len(ids), out

    parent_val, _ = evaluate(idx[VAL])
    _, parent_test_scores = evaluate(idx[TEST])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(idx[TRAIN]) / batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    best = (parent_val, copy.deepcopy(model.state_dict()), 0)
    history: dict[str, list[float]] = {"train": [], "validation": [parent_val]}
    t0 = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        model.train()
        if freeze_batchnorm:  # keep the pretrained statistics: our batches (trimmed, few jets) would move them
            for mod in model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        perm = rng.permutation(idx[TRAIN])
        # batches of similar multiplicity (trimmed to their longest jet: padding is masked)
        pool = []
        for a in range(0, len(perm), batch_size * 50):
            chunk = perm[a:a + batch_size * 50]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")] if lengths is not None else chunk
            pool += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
        rng.shuffle(pool)  # type: ignore[arg-type]
        running, seen = 0.0, 0
        for b in pool:
            if len(b) < 2:
                continue
            frac = max(step / total_steps, (time.perf_counter() - t0) / time_budget_s)
            lo, end = lr / 25, lr / 25e3
            cur = (lo + (lr - lo) * (1 - math.cos(math.pi * frac / 0.1)) / 2 if frac < 0.1
                   else end + (lr - end) * (1 + math.cos(math.pi * min(1.0, (frac - 0.1) / 0.9))) / 2)
            for g in opt.param_groups:
                g["lr"] = cur
            loss = loss_fn(logits_of(b).float(), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running += loss.item() * len(b)
            seen += len(b)
            if time.perf_counter() - t0 >= time_budget_s:
                break
        vl, _ = evaluate(idx[VAL])
        history["train"].append(running / max(seen, 1))
        history["validation"].append(vl)
        log.info("[finetune] epoch %d: train loss %.4f, val loss %.4f (parent %.4f), %.0f s, %d jets", epoch + 1,
                 history["train"][-1], vl, parent_val, time.perf_counter() - t0, seen)
        if vl < best[0]:
            best = (vl, copy.deepcopy(model.state_dict()), epoch + 1)
        if time.perf_counter() - t0 >= time_budget_s:
            break
    model.load_state_dict(best[1])
    model.eval()
    _, test_scores = evaluate(idx[TEST])
    metrics = tagger_metrics(labels[idx[TEST]], test_scores)
    metrics["parent_test"] = tagger_metrics(labels[idx[TEST]], parent_test_scores)
    metrics.update({"train_seconds": round(time.perf_counter() - t0, 1), "best_epoch": best[2],
                    "history": history, "n_train": len(idx[TRAIN]), "n_val": len(idx[VAL]), "n_test": len(idx[TEST]),
                    "loss": f"cross-entropy over classes {art.classes[i_bkg]!r}, {art.classes[i_sig]!r}"})
    meta = {k: art.meta[k] for k in ("classes", "score", "domain") if k in art.meta}
    meta["trim_padding"] = bool(art.meta.get("trim_padding"))
    meta["training"] = {"init_from": {"artifact": str(parent), "hash": art.hash},
                        "signal_files": [Path(f).name for f in signal],
                        "background_files": [Path(f).name for f in background],
                        "config": {"time_budget_s": time_budget_s, "epochs": epochs, "batch_size": batch_size,
                                   "lr": lr, "weight_decay": weight_decay, "max_jets": max_jets, "seed": seed,
                                   "freeze_batchnorm": freeze_batchnorm}}
    meta["cpu_backend"] = {"chosen": "torch", "how": "not measured (run workflows/choose_backends.py)"}
    extra = {f: art.path / f for f in ("LICENSE", "PROVENANCE.md") if (art.path / f).exists()}
    save_artifact(out, name=name or f"{art.name}-ft", model=model, input_kind="blocks", spec=spec, metrics=metrics,
                  meta=meta, torchscript=False, extra_files=extra)
    return metrics
