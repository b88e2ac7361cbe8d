"""Train the shipped taggers (the artifacts in ``hepml_coffea/artifacts_data/``).

    python workflows/make_training_set.py --target-top 200000 --target-qcd 200000 --events 10000 \
        --workers 2 --out data/train_big --manifest-copy docs/train/data_manifest.json
    python workflows/train_shipped.py --data data/train_big --models pfn --threads 1 \
        --time-budget 3600 --out data/candidates_s8

(session 8: the shipped pfn, cnn, lstm and particlenet-lite, one training each, budgets
in TAGGERS.md; ~4.5 GB of memory per training on the 400k jets; then ``workflows/choose_backends.py``).

Continued training of a shipped model on a fresh set (``make_eval_set.py --train`` writes
one with seeds 5001+/6001+, never used for evaluation):

    python workflows/train_shipped.py --data data/train2 --models pfn --init-from-shipped --out data/candidates

A candidate replaces the shipped artifact only after ``hepml-coffea evaluate`` shows it
better on the standard evaluation set (copy the folder; the manifest hash travels with it).

The dataset is loaded once (truth-matched top jets from ``ttbar_*.root``, all jets from
``qcd_*.root``, 550 < pT < 650 GeV, |eta| < 2) and each model trains on its own
per-class cap (``--caps``) with the epochs below. Each artifact's metrics.json records
the exact configuration, sizes and timing; ``hepml-coffea train`` with the same
options reproduces one model.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from hepml_coffea.training.dataset import load_dataset
from hepml_coffea.training.train import TrainConfig, train_on_dataset

#: model -> (per-class cap, epochs, batch size, learning rate, max gradient norm or 0,
#: early-stopping patience in epochs; the best-validation weights are kept either way).
#: On the 400k-jet set a --time-budget ends the slower ones first (the one-cycle schedule then
#: follows the elapsed time, so it always completes); early stopping ends the others.
PLAN = {
    "baseline": (0, 1, 256, 1e-3, 0.0, 2),
    "pfn": (0, 40, 256, 1e-3, 1.0, 6),
    "cnn": (0, 30, 256, 2e-3, 0.0, 5),
    "lstm": (0, 25, 256, 1e-3, 1.0, 5),
    "particlenet-lite": (0, 20, 128, 3e-3, 0.0, 5),
}


def _cap(ds, cap: int):
    if not cap:
        return ds
    keep = np.zeros(len(ds), dtype=bool)
    for label in (0, 1):
        idx = np.flatnonzero(ds.labels == label)[:cap]
        keep[idx] = True
    return ds.subset(keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/train")
    ap.add_argument("--out", default="hepml_coffea/artifacts_data")
    ap.add_argument("--models", nargs="+", default=list(PLAN))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init-from-shipped", action="store_true",
                    help="continue from the shipped artifact's weights (peak learning rate x --lr-scale)")
    ap.add_argument("--lr-scale", type=float, default=0.3, help="learning-rate factor for --init-from-shipped")
    ap.add_argument("--epochs", type=int, default=0, help="override the plan's epochs")
    ap.add_argument("--time-budget", nargs="+", default=["0"],
                    help="seconds of training per model (0: no limit): one number for every model, or "
                         "NAME=SECONDS per model (e.g. pfn=3300 cnn=2000)")
    ap.add_argument("--lstm-pool", default=None, choices=["last", "mean", "meanmax"],
                    help="how the LSTM turns its outputs into the jet vector (default: the registry's)")
    ap.add_argument("--lstm-embed", nargs="+", type=int, default=None, metavar="WIDTH",
                    help="per-particle MLP widths before the LSTM (default: the registry's, none)")
    ap.add_argument("--augment", default="none", choices=["none", "reflect", "reflect+rotate"],
                    help="jet-frame symmetries (sequence / point-cloud models; images are canonicalised)")
    ap.add_argument("--teacher", default=None, help="distil from this tagger (e.g. particlenet); scores cached "
                    "beside the data (workflows/teacher_scores.py computes them as files land)")
    ap.add_argument("--distill", type=float, default=0.5, help="weight of the teacher term with --teacher")
    ap.add_argument("--max-jets", type=int, default=0, help="cap on jets per class over the plan's (0: all)")
    args = ap.parse_args()
    budgets = _budgets(args.time_budget, args.models)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # epoch lines of the training
    data = Path(args.data)
    sig = sorted(str(p) for p in data.glob("ttbar_*.root"))
    bkg = sorted(str(p) for p in data.glob("qcd_*.root"))
    t0 = time.perf_counter()
    ds = load_dataset(sig, bkg, teacher=args.teacher)
    print(f"loaded {int((ds.labels == 1).sum())} top and {int((ds.labels == 0).sum())} QCD jets "
          f"from {len(sig)} + {len(bkg)} files in {time.perf_counter() - t0:.0f} s", flush=True)
    for name in args.models:
        cap, epochs, bs, lr, clip, patience = PLAN[name]
        budget = budgets[name]
        options = {}
        if name == "lstm" and args.lstm_pool:
            options["pool"] = args.lstm_pool
        if name == "lstm" and args.lstm_embed:
            options["embed"] = list(args.lstm_embed)
        cap = min(c for c in (cap, args.max_jets) if c) if (cap or args.max_jets) else 0
        sub = _cap(ds, cap)
        images = name == "cnn"
        init = name if args.init_from_shipped and name != "baseline" else None
        cfg = TrainConfig(model=name, epochs=args.epochs or epochs, batch_size=bs,
                          lr=lr * (args.lr_scale if init else 1.0), seed=1, threads=args.threads,
                          patience=patience, clip_grad=clip, progress=False, init_from=init,
                          time_budget_s=budget, model_options=options,
                          augment="none" if images or name == "baseline" else args.augment,
                          distill=args.distill if args.teacher and name != "baseline" else 0.0)
        meta = {
            "selection": {"pt_min": 550.0, "pt_max": 650.0, "abs_eta_max": 2.0, "msd_min": None, "msd_max": None},
            "domain": {"sample": f"hepml_coffea.samples: Pythia8 14 TeV ttbar + QCD ({data.name}, {len(sig)} + "
                                 f"{len(bkg)} files)", "pt": [550.0, 650.0], "abs_eta_max": 2.0},
            "training": {
                "signal_files": [Path(f).name for f in sig],
                "background_files": [Path(f).name for f in bkg],
                "per_class_cap": cap,
                "command": f"python workflows/train_shipped.py --data {args.data} --models {name}"
                           + (" --init-from-shipped" if init else "")
                           + (f" --epochs {args.epochs}" if args.epochs else "")
                           + (f" --time-budget {budget:g}" if budget else "")
                           + (f" --lstm-pool {args.lstm_pool}" if "pool" in options else "")
                           + (f" --lstm-embed {' '.join(map(str, args.lstm_embed))}" if "embed" in options else "")
                           + (f" --augment {args.augment}" if args.augment != "none" else "")
                           + (f" --teacher {args.teacher} --distill {args.distill:g}" if args.teacher else "")
                           + (f" --max-jets {args.max_jets}" if args.max_jets else ""),
            },
        }
        t1 = time.perf_counter()
        metrics = train_on_dataset(sub, Path(args.out) / name, cfg, meta)
        short = {k: metrics[k] for k in ("auc", "accuracy", "rejection_30", "rejection_50", "parameters",
                                         "n_train", "n_test")}
        print(f"{name}: {json.dumps(short)} in {time.perf_counter() - t1:.0f} s", flush=True)


def _budgets(items: list[str], models: list[str]) -> dict[str, float]:
    """``["600"]`` -> every model 600 s; ``["pfn=3300", "cnn=2000"]`` -> per model (others: none)."""
    if len(items) == 1 and "=" not in items[0]:
        return {m: float(items[0]) for m in models}
    out = {m: 0.0 for m in models}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in PLAN:
            msg = f"--time-budget {item!r}: expected SECONDS or NAME=SECONDS with NAME in {sorted(PLAN)}"
            raise SystemExit(msg)
        out[name] = float(value)
    return out


if __name__ == "__main__":
    main()
