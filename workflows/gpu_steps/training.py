"""Step 4, ``train_<model>``: every model through
:func:`hepml_coffea.training.train.train_on_dataset` (complete artifacts), packed for the trip back.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from typing import Any

import numpy as np

from gpu_steps.common import Campaign, SEEDS, TRAIN_PLAN
from gpu_steps.model_stage import free_gpu, tagger_inputs


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
            scores[f"test_{name}"] = tagger.predict(tagger_inputs(tagger, test.cands, test.jets, {}),
                                                    batch_size=4096 if device != "cpu" else 256)
            save_scores(camp, scores)
            free_gpu()
            camp.log(f"train {name}: AUC {metrics['auc']:.4f}, 1/eB(30%) {metrics['rejection_30']:.0f}, "
                     f"{metrics['epochs_run']} epochs in {metrics['train_seconds']} s")
    return done


def save_scores(camp: Campaign, scores: dict[str, np.ndarray]) -> None:
    tmp = camp.out / ".scores.npz.tmp.npz"
    np.savez_compressed(tmp, **scores)
    os.replace(tmp, camp.out / "scores.npz")
